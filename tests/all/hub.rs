//! The bundled `hub` plugin against the project's local Hub + Xet CAS server (tests/hub/fakehub),
//! with the real `huggingface_hub` + `hf_xet` clients on the other side: files the real client
//! uploads read back byte-identical through nfsgw, files nfsgw writes to a bucket are downloaded
//! byte-identical by the real client, and a bad endpoint, token or repository stops the mount
//! with a clear message.
//!
//! The server and the clients run from the venv `tests/hub/setup.sh` makes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfs3_types::nfs3::nfsstat3;
use tempfile::TempDir;

use crate::harness::{random_bytes, repo_root, run_with_timeout, spawn, tempdir, toml_str, Server};

const TOKEN: &str = "hf_nfsgw_test_token";
const MIB: usize = 1 << 20;

/// The Python of the hub test venv.
fn python() -> PathBuf {
    let venv = std::env::var_os("NFSGW_HUB_VENV").map_or_else(
        || Path::new(&std::env::var("HOME").expect("HOME")).join(".cache/nfsgw/hub-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/hub/setup.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// A running fakehub: the Hub API and CAS on one port, signed downloads on another.
struct FakeHub {
    child: Child,
    port: u16,
    cdn_port: u16,
    dir: TempDir,
}

impl FakeHub {
    fn start() -> FakeHub {
        FakeHub::start_with(&[])
    }

    /// With extra fakehub options (`--disable-v2`, `--xet-token-ttl N`...).
    fn start_with(options: &[&str]) -> FakeHub {
        let dir = tempdir("nfsgw-fakehub-");
        let ready = dir.path().join("ready.json");
        let child = Command::new(python())
            .args(["-m", "fakehub", "--token", TOKEN, "--page-size", "5"])
            .args(options)
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .env("PYTHONPATH", repo_root().join("tests/hub"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start fakehub");
        let started = Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "fakehub did not get ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        let port = |key: &str| info[key].as_u64().expect("a port") as u16;
        FakeHub {
            port: port("port"),
            cdn_port: port("cdn_port"),
            child,
            dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's request and token counters (`GET /_fakehub/stats`).
    fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            conn,
            "GET /_fakehub/stats HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        let (_, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        serde_json::from_str(body).unwrap()
    }

    /// Runs tests/hub/client.py (the real huggingface_hub + hf_xet) with a fresh HF_HOME.
    fn client(&self, args: &[&str]) -> String {
        let home = tempdir("nfsgw-hf-home-");
        let output = run_with_timeout(
            Command::new(python())
                .arg(repo_root().join("tests/hub/client.py"))
                .args(args)
                .env("HF_ENDPOINT", self.endpoint())
                .env("HF_TOKEN", TOKEN)
                .env("HF_HOME", home.path())
                .env("HF_HUB_DISABLE_TELEMETRY", "1")
                .env_remove("HF_HUB_OFFLINE"),
            Duration::from_secs(300),
        );
        assert!(
            output.status.success(),
            "client.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A `[[mount]]` of the hub plugin, `what` being its `[mount.config]` lines that choose the
    /// repository or bucket. The token goes in a file the host reads.
    fn mount(&self, name: &str, what: &str, token: &str) -> String {
        let token_file = self.dir.path().join(format!("token-{name}"));
        std::fs::write(&token_file, token).unwrap();
        format!(
            "[[mount]]\nname = \"{name}\"\nplugin = \"hub\"\nflush_after_ms = 200\n{}\
             allow_hosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
             [mount.secrets]\ntoken = {{ file = {}, hosts = [\"127.0.0.1:{}\"] }}\n\
             [mount.config]\nendpoint = \"{}\"\n{what}\n",
            crate::harness::NO_ROOT_SQUASH,
            self.port,
            self.cdn_port,
            toml_str(token_file.to_str().unwrap()),
            self.port,
            self.endpoint(),
        )
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds, for at most `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Files the real client uploads to the test repository: small text (stored in git), 3 MiB
/// and 70 MiB (Xet, the last one spanning two xorbs), and a directory of 12 files (listed over
/// several pages).
fn repo_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("README.md".to_string(), b"# a test model\n".to_vec()),
        ("weights/mid.bin".to_string(), random_bytes(3, 3 * MIB)),
        ("weights/big.bin".to_string(), random_bytes(70, 70 * MIB)),
    ];
    for i in 0..12 {
        files.push((
            format!("many/f{i:02}.txt"),
            format!("file {i}\n").into_bytes(),
        ));
    }
    files
}

fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repo_a_bucket_and_a_local_dir_are_served_side_by_side() {
    let hub = FakeHub::start();
    let upload = tempdir("nfsgw-hub-upload-");
    let files = repo_files();
    write_tree(upload.path(), &files);
    hub.client(&[
        "upload-folder",
        "model",
        "tester/demo",
        upload.path().to_str().unwrap(),
    ]);
    let dataset = tempdir("nfsgw-hub-dataset-");
    write_tree(
        dataset.path(),
        &[("train/part-0.csv".into(), b"a,b\n1,2\n".to_vec())],
    );
    hub.client(&[
        "upload-folder",
        "dataset",
        "tester/table",
        dataset.path().to_str().unwrap(),
    ]);
    hub.client(&["create-bucket", "tester/side"]);
    let local = tempdir("nfsgw-hub-local-");
    std::fs::write(local.path().join("here.txt"), b"local\n").unwrap();

    let server = Server::start(&format!(
        "{}{}{}[[mount]]\nname = \"local\"\nplugin = \"local\"\n{}[mount.config]\nroot = {}\n",
        hub.mount("models", "repo = \"tester/demo\"", TOKEN),
        hub.mount(
            "data",
            "repo = \"tester/table\"\nrepo_type = \"dataset\"",
            TOKEN
        ),
        hub.mount("bucket", "bucket = \"tester/side\"", TOKEN),
        crate::harness::NO_ROOT_SQUASH,
        toml_str(local.path().to_str().unwrap()),
    ));

    let mut models = server.mount("/models").await;
    let root = models.root.clone();
    let mut top = models.readdir_names(&root).await.unwrap();
    top.sort();
    // A new repository starts with the .gitattributes the Hub makes.
    assert_eq!(top, [".gitattributes", "README.md", "many", "weights"]);
    let many = models.lookup_path("many").await.unwrap();
    assert_eq!(
        models.readdir_names(&many).await.unwrap().len(),
        12,
        "a listing over several pages"
    );
    for (path, data) in &files {
        let fh = models.lookup_path(path).await.unwrap();
        let attrs = models.getattr(&fh).await.unwrap();
        assert_eq!(attrs.size, data.len() as u64, "{path}: size");
        let got = models.read_all(&fh).await.unwrap();
        assert!(got == *data, "{path}: content differs");
    }
    // Reads in the middle fetch only what they need, and stay exact.
    let big = &files[2].1;
    let fh = models.lookup_path("weights/big.bin").await.unwrap();
    for (offset, len) in [
        (40 * MIB + 12_345, MIB),
        (67_100_000, 200_000),
        (70 * MIB - 10, 64),
    ] {
        let got = models.read_range(&fh, offset as u64, len).await.unwrap();
        let end = (offset + len).min(big.len());
        assert!(got == big[offset..end], "big.bin at {offset}+{len}");
    }
    // A repository at a revision is read-only.
    assert_eq!(
        models.create(&root, "new.txt", 0o644).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ROFS)
    );

    let mut data = server.mount("/data").await;
    assert_eq!(data.read_path("train/part-0.csv").await, b"a,b\n1,2\n");
    let mut local_nfs = server.mount("/local").await;
    assert_eq!(local_nfs.read_path("here.txt").await, b"local\n");
    let mut bucket = server.mount("/bucket").await;
    let broot = bucket.root.clone();
    bucket.put(&broot, "side.txt", b"from nfsgw\n").await;
    let out = tempdir("nfsgw-hub-download-");
    let target = out.path().join("side.txt");
    eventually(
        "the bucket file to be uploaded",
        Duration::from_secs(60),
        || {
            hub.client(&["bucket-list", "tester/side"])
                .lines()
                .any(|l| l == "side.txt")
        },
    );
    hub.client(&[
        "bucket-get",
        "tester/side",
        "side.txt",
        target.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&target).unwrap(), b"from nfsgw\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_round_trips_with_the_real_client() {
    let hub = FakeHub::start();
    hub.client(&["create-bucket", "tester/rw"]);
    let work = tempdir("nfsgw-hub-bucket-");
    let uploaded = random_bytes(7, 2 * MIB + 123);
    std::fs::write(work.path().join("up.bin"), &uploaded).unwrap();
    hub.client(&[
        "bucket-put",
        "tester/rw",
        work.path().join("up.bin").to_str().unwrap(),
        "in/up.bin",
    ]);
    let server = Server::start(&hub.mount("rw", "bucket = \"tester/rw\"", TOKEN));
    let mut nfs = server.mount("/rw").await;
    assert!(
        nfs.read_path("in/up.bin").await == uploaded,
        "real client's upload"
    );

    // Written through NFS: several Xet chunks, so chunking, xorbs and the shard all matter.
    let root = nfs.root.clone();
    let written = random_bytes(8, 5 * MIB + 77);
    let dir = nfs.lookup_path("in").await.unwrap();
    let fh = nfs.create(&dir, "new.bin", 0o644).await.unwrap();
    for (i, piece) in written.chunks(MIB).enumerate() {
        nfs.write_all(&fh, (i * MIB) as u64, piece).await.unwrap();
    }
    nfs.put(&root, "note.txt", b"a note\n").await;
    let listed = || hub.client(&["bucket-list", "tester/rw"]);
    eventually("both files in the bucket", Duration::from_secs(60), || {
        let names = listed();
        names.lines().any(|l| l == "in/new.bin") && names.lines().any(|l| l == "note.txt")
    });
    // CREATE already put both names in the bucket, as empty files: their names being listed
    // does not mean their data has arrived. The data follows once writes pause for
    // `flush_after_ms`, and must then be exactly what the real client downloads.
    let got = work.path().join("new.bin");
    eventually(
        "the real client downloads what was written",
        Duration::from_secs(60),
        || {
            hub.client(&[
                "bucket-get",
                "tester/rw",
                "in/new.bin",
                got.to_str().unwrap(),
            ]);
            std::fs::read(&got).unwrap() == written
        },
    );
    assert!(
        nfs.read_path("in/new.bin").await == written,
        "read back through NFS"
    );

    // Rename and remove reach the bucket.
    nfs.rename(&root, "note.txt", &root, "renamed.txt")
        .await
        .unwrap();
    nfs.remove(&dir, "up.bin").await.unwrap();
    eventually(
        "rename and remove in the bucket",
        Duration::from_secs(60),
        || {
            let names = listed();
            let names: Vec<_> = names.lines().collect();
            names.contains(&"renamed.txt")
                && !names.contains(&"note.txt")
                && !names.contains(&"in/up.bin")
        },
    );
    let renamed = work.path().join("renamed.txt");
    hub.client(&[
        "bucket-get",
        "tester/rw",
        "renamed.txt",
        renamed.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&renamed).unwrap(), b"a note\n");
}

/// The `nfsgw: ` error line of a server that refused to start.
fn startup_error(config: &str) -> String {
    let config = format!("[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n{config}");
    match spawn(&config) {
        Ok(server) => panic!("nfsgw started (port {}) on:\n{config}", server.port),
        Err(exited) => exited.stderr,
    }
}

#[test]
fn a_bad_endpoint_token_or_repository_is_a_clear_startup_error() {
    let hub = FakeHub::start();
    let empty = tempdir("nfsgw-hub-empty-");
    std::fs::write(empty.path().join("a.txt"), b"a").unwrap();
    hub.client(&[
        "upload-folder",
        "model",
        "tester/exists",
        empty.path().to_str().unwrap(),
    ]);

    let unreachable = hub
        .mount("m", "repo = \"tester/exists\"", TOKEN)
        .replace(&format!("127.0.0.1:{}", hub.port), "127.0.0.1:9");
    let err = startup_error(&unreachable);
    assert!(err.contains("cannot reach the Hub"), "{err}");

    let err = startup_error(&hub.mount("m", "repo = \"tester/exists\"", "hf_wrong"));
    assert!(err.contains("refused the token"), "{err}");

    let err = startup_error(&hub.mount("m", "repo = \"tester/missing\"", TOKEN));
    assert!(
        err.contains("not found") && err.contains("tester/missing"),
        "{err}"
    );

    let err = startup_error(&hub.mount(
        "m",
        "repo = \"tester/exists\"\nrevision = \"no-such-branch\"",
        TOKEN,
    ));
    assert!(err.contains("no-such-branch"), "{err}");
}

/// A counter of `stats`, zero when absent.
fn counter(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_fall_back_to_v1_and_xet_tokens_are_refreshed_before_they_expire() {
    let hub = FakeHub::start_with(&["--disable-v2", "--xet-token-ttl", "4"]);
    let upload = tempdir("nfsgw-hub-upload-");
    let data = random_bytes(11, 12 * MIB);
    write_tree(upload.path(), &[("w.bin".into(), data.clone())]);
    hub.client(&[
        "upload-folder",
        "model",
        "tester/v1",
        upload.path().to_str().unwrap(),
    ]);
    let before = hub.stats();
    let server = Server::start(&hub.mount("m", "repo = \"tester/v1\"", TOKEN));
    let mut nfs = server.mount("/m").await;
    let fh = nfs.lookup_path("w.bin").await.unwrap();
    assert!(
        nfs.read_range(&fh, 0, 1000).await.unwrap() == data[..1000],
        "first read"
    );
    // Past the token's half life, and beyond what the first read fetched ahead: the next read
    // goes to the CAS again and must not present an expired token.
    std::thread::sleep(Duration::from_secs(3));
    let at = 10 * MIB + 5;
    let got = nfs.read_range(&fh, at as u64, 1000).await.unwrap();
    assert!(got == data[at..at + 1000], "read after the token aged");
    let after = hub.stats();
    let delta = |key: &str| counter(&after, key) - counter(&before, key);
    assert!(delta("cas_reconstruction_v1:GET") >= 2, "{after}");
    assert_eq!(
        delta("xet_token_expired"),
        0,
        "an expired token was used: {after}"
    );
    assert!(
        delta("xet_tokens_issued") >= 2,
        "the token was not refreshed: {after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_xorb_fails_the_read_instead_of_returning_wrong_bytes() {
    let hub = FakeHub::start();
    let upload = tempdir("nfsgw-hub-upload-");
    let data = random_bytes(12, 300_000);
    write_tree(upload.path(), &[("w.bin".into(), data.clone())]);
    hub.client(&[
        "upload-folder",
        "model",
        "tester/bad",
        upload.path().to_str().unwrap(),
    ]);
    // Flip one byte inside the stored xorb (random data is stored uncompressed, so the chunk
    // still decodes: only the hashes can tell).
    let xorbs = find_dirs_named(&hub.dir.path().join("data"), "xorbs");
    let stored: Vec<_> = xorbs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    bytes[150_000] ^= 0x55;
    std::fs::write(&stored[0], &bytes).unwrap();

    let server = Server::start(&hub.mount("m", "repo = \"tester/bad\"", TOKEN));
    let mut nfs = server.mount("/m").await;
    let fh = nfs.lookup_path("w.bin").await.unwrap();
    assert_eq!(
        nfs.read_range(&fh, 0, MIB).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_IO),
        "a whole-file read of corrupted data must fail"
    );
}

/// Every directory called `name` under `root`.
fn find_dirs_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == name) {
                found.push(path.clone());
            }
            found.extend(find_dirs_named(&path, name));
        }
    }
    found
}

/// `nfsgw plugin check hub` (the shared conformance suite) with these `[mount.config]`
/// settings, granted the fakehub's hosts and the token: (passed, stdout and stderr).
fn plugin_check(hub: &FakeHub, settings: &[&str]) -> (bool, String) {
    let token_file = hub.dir.path().join("token-check");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut command = Command::new(crate::harness::nfsgw_binary());
    command
        .args(["plugin", "check", "hub"])
        .args(["--set", &format!("endpoint={}", hub.endpoint())])
        .args(["--allow-host", &format!("127.0.0.1:{}", hub.port)])
        .args(["--allow-host", &format!("127.0.0.1:{}", hub.cdn_port)])
        .args([
            "--secret",
            &format!("token=file:{}", token_file.to_str().unwrap()),
        ]);
    for setting in settings {
        command.args(["--set", setting]);
    }
    let output = run_with_timeout(&mut command, Duration::from_secs(1200));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The shared conformance suite on a scratch Hub bucket: every change the bucket supports.
#[test]
fn the_hub_plugin_passes_the_conformance_suite_on_a_bucket() {
    let hub = FakeHub::start();
    hub.client(&["create-bucket", "tester/conformance"]);
    // This instance makes every change and sees its own at once; a short TTL would only
    // re-list the suite's 4,200-entry directory every second.
    let (ok, out) = plugin_check(&hub, &["bucket=tester/conformance", "attr_ttl_ms=60000"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok    what was written is in the backend after a flush"),
        "{out}"
    );
    assert!(
        out.contains("conformance: 16 passed, 0 failed, 3 skipped"),
        "{out}"
    );
}

/// The same suite on a repository: it reads everything, and every change is refused as
/// read-only.
#[test]
fn the_hub_plugin_passes_the_conformance_suite_on_a_repo() {
    let hub = FakeHub::start();
    let upload = tempdir("nfsgw-hub-upload-");
    write_tree(
        upload.path(),
        &[
            ("a.txt".into(), b"a\n".to_vec()),
            ("d/w.bin".into(), random_bytes(5, 2 * MIB)),
        ],
    );
    hub.client(&[
        "upload-folder",
        "model",
        "tester/check",
        upload.path().to_str().unwrap(),
    ]);
    let (ok, out) = plugin_check(&hub, &["repo=tester/check"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok    every listed entry can be looked up and read"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

/// A repo mounted at a branch serves the commit the branch named at start from every plugin
/// instance, even after the branch moves: the first instance pins it, and the host starts the
/// others with that commit.
#[tokio::test(flavor = "multi_thread")]
async fn every_instance_of_a_branch_mount_serves_the_commit_pinned_at_start() {
    // Every Hub answer takes 150 ms, so a read that fetches holds its instance that long and
    // reads of other files arriving meanwhile need instances of their own.
    let hub = FakeHub::start_with(&["--latency-ms", "150"]);
    let upload = tempdir("nfsgw-hub-upload-");
    let commit = |seed: u64| -> Vec<(String, Vec<u8>)> {
        (0..8u64)
            .map(|i| (format!("w{i}.bin"), random_bytes(seed * 100 + i, 300_000)))
            .collect()
    };
    let first = commit(1);
    write_tree(upload.path(), &first);
    hub.client(&[
        "upload-folder",
        "model",
        "tester/moving",
        upload.path().to_str().unwrap(),
    ]);
    let mounts =
        hub.mount("m", "repo = \"tester/moving\"", TOKEN) + "[mount.limits]\ninstances = 4\n";
    let (server, admin) = crate::ops::with_admin(&mounts);
    let mut nfs = server.mount("/m").await;
    assert!(nfs.lookup_path("w0.bin").await.is_ok());

    // The branch moves to a commit where every file differs (same sizes, so only content tells).
    write_tree(upload.path(), &commit(2));
    hub.client(&[
        "upload-folder",
        "model",
        "tester/moving",
        upload.path().to_str().unwrap(),
    ]);

    // Eight clients read eight files no instance has read yet; each must see the pinned commit.
    let mut readers = Vec::new();
    for (name, _) in &first {
        let mut client = server.mount("/m").await;
        let name = name.clone();
        readers.push(tokio::spawn(async move {
            let fh = client.lookup_path(&name).await.unwrap();
            let mut reads = Vec::new();
            // Backwards, so that no read continues the one before (no read-ahead).
            for offset in (0..300_000usize).step_by(37_000).rev() {
                let got = client.read_range(&fh, offset as u64, 1000).await.unwrap();
                reads.push((offset, got));
            }
            reads
        }));
    }
    for ((name, want), reader) in first.iter().zip(readers) {
        for (at, got) in reader.await.unwrap() {
            let end = (at + 1000).min(want.len());
            assert!(
                got == want[at..end],
                "{name}: a read at {at} saw another commit"
            );
        }
    }
    let (_, status) = crate::ops::http_get(admin, "/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let mount = &status["mounts"][0];
    assert_eq!(mount["instances_max"], 4, "{status}");
    assert_eq!(
        mount["read_only"], true,
        "a repo mount is read-only: {status}"
    );
    assert!(
        mount["instances_live"].as_u64().unwrap() > 1,
        "the reads ran on one instance only: {status}"
    );
}
