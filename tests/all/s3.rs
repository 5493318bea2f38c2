//! The bundled `s3` plugin end to end, against a real S3 server (s3s-fs, which checks SigV4
//! signatures): every change made through NFS is checked in the bucket with a direct
//! `object_store` client, and what that other client puts is checked through NFS.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use nfs3_types::nfs3::{
    nfs_fh3, nfsstat3, sattr3, set_atime, set_gid3, set_mode3, set_mtime, set_uid3,
};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::harness::{
    local_mount, nfs_time, nfsgw_binary, random_bytes, spawn, tempdir, Client, Server,
};
use crate::ops::{http_get, sample, with_admin};
use crate::s3_server::{MotoServer, S3Server, KEY_ID_ENV, SECRET_ENV};

const MIB: usize = 1 << 20;

/// Polls `probe` until it gives a value, or panics after `limit` saying what was awaited.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The content of `key` in the bucket, if it is there.
pub(crate) async fn object(s3: &S3Server, key: &str) -> Option<Vec<u8>> {
    let got = s3.direct().get(&Key::from(key)).await.ok()?;
    Some(got.bytes().await.ok()?.to_vec())
}

pub(crate) async fn put_direct(s3: &S3Server, key: &str, data: &[u8]) {
    s3.direct()
        .put(&Key::from(key), PutPayload::from(data.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("direct put of {key}: {e}"));
}

/// An s3 server, an nfsgw serving its bucket as /bucket with these mount keys and plugin
/// config, and a client of that mount.
async fn serve_bucket(extra: &str, config: &str) -> (S3Server, Server, Client) {
    let s3 = S3Server::start();
    let server = Server::start(&s3.mount("bucket", extra, config));
    let nfs = server.mount("/bucket").await;
    (s3, server, nfs)
}

/// `nfsgw plugin check s3` against a bucket at `endpoint`: (success, stdout, stderr).
fn conformance(endpoint: &str) -> (bool, String, String) {
    let out = Command::new(nfsgw_binary())
        .env(KEY_ID_ENV, crate::s3_server::KEY_ID)
        .env(SECRET_ENV, crate::s3_server::SECRET)
        .args(["plugin", "check", "s3"])
        .args([
            "--s3",
            "bucket=testbkt",
            "--s3",
            &format!("endpoint={endpoint}"),
        ])
        .args(["--s3", "path_style=true", "--s3", "allow_http=true"])
        .args(["--s3", &format!("access_key_id_env={KEY_ID_ENV}")])
        .args(["--s3", &format!("secret_access_key_env={SECRET_ENV}")])
        .output()
        .expect("run nfsgw plugin check");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The whole suite, on moto: S3 as it is, directory markers included. (s3s-fs lists no
/// directories, so empty ones are invisible to it, and it scans the whole bucket for every
/// listing; the other tests here use it, for its signature checks.)
#[test]
fn the_s3_plugin_passes_the_conformance_suite() {
    let moto = MotoServer::start();
    let (ok, stdout, stderr) = conformance(&moto.endpoint());
    assert!(ok, "{stdout}\n{stderr}");
    // What S3 cannot keep is not declared, so exactly those checks are skipped.
    let skipped: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("skip  "))
        .collect();
    assert_eq!(skipped.len(), 3, "{stdout}");
    for name in ["symlink and readlink", "chmod", "set modification time"] {
        assert!(
            skipped.iter().any(|s| s.starts_with(name)),
            "{name} not skipped:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("ok    what was written is in the backend after a flush"),
        "{stdout}"
    );
    assert!(
        stdout.contains("conformance: 16 passed, 0 failed, 3 skipped"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_put_by_another_client_appear_within_the_attribute_ttl() {
    let (s3, _server, mut nfs) = serve_bucket("", "attr_ttl_ms = 300").await;
    let root = nfs.root.clone();
    assert_eq!(
        nfs.readdir_names(&root).await.unwrap(),
        Vec::<String>::new()
    );
    put_direct(&s3, "fresh.txt", b"from another client").await;
    put_direct(&s3, "sub/dir/deep.txt", b"deep").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let names = loop {
        let names = nfs.readdir_names(&root).await.unwrap();
        if names.len() == 2 {
            break names;
        }
        assert!(
            Instant::now() < deadline,
            "the new objects were not listed: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        names.into_iter().collect::<HashSet<_>>(),
        HashSet::from(["fresh.txt".to_string(), "sub".to_string()])
    );
    assert_eq!(nfs.read_path("fresh.txt").await, b"from another client");
    assert_eq!(nfs.read_path("sub/dir/deep.txt").await, b"deep");

    // Replaced by the other client: the new content shows once the attributes expire.
    put_direct(&s3, "fresh.txt", b"changed elsewhere, and longer").await;
    let fh = nfs.lookup_path("fresh.txt").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let data = nfs.read_all(&fh).await.unwrap();
        if data != b"from another client" || Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got, b"changed elsewhere, and longer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_of_ten_thousand_keys_lists_completely() {
    const KEYS: usize = 10_000;
    let (s3, _server, mut nfs) = serve_bucket("", "").await;
    let direct = s3.direct();
    futures::stream::iter(0..KEYS)
        .map(|i| {
            let direct = direct.clone();
            async move {
                let key = Key::from(format!("many/key-{i:05}"));
                direct.put(&key, PutPayload::from_static(b"x")).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("put 10,000 keys");
    let dir = nfs.lookup_path("many").await.unwrap();
    let listing = nfs.readdirplus_all(&dir).await.unwrap();
    let names = listing.names();
    let distinct: HashSet<_> = names.iter().cloned().collect();
    assert_eq!(names.len(), KEYS, "every key listed once");
    assert_eq!(distinct.len(), KEYS);
    assert!(distinct.contains("key-00000") && distinct.contains("key-09999"));
    assert!(listing
        .entries
        .iter()
        .all(|e| e.attrs.as_ref().is_some_and(|a| a.size == 1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gib_written_through_nfs_round_trips_as_one_multipart_object() {
    const SIZE: usize = 1 << 30;
    let (s3, _server, mut nfs) = serve_bucket("flush_after_ms = 300", "").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "huge.bin", 0o644).await.unwrap();
    let mut written = Sha256::new();
    for i in 0..SIZE / MIB {
        let chunk = random_bytes(i as u64 + 1, MIB);
        written.update(&chunk);
        nfs.write_all(&fh, (i * MIB) as u64, &chunk).await.unwrap();
    }
    let written = written.finalize();
    eventually("the upload of 1 GiB", Duration::from_secs(600), || async {
        let meta = s3.direct().head(&Key::from("huge.bin")).await.ok()?;
        (meta.size == SIZE as u64).then_some(())
    })
    .await;
    // s3s-fs moves a completed multipart object into place before it stores the object's ETag,
    // and a HEAD between the two hashes the file instead; a second HEAD sees the stored one.
    let meta = s3.direct().head(&Key::from("huge.bin")).await.unwrap();
    let etag = meta.e_tag.expect("an ETag");
    assert!(
        etag.trim_matches('"').contains('-'),
        "not a multipart object: ETag {etag}"
    );

    let mut stream = s3
        .direct()
        .get(&Key::from("huge.bin"))
        .await
        .unwrap()
        .into_stream();
    let mut in_bucket = Sha256::new();
    while let Some(chunk) = stream.next().await {
        in_bucket.update(chunk.unwrap());
    }
    assert_eq!(in_bucket.finalize(), written, "the bucket's object differs");

    let mut read_back = Sha256::new();
    let mut offset = 0;
    while offset < SIZE {
        let data = nfs.read_range(&fh, offset as u64, 4 * MIB).await.unwrap();
        assert!(!data.is_empty(), "short read at {offset}");
        offset += data.len();
        read_back.update(&data);
    }
    assert_eq!(
        read_back.finalize(),
        written,
        "read back through NFS differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_is_readable_at_once_and_after_its_upload() {
    let (s3, _server, mut nfs) = serve_bucket("flush_after_ms = 300", "").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "note.txt", 0o644).await.unwrap();
    nfs.write_all(&fh, 0, b"written through nfs").await.unwrap();
    assert_eq!(
        nfs.read_all(&fh).await.unwrap(),
        b"written through nfs",
        "before the upload"
    );
    assert_eq!(nfs.getattr(&fh).await.unwrap().size, 19);
    let uploaded = eventually("the upload", Duration::from_secs(30), || async {
        object(&s3, "note.txt").await.filter(|d| !d.is_empty())
    })
    .await;
    assert_eq!(uploaded, b"written through nfs");
    assert_eq!(
        nfs.read_all(&fh).await.unwrap(),
        b"written through nfs",
        "after the upload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_after_a_read_is_never_stale() {
    let (s3, _server, mut nfs) = serve_bucket("flush_after_ms = 300", "").await;
    put_direct(&s3, "doc.txt", b"version one").await;
    let fh = nfs.lookup_path("doc.txt").await.unwrap();
    assert_eq!(nfs.read_all(&fh).await.unwrap(), b"version one");
    nfs.write_all(&fh, 8, b"TWO")
        .await
        .expect("a write after a read");
    assert_eq!(nfs.read_all(&fh).await.unwrap(), b"version TWO");
    let uploaded = eventually("the upload", Duration::from_secs(30), || async {
        object(&s3, "doc.txt").await.filter(|d| d == b"version TWO")
    })
    .await;
    assert_eq!(uploaded, b"version TWO");
    // And again after the upload, on the same handle.
    nfs.write_all(&fh, 0, b"VERSION")
        .await
        .expect("a write after the upload");
    assert_eq!(nfs.read_all(&fh).await.unwrap(), b"VERSION TWO");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_arriving_while_a_copy_is_filled_are_kept() {
    // The first write to an uploaded file copies its content from the bucket; writes from other
    // clients arriving meanwhile must land on top of that content, not under it.
    let (s3, server, mut first) = serve_bucket("flush_after_ms = 60000", "").await;
    let mut expected = random_bytes(11, 16 * MIB);
    put_direct(&s3, "shared.bin", &expected).await;
    let mut second = server.mount("/bucket").await;
    let (fh1, fh2) = (
        first.lookup_path("shared.bin").await.unwrap(),
        second.lookup_path("shared.bin").await.unwrap(),
    );
    let (near, far) = (vec![b'a'; 4096], vec![b'z'; 4096]);
    let far_at = 12 * MIB;
    let (a, b) = tokio::join!(
        first.write_all(&fh1, 0, &near),
        second.write_all(&fh2, far_at as u64, &far)
    );
    a.unwrap();
    b.unwrap();
    expected[..near.len()].copy_from_slice(&near);
    expected[far_at..far_at + far.len()].copy_from_slice(&far);
    assert!(
        first.read_all(&fh1).await.unwrap() == expected,
        "a write was lost under the copy's fill"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_that_fail_while_the_server_is_down_arrive_once_it_is_back() {
    let mut s3 = S3Server::start();
    let (server, admin) =
        with_admin(&s3.mount("bucket", "flush_after_ms = 200", "attr_ttl_ms = 600000"));
    let mut nfs = server.mount("/bucket").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "late.txt", 0o644).await.unwrap();
    s3.stop();
    nfs.write_all(&fh, 0, b"written during an outage")
        .await
        .unwrap();
    assert_eq!(
        nfs.read_all(&fh).await.unwrap(),
        b"written during an outage"
    );
    eventually(
        "a failed upload in the log",
        Duration::from_secs(60),
        || async { server.stderr().contains("upload failed").then_some(()) },
    )
    .await;
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        sample(&metrics, "nfsgw_upload_failures_total{mount=\"bucket\"}") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "nfsgw_flush_queue_depth{mount=\"bucket\"}"),
        1.0,
        "{metrics}"
    );
    s3.resume();
    let uploaded = eventually("the retried upload", Duration::from_secs(90), || async {
        object(&s3, "late.txt").await.filter(|d| !d.is_empty())
    })
    .await;
    assert_eq!(uploaded, b"written during an outage");
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_writes_left_by_a_killed_nfsgw_are_uploaded_at_its_next_start() {
    // Files are never idle long enough to be flushed while this nfsgw lives.
    let (s3, server, mut nfs) = serve_bucket("flush_after_ms = 3600000", "").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "survivor.bin", 0o644).await.unwrap();
    let data = random_bytes(7, 3 * MIB + 17);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    drop(nfs);
    assert_eq!(
        object(&s3, "survivor.bin").await.unwrap(),
        b"",
        "not uploaded yet"
    );
    let server = server.restart(); // SIGKILL, then a new process on the same state
    let uploaded = eventually(
        "the upload after the restart",
        Duration::from_secs(60),
        || async { object(&s3, "survivor.bin").await.filter(|d| !d.is_empty()) },
    )
    .await;
    assert!(
        uploaded == data,
        "the uploaded object differs from what was written"
    );
    let mut nfs = server.mount("/bucket").await;
    assert!(nfs.read_path("survivor.bin").await == data);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_flush_pending_uploads_before_exiting() {
    let (s3, mut server, mut nfs) = serve_bucket("flush_after_ms = 3600000", "").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "pending.bin", 0o644).await.unwrap();
    let data = random_bytes(11, 20 * MIB);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    drop(nfs);
    let status = server.terminate();
    assert!(status.success(), "nfsgw exited with {status}");
    // No waiting: the data is in the bucket when the process has ended.
    assert!(object(&s3, "pending.bin").await.unwrap() == data);
    assert!(
        server.stdout().contains("uploading 1 staged file(s)"),
        "{}",
        server.stdout()
    );
}

#[test]
fn bad_credentials_and_endpoints_are_clear_startup_errors() {
    let s3 = S3Server::start();
    // The key id where the secret should be: s3s-fs refuses the signature.
    let wrong = s3.mount("bucket", "", "").replace(
        &format!("secret_access_key_env = \"{SECRET_ENV}\""),
        &format!("secret_access_key_env = \"{KEY_ID_ENV}\""),
    );
    let exited = spawn(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n{wrong}"
    ))
    .err()
    .expect("nfsgw started with a wrong secret");
    assert!(
        exited.stderr.contains("refused the credentials"),
        "{exited}"
    );
    assert!(exited.stderr.contains("mount \"bucket\""), "{exited}");

    let unset = s3
        .mount("bucket", "", "")
        .replace(SECRET_ENV, "NFSGW_TEST_NOT_SET");
    let exited = spawn(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n{unset}"
    ))
    .err()
    .expect("nfsgw started without a secret");
    assert!(exited.stderr.contains("NFSGW_TEST_NOT_SET"), "{exited}");
    assert!(
        exited.stderr.contains("config.toml:"),
        "names the config line: {exited}"
    );

    let nowhere = s3
        .mount("bucket", "", "")
        .replace(&s3.endpoint(), "http://127.0.0.1:9");
    let exited = spawn(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n{nowhere}"
    ))
    .err()
    .expect("nfsgw started with an unreachable endpoint");
    assert!(exited.stderr.contains("cannot be reached"), "{exited}");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_s3_cannot_keep_is_refused_as_not_permitted() {
    let (_s3, _server, mut nfs) = serve_bucket("", "").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "plain.txt", 0o644).await.unwrap();
    assert_eq!(
        nfs.set_mode(&fh, 0o600).await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    // A chmod or chown to what the file already shows changes nothing, and is done.
    let shown = nfs.getattr(&fh).await.unwrap();
    nfs.set_mode(&fh, shown.mode)
        .await
        .expect("chmod to the same mode");
    let same_owner = sattr3 {
        uid: set_uid3::Some(shown.uid),
        gid: set_gid3::Some(shown.gid),
        ..crate::harness::no_change()
    };
    nfs.setattr(&fh, same_owner)
        .await
        .expect("chown to the same owner");
    let other_owner = sattr3 {
        uid: set_uid3::Some(shown.uid + 1),
        ..crate::harness::no_change()
    };
    assert_eq!(
        nfs.setattr(&fh, other_owner).await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert_eq!(
        nfs.link(&fh, &root, "hard").await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert_eq!(
        nfs.symlink(&root, "soft", "plain.txt").await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert_eq!(
        nfs.mkfifo(&root, "fifo", 0o644).await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert_eq!(
        nfs.set_mtime(&fh, nfs_time(1_000_000_000, 0)).await.err(),
        Some(nfsstat3::NFS3ERR_PERM),
        "an explicit time cannot be kept"
    );
    // `touch`: setting the times to the server's clock is what an upload does anyway.
    let touch = sattr3 {
        mtime: set_mtime::SET_TO_SERVER_TIME,
        ..crate::harness::no_change()
    };
    nfs.setattr(&fh, touch).await.expect("touch");
}

/// `open(O_CREAT|O_EXCL)` through the Linux client (what `cp` does) is an EXCLUSIVE CREATE,
/// then a SETATTR of the mode and the times "now". S3 keeps no verifier in times and no modes:
/// the verifier is remembered, and that SETATTR's mode is taken as CREATE's is. A chmod
/// afterwards is still refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_exclusive_create_and_its_setattr_succeed_without_modes_or_times() {
    let (s3, _server, mut nfs) = serve_bucket("flush_after_ms = 100", "").await;
    let root = nfs.root.clone();
    let fh = nfs
        .create_exclusive(&root, "copy.bin", [5; 8])
        .await
        .unwrap();
    // A retransmission with the same verifier is the same create; another verifier is not.
    assert_eq!(
        nfs.create_exclusive(&root, "copy.bin", [5; 8]).await,
        Ok(fh.clone())
    );
    assert_eq!(
        nfs.create_exclusive(&root, "copy.bin", [6; 8]).await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    let completes = sattr3 {
        mode: set_mode3::Some(0o644),
        atime: set_atime::SET_TO_SERVER_TIME,
        mtime: set_mtime::SET_TO_SERVER_TIME,
        ..crate::harness::no_change()
    };
    nfs.setattr(&fh, completes)
        .await
        .expect("the create's SETATTR");
    nfs.write_all(&fh, 0, b"copied").await.unwrap();
    assert_eq!(
        nfs.set_mode(&fh, 0o600).await.err(),
        Some(nfsstat3::NFS3ERR_PERM),
        "a later chmod is a chmod"
    );
    let uploaded = eventually("the upload", Duration::from_secs(30), || async {
        object(&s3, "copy.bin").await.filter(|got| got == b"copied")
    })
    .await;
    assert_eq!(uploaded, b"copied");
}

#[tokio::test(flavor = "multi_thread")]
async fn directories_are_prefixes_and_markers_in_the_bucket() {
    let (s3, _server, mut nfs) = serve_bucket("flush_after_ms = 100", "").await;
    let root = nfs.root.clone();
    let dir = nfs.mkdir(&root, "photos").await.unwrap();
    // s3s-fs keeps the marker object "photos/" as a directory of its bucket.
    assert!(
        s3.root.path().join("testbkt/photos").is_dir(),
        "mkdir made no marker"
    );
    let fh = nfs.create(&dir, "cat.jpg", 0o644).await.unwrap();
    nfs.write_all(&fh, 0, b"meow").await.unwrap();
    eventually("the upload", Duration::from_secs(30), || async {
        object(&s3, "photos/cat.jpg").await.filter(|d| d == b"meow")
    })
    .await;
    assert_eq!(
        nfs.rmdir(&root, "photos").await.err(),
        Some(nfsstat3::NFS3ERR_NOTEMPTY)
    );

    nfs.rename(&root, "photos", &root, "pictures")
        .await
        .expect("rename a directory");
    assert_eq!(object(&s3, "pictures/cat.jpg").await.unwrap(), b"meow");
    assert_eq!(object(&s3, "photos/cat.jpg").await, None);
    assert_eq!(nfs.read_path("pictures/cat.jpg").await, b"meow");

    let pictures = nfs.lookup_path("pictures").await.unwrap();
    nfs.remove(&pictures, "cat.jpg").await.unwrap();
    let left: Vec<_> = s3
        .direct()
        .list(None)
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    assert_eq!(left, Vec::<String>::new(), "no object left in the bucket");
    // (rmdir of the emptied directory is in the conformance suite, on moto: s3s-fs does not
    // list empty directories, so to it the directory is gone already.)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_mount_and_a_local_mount_side_by_side() {
    let s3 = S3Server::start();
    let dir = tempdir("nfsgw-side-");
    let config = format!(
        "{}\n{}",
        local_mount("disk", dir.path(), false, ""),
        s3.mount("bucket", "flush_after_ms = 100", "")
    );
    let server = Server::start(&config);
    let mut disk = server.mount("/disk").await;
    let mut bucket = server.mount("/bucket").await;
    let (droot, broot) = (disk.root.clone(), bucket.root.clone());
    let fh = disk.create(&droot, "here.txt", 0o644).await.unwrap();
    disk.write_all(&fh, 0, b"on disk").await.unwrap();
    let fh = bucket.create(&broot, "there.txt", 0o644).await.unwrap();
    bucket.write_all(&fh, 0, b"in the bucket").await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("here.txt")).unwrap(),
        b"on disk"
    );
    let uploaded = eventually("the upload", Duration::from_secs(30), || async {
        object(&s3, "there.txt").await.filter(|d| !d.is_empty())
    })
    .await;
    assert_eq!(uploaded, b"in the bucket");
    assert!(!dir.path().join("there.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn nfsgw_flush_uploads_on_request_and_status_counts_what_is_staged() {
    let s3 = S3Server::start();
    let (server, admin) = with_admin(&s3.mount("bucket", "flush_after_ms = 3600000", ""));
    let mut nfs = server.mount("/bucket").await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "asked.txt", 0o644).await.unwrap();
    nfs.write_all(&fh, 0, b"upload me now").await.unwrap();
    let run = |command: &str| {
        Command::new(nfsgw_binary())
            .args([command, "--admin", &format!("127.0.0.1:{admin}")])
            .output()
            .expect("run nfsgw")
    };
    let status = String::from_utf8_lossy(&run("status").stdout).into_owned();
    assert!(status.contains("(1 file(s), 13 bytes in all)"), "{status}");
    assert_eq!(
        object(&s3, "asked.txt").await.unwrap(),
        b"",
        "not uploaded before asked"
    );

    let flushed = run("flush");
    assert!(
        flushed.status.success(),
        "{}",
        String::from_utf8_lossy(&flushed.stderr)
    );
    // No waiting: the upload is done when `nfsgw flush` returns.
    assert_eq!(object(&s3, "asked.txt").await.unwrap(), b"upload me now");
    let status = String::from_utf8_lossy(&run("status").stdout).into_owned();
    assert!(status.contains("(0 file(s), 0 bytes in all)"), "{status}");
}

// ---- streaming uploads: parts of a file being written sequentially go up while it is written

/// A bucket served with the admin listener and an hour's flush delay, so nothing is flushed
/// unless asked: (s3, server, admin port, client).
async fn streaming_bucket() -> (S3Server, Server, u16, Client) {
    let s3 = S3Server::start();
    let (server, admin) = with_admin(&s3.mount("bucket", "flush_after_ms = 3600000", ""));
    let nfs = server.mount("/bucket").await;
    (s3, server, admin, nfs)
}

fn metric(admin: u16, series: &str) -> f64 {
    sample(&http_get(admin, "/metrics").1, series)
}

const EARLY_PARTS: &str = "nfsgw_upload_parts_early_total{mount=\"bucket\"}";
const STREAMS_COMPLETED: &str =
    "nfsgw_upload_streams_total{mount=\"bucket\",outcome=\"completed\"}";
const STREAMS_ABORTED: &str = "nfsgw_upload_streams_total{mount=\"bucket\",outcome=\"aborted\"}";

/// Waits until at least `parts` parts went up before any flush.
async fn early_parts(admin: u16, parts: f64) -> f64 {
    eventually("parts uploaded early", Duration::from_secs(120), || async {
        let n = metric(admin, EARLY_PARTS);
        (n >= parts).then_some(n)
    })
    .await
}

fn flush(admin: u16) {
    let out = Command::new(nfsgw_binary())
        .args(["flush", "--admin", &format!("127.0.0.1:{admin}")])
        .output()
        .expect("run nfsgw flush");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Multipart uploads s3s-fs holds (it keeps each as files named `.upload…` in its root).
pub(crate) fn open_multipart_uploads(s3: &S3Server) -> Vec<String> {
    std::fs::read_dir(s3.root.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

async fn no_open_multipart_uploads(s3: &S3Server) {
    eventually(
        "no multipart upload left open",
        Duration::from_secs(60),
        || async { open_multipart_uploads(s3).is_empty().then_some(()) },
    )
    .await;
}

pub(crate) fn digest(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_sequential_write_is_uploaded_while_it_is_written() {
    // 8 MiB parts, claimed once the writes are 8 MiB past them: 7 of the 9 parts of this
    // file go up before any flush, the last two at the flush.
    const SIZE: usize = 64 * MIB + 123;
    let (s3, _server, admin, mut nfs) = streaming_bucket().await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "big.bin", 0o644).await.unwrap();
    let data = random_bytes(21, SIZE);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    assert_eq!(early_parts(admin, 7.0).await, 7.0);
    assert_eq!(
        object(&s3, "big.bin").await.unwrap(),
        b"",
        "not in the bucket before the flush"
    );

    flush(admin);
    let meta = s3.direct().head(&Key::from("big.bin")).await.unwrap();
    assert_eq!(meta.size, SIZE as u64);
    let etag = meta.e_tag.expect("an ETag");
    assert!(
        etag.trim_matches('"').ends_with("-9"),
        "not a 9-part object: ETag {etag}"
    );
    assert!(
        digest(&object(&s3, "big.bin").await.unwrap()) == digest(&data),
        "the bucket's object differs from what was written"
    );
    assert_eq!(metric(admin, STREAMS_COMPLETED), 1.0);
    assert_eq!(metric(admin, STREAMS_ABORTED), 0.0);
    assert_eq!(metric(admin, EARLY_PARTS), 7.0);
    assert!(open_multipart_uploads(&s3).is_empty());
    assert!(nfs.read_path("big.bin").await == data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewrite_of_an_uploaded_part_falls_back_to_the_whole_file() {
    const SIZE: usize = 40 * MIB;
    let (s3, _server, admin, mut nfs) = streaming_bucket().await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "patched.bin", 0o644).await.unwrap();
    let mut data = random_bytes(22, SIZE);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    early_parts(admin, 4.0).await;
    // A rewrite in the middle of the second part, which is already in the bucket's upload.
    let patch = random_bytes(23, 5000);
    let at = 10 * MIB + 7;
    nfs.write_all(&fh, at as u64, &patch).await.unwrap();
    data[at..at + patch.len()].copy_from_slice(&patch);
    // And more data after it: the file no longer streams, the data is still all there.
    let tail = random_bytes(24, 20 * MIB);
    nfs.write_all(&fh, SIZE as u64, &tail).await.unwrap();
    data.extend_from_slice(&tail);

    flush(admin);
    assert!(
        digest(&object(&s3, "patched.bin").await.unwrap()) == digest(&data),
        "the bucket's object differs from what was written"
    );
    assert_eq!(metric(admin, STREAMS_COMPLETED), 0.0);
    eventually("the stream's abort", Duration::from_secs(60), || async {
        (metric(admin, STREAMS_ABORTED) == 1.0).then_some(())
    })
    .await;
    no_open_multipart_uploads(&s3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncation_below_uploaded_parts_falls_back_to_the_whole_file() {
    let (s3, _server, admin, mut nfs) = streaming_bucket().await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "cut.bin", 0o644).await.unwrap();
    let mut data = random_bytes(25, 48 * MIB);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    early_parts(admin, 5.0).await;
    let cut = 20 * MIB + 5;
    nfs.set_size(&fh, cut as u64).await.unwrap();
    data.truncate(cut);
    let more = random_bytes(26, 9 * MIB);
    nfs.write_all(&fh, cut as u64, &more).await.unwrap();
    data.extend_from_slice(&more);

    flush(admin);
    let uploaded = object(&s3, "cut.bin").await.unwrap();
    assert_eq!(uploaded.len(), data.len());
    assert!(
        digest(&uploaded) == digest(&data),
        "the bucket's object differs from what was written"
    );
    assert_eq!(metric(admin, STREAMS_COMPLETED), 0.0);
    no_open_multipart_uploads(&s3).await;
    assert_eq!(metric(admin, STREAMS_ABORTED), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_upload_left_open_by_a_killed_nfsgw_is_aborted_at_its_next_start() {
    const SIZE: usize = 40 * MIB;
    let (s3, server, admin, mut nfs) = streaming_bucket().await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "orphan.bin", 0o644).await.unwrap();
    let data = random_bytes(31, SIZE);
    nfs.write_all(&fh, 0, &data).await.unwrap();
    early_parts(admin, 2.0).await;
    let open = open_multipart_uploads(&s3);
    assert!(!open.is_empty(), "the streamed upload is open");
    assert_eq!(
        object(&s3, "orphan.bin").await.unwrap(),
        b"",
        "no part of an open upload is visible"
    );
    drop(nfs);
    // SIGKILL, then a new process on the same state: the staged file is uploaded again, and
    // the upload the killed process left open is aborted.
    let server = server.restart();
    no_open_multipart_uploads(&s3).await;
    let uploaded = eventually(
        "the upload after the restart",
        Duration::from_secs(60),
        || async { object(&s3, "orphan.bin").await.filter(|d| !d.is_empty()) },
    )
    .await;
    assert!(
        digest(&uploaded) == digest(&data),
        "the uploaded object differs from what was written"
    );
    assert!(
        server
            .stderr()
            .contains("aborted multipart uploads left open by an earlier run"),
        "{}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_or_renaming_a_file_being_streamed_leaves_no_upload_behind() {
    let (s3, _server, admin, mut nfs) = streaming_bucket().await;
    let root = nfs.root.clone();
    let gone = nfs.create(&root, "gone.bin", 0o644).await.unwrap();
    nfs.write_all(&gone, 0, &random_bytes(27, 32 * MIB))
        .await
        .unwrap();
    let moved = nfs.create(&root, "moved.bin", 0o644).await.unwrap();
    let data = random_bytes(28, 32 * MIB);
    nfs.write_all(&moved, 0, &data).await.unwrap();
    early_parts(admin, 6.0).await;

    nfs.remove(&root, "gone.bin").await.unwrap();
    nfs.rename(&root, "moved.bin", &root, "there.bin")
        .await
        .unwrap();
    eventually("both streams aborted", Duration::from_secs(60), || async {
        (metric(admin, STREAMS_ABORTED) == 2.0).then_some(())
    })
    .await;
    no_open_multipart_uploads(&s3).await;
    assert!(
        s3.direct().head(&Key::from("gone.bin")).await.is_err(),
        "a removed file stays removed"
    );

    flush(admin);
    assert!(s3.direct().head(&Key::from("gone.bin")).await.is_err());
    assert!(s3.direct().head(&Key::from("moved.bin")).await.is_err());
    assert!(
        object(&s3, "there.bin").await.unwrap() == data,
        "the renamed file's object differs from what was written"
    );
    assert_eq!(metric(admin, STREAMS_COMPLETED), 0.0);
    assert!(open_multipart_uploads(&s3).is_empty());
}

const READ_AHEAD: &str = "nfsgw_readahead_bytes_total{mount=\"bucket\"}";

#[tokio::test(flavor = "multi_thread")]
async fn readers_of_parallel_ranges_are_each_read_ahead() {
    let s3 = S3Server::start();
    let (server, admin) = with_admin(&s3.mount("bucket", "", ""));
    let mut nfs = server.mount("/bucket").await;
    // Three readers 24 MiB apart, further than one reads ahead, take turns READing their range.
    const RANGE: usize = 24 * MIB;
    const STEP: usize = 300_000;
    let data = random_bytes(3, 3 * RANGE);
    put_direct(&s3, "ranges.bin", &data).await;
    let fh = nfs.lookup_path("ranges.bin").await.unwrap();
    let mut got = vec![Vec::new(); 3];
    while got.iter().any(|g| g.len() < RANGE) {
        for (r, got) in got.iter_mut().enumerate() {
            let (at, count) = (r * RANGE + got.len(), STEP.min(RANGE - got.len()));
            if count == 0 {
                continue;
            }
            let (bytes, _) = nfs.read(&fh, at as u64, count as u32).await.unwrap();
            assert_eq!(bytes.len(), count, "a short READ at {at}");
            got.extend_from_slice(&bytes);
        }
    }
    for (r, got) in got.iter().enumerate() {
        assert!(
            got[..] == data[r * RANGE..(r + 1) * RANGE],
            "reader {r} read other bytes"
        );
    }
    // All but each reader's first two READs (which show it reads sequentially) came from
    // blocks read ahead.
    let ahead = metric(admin, READ_AHEAD);
    assert!(
        ahead >= (data.len() - 3 * 2 * STEP) as f64,
        "{ahead} of {} bytes read ahead",
        data.len()
    );
}

/// Reads `len` bytes in READs of `step` bytes, one at a time, checking that each READ's bytes
/// are all of `old` or all of `new` at its range; the bytes read.
async fn read_one_by_one(nfs: &mut Client, fh: &nfs_fh3, step: u32, versions: &[&[u8]]) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let at = got.len();
        let (data, eof) = nfs.read(fh, at as u64, step).await.unwrap();
        assert!(
            versions
                .iter()
                .any(|v| v.get(at..at + data.len()) == Some(&data[..])),
            "the READ at {at} ({} bytes) matches no version of the file",
            data.len()
        );
        got.extend_from_slice(&data);
        if eof {
            return got;
        }
        assert!(!data.is_empty(), "an empty READ before eof at {at}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequential_reader_is_answered_from_blocks_read_ahead_of_one_version() {
    let s3 = S3Server::start();
    let (server, admin) = with_admin(&s3.mount("bucket", "", "attr_ttl_ms = 200"));
    let mut nfs = server.mount("/bucket").await;
    // Three blocks of 4 MiB, the last one short; READs of 300,000 bytes cross their boundaries.
    let old = random_bytes(1, 10 * MIB + 123);
    put_direct(&s3, "big.bin", &old).await;
    let fh = nfs.lookup_path("big.bin").await.unwrap();
    let got = read_one_by_one(&mut nfs, &fh, 300_000, &[&old]).await;
    assert_eq!(digest(&got), digest(&old));
    // All but the first two READs (which show the reads are sequential) came from blocks.
    let ahead = metric(admin, READ_AHEAD);
    assert!(
        ahead >= (old.len() - 600_000) as f64,
        "{ahead} bytes read ahead"
    );

    // Replaced by another client with as many bytes: no READ mixes the two versions, and
    // once the attributes expire a whole read is the new one.
    let new = random_bytes(2, old.len());
    put_direct(&s3, "big.bin", &new).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while digest(&read_one_by_one(&mut nfs, &fh, 300_000, &[&old, &new]).await) != digest(&new) {
        assert!(
            Instant::now() < deadline,
            "the new version was never read whole"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(admin, READ_AHEAD) > ahead + (9 * MIB) as f64);
}
