//! libnfs's command-line clients (nfs-cp, nfs-ls, nfs-cat) against a `local` mount. Each test
//! is skipped, saying so, when its tool is not installed (Debian/Ubuntu: libnfs-utils).

use std::collections::BTreeMap;

use crate::harness::{libnfs_tool, local_mount, random_bytes, run_libnfs, tempdir, Server};

#[tokio::test]
async fn nfs_cp_copies_in_and_out_byte_for_byte() {
    let Some(nfs_cp) = libnfs_tool("nfs-cp") else {
        return;
    };
    let (root, scratch) = (tempdir("nfsgw-libnfs-"), tempdir("nfsgw-libnfs-local-"));
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let server = Server::start(&local_mount("data", root.path(), false, ""));

    let data = random_bytes(7, 3 * (1 << 20) + 12_345);
    let local_in = scratch.path().join("in.bin");
    std::fs::write(&local_in, &data).unwrap();
    for remote in ["/data/copied.bin", "/data/sub/copied.bin"] {
        let url = server.nfs_url(remote);
        run_libnfs(&server, &nfs_cp, &[local_in.to_str().unwrap(), &url]);
        let on_host = std::fs::read(root.path().join(&remote["/data/".len()..])).unwrap();
        assert!(
            on_host == data,
            "{remote} on the host differs from what nfs-cp sent"
        );

        let local_out = scratch.path().join("out.bin");
        run_libnfs(&server, &nfs_cp, &[&url, local_out.to_str().unwrap()]);
        let back = std::fs::read(&local_out).unwrap();
        assert_eq!(back.len(), data.len(), "size of {remote} copied back");
        assert!(back == data, "{remote} copied back differs");
        std::fs::remove_file(&local_out).unwrap();
    }

    // Through the NFS client too.
    let mut nfs = server.mount("/data").await;
    assert!(nfs.read_path("sub/copied.bin").await == data);
}

#[test]
fn nfs_ls_lists_a_directory() {
    let Some(nfs_ls) = libnfs_tool("nfs-ls") else {
        return;
    };
    let root = tempdir("nfsgw-libnfs-");
    std::fs::write(root.path().join("a.txt"), b"12345").unwrap();
    std::fs::write(root.path().join("b.bin"), vec![0u8; 70_000]).unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/inner.txt"), b"xy").unwrap();
    let server = Server::start(&local_mount("data", root.path(), false, ""));

    let parse = |stdout: &[u8]| -> BTreeMap<String, String> {
        String::from_utf8_lossy(stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let name = l.split_whitespace().last().unwrap().to_string();
                (name, l.to_string())
            })
            .collect()
    };
    let out = run_libnfs(&server, &nfs_ls, &[&server.nfs_url("/data")]);
    let lines = parse(&out.stdout);
    assert_eq!(
        lines.keys().collect::<Vec<_>>(),
        ["a.txt", "b.bin", "sub"],
        "nfs-ls output:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(lines["sub"].starts_with('d'), "{}", lines["sub"]);
    assert!(lines["a.txt"].starts_with('-'), "{}", lines["a.txt"]);
    let size_of =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    assert!(
        size_of(&lines["a.txt"]).contains(&"5".to_string()),
        "{}",
        lines["a.txt"]
    );
    assert!(
        size_of(&lines["b.bin"]).contains(&"70000".to_string()),
        "{}",
        lines["b.bin"]
    );

    let out = run_libnfs(&server, &nfs_ls, &[&server.nfs_url("/data/sub")]);
    let lines = parse(&out.stdout);
    assert_eq!(lines.keys().collect::<Vec<_>>(), ["inner.txt"]);
    assert!(size_of(&lines["inner.txt"]).contains(&"2".to_string()));
}

#[test]
fn nfs_cat_prints_a_file() {
    let Some(nfs_cat) = libnfs_tool("nfs-cat") else {
        return;
    };
    let root = tempdir("nfsgw-libnfs-");
    let text = "first line\nsecond line\nünïcødé ✓\n".repeat(50);
    std::fs::write(root.path().join("notes.txt"), &text).unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/deep.txt"), b"deep\n").unwrap();
    let server = Server::start(&local_mount("data", root.path(), false, ""));

    let out = run_libnfs(&server, &nfs_cat, &[&server.nfs_url("/data/notes.txt")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    let out = run_libnfs(&server, &nfs_cat, &[&server.nfs_url("/data/sub/deep.txt")]);
    assert_eq!(out.stdout, b"deep\n");
}

/// A 100,000-entry directory: libnfs pages through it with the cookies nfsgw hands out, and
/// every name comes back exactly once.
#[test]
fn nfs_ls_lists_a_hundred_thousand_entries_exactly_once() {
    let Some(nfs_ls) = libnfs_tool("nfs-ls") else {
        return;
    };
    const COUNT: usize = 100_000;
    let root = tempdir("nfsgw-libnfs-");
    let big = root.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..COUNT {
        std::fs::File::create(big.join(format!("entry-{i:06}-é"))).unwrap();
    }
    let server = Server::start(&local_mount("data", root.path(), false, ""));
    let out = run_libnfs(&server, &nfs_ls, &[&server.nfs_url("/data/big")]);
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|n| n.starts_with("entry-"))
        .collect();
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(names.len(), COUNT, "entries listed (with repeats)");
    assert_eq!(unique.len(), COUNT, "distinct entries listed");
    assert!(unique.contains(&format!("entry-{:06}-é", COUNT - 1)));
}
