//! The plugin conformance suite through `nfsgw plugin check`: the bundled plugin passes it, a
//! read-only plugin passes what applies to it, and a plugin that claims more than it does is
//! caught.

use std::process::Command;

use crate::harness::{faulty_wasm, nfsgw_binary, tempdir};

/// Runs `nfsgw plugin check` with `args`: (exit success, stdout, stderr).
fn plugin_check(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(nfsgw_binary())
        .args(["plugin", "check"])
        .args(args)
        .output()
        .expect("run nfsgw plugin check");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The summary line's (passed, failed, skipped).
fn summary(stdout: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("conformance: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn the_bundled_local_plugin_passes_every_check() {
    let (ok, out, err) = plugin_check(&["local"]);
    assert!(ok, "{out}\n{err}");
    let (passed, failed, skipped) = summary(&out);
    assert_eq!((failed, skipped), (0, 0), "{out}");
    assert!(passed >= 17, "{out}");
}

#[test]
fn the_native_memory_backend_passes_every_check() {
    let (ok, out, err) = plugin_check(&["memory"]);
    assert!(ok, "{out}\n{err}");
    let (passed, failed, skipped) = summary(&out);
    assert_eq!((failed, skipped), (0, 0), "{out}");
    assert!(passed >= 17, "{out}");
}

#[test]
fn a_read_only_plugin_passes_what_applies_and_skips_the_rest() {
    let dir = tempdir("nfsgw-conformance-");
    let wasm = dir.path().join("faulty.wasm");
    std::fs::write(&wasm, faulty_wasm()).unwrap();
    let (ok, out, err) = plugin_check(&[wasm.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("ok    changes are refused as read-only"),
        "{out}"
    );
    let (passed, failed, skipped) = summary(&out);
    assert_eq!(failed, 0, "{out}");
    assert!(passed >= 5 && skipped >= 10, "{out}");
}

#[test]
fn a_plugin_that_claims_writes_it_does_not_keep_fails() {
    let dir = tempdir("nfsgw-conformance-");
    let wasm = dir.path().join("faulty.wasm");
    std::fs::write(&wasm, faulty_wasm()).unwrap();
    let (ok, out, err) = plugin_check(&[wasm.to_str().unwrap(), "--set", "lie=true"]);
    assert!(!ok, "a lying plugin passed:\n{out}");
    assert!(out.contains("FAIL  create, write and read back"), "{out}");
    assert!(
        out.contains("FAIL  changes answer their directories' attributes as a stat then sees them"),
        "{out}"
    );
    assert!(err.contains("conformance check(s) failed"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_refused_clearly() {
    let dir = tempdir("nfsgw-conformance-");
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    let (ok, _, err) = plugin_check(&[bogus.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}

#[test]
fn the_python_example_passes_every_check() {
    let wasm = crate::harness::example_wasm("python-memfs");
    let (ok, out, err) = plugin_check(&[wasm.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(summary(&out).1, 0, "{out}");
    assert_eq!(summary(&out).2, 0, "a capability went untested:\n{out}");
}

#[test]
fn the_javascript_example_passes_every_check() {
    let wasm = crate::harness::example_wasm("javascript-memfs");
    let (ok, out, err) = plugin_check(&[wasm.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(summary(&out).1, 0, "{out}");
    assert_eq!(summary(&out).2, 0, "a capability went untested:\n{out}");
}

/// An in-memory plugin asks for one instance, so clients writing at once all see one tree.
#[tokio::test]
async fn an_in_memory_plugin_keeps_one_tree_under_concurrent_clients() {
    let wasm = crate::harness::example_wasm("python-memfs");
    let server = crate::harness::Server::start(&format!(
        "[[mount]]\nname = \"mem\"\nplugin = {:?}\n{}[mount.limits]\ninstances = 4\n",
        wasm.to_str().unwrap(),
        crate::harness::NO_ROOT_SQUASH
    ));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut nfs = server.mount("/mem").await;
        writers.push(tokio::spawn(async move {
            let top = nfs.root.clone();
            for i in 0..10 {
                nfs.put(&top, &format!("w{w}-{i}"), format!("{w}/{i}").as_bytes())
                    .await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut nfs = server.mount("/mem").await;
    let names = nfs
        .readdirplus_all(&nfs.root.clone())
        .await
        .unwrap()
        .names();
    let written: Vec<_> = names.iter().filter(|n| n.starts_with('w')).collect();
    assert_eq!(
        written.len(),
        40,
        "files from concurrent clients: {names:?}"
    );
    assert_eq!(nfs.read_path("w3-9").await, b"3/9");
}
