//! The object-store client under injected faults (`[mount.s3.faults]`): requests that fail as
//! S3 fails them, uploads cut after some parts or at their completion, an outage switched on
//! and off by a file, and requests that hang until their timeout. What is acknowledged (FILE_SYNC
//! or COMMIT) survives a kill -9, no partial object ever shows in the bucket, and an outage is
//! an error, not a hang, on a server that goes on serving.

use std::path::Path;
use std::time::Duration;

use nfs3_types::nfs3::nfs_fh3;

use crate::harness::{random_bytes, toml_str, Client, Server};
use crate::s3::{digest, eventually, object, open_multipart_uploads, put_direct};
use crate::s3_server::S3Server;

const MIB: usize = 1 << 20;

/// Every operation a fault plan can name.
const ALL_OPS: &str = "[\"get\", \"head\", \"put\", \"create_multipart\", \"put_part\", \
                       \"complete_multipart\", \"abort_multipart\", \"copy\", \"delete\"]";

/// A `[mount.s3.faults]` table; it must follow the mount's `[mount.s3]` table.
fn faults(keys: &str) -> String {
    format!("[mount.s3.faults]\n{keys}\n")
}

/// An nfsgw serving the bucket as /bucket with these mount keys, the grant's extra keys
/// (`request_timeout_ms = ...`) and fault plan, and a client of it.
async fn serve_faulty(
    s3: &S3Server,
    mount_keys: &str,
    grant_keys: &str,
    plan: &str,
) -> (Server, Client) {
    let config = format!(
        "{}{grant_keys}\n{}",
        s3.mount("bucket", mount_keys, ""),
        faults(plan)
    );
    let server = Server::start(&config);
    let nfs = server.mount("/bucket").await;
    (server, nfs)
}

/// The plan's switch: it applies while this file exists.
fn switch_keys(switch: &Path, plan: &str) -> String {
    format!(
        "{plan}\nwhile_exists = {}",
        toml_str(switch.display().to_string())
    )
}

/// Waits until nfsgw has logged a failed upload `times` times.
async fn failed_uploads(server: &Server, times: usize) {
    eventually(
        "failed uploads in the log",
        Duration::from_secs(120),
        || async { (server.stderr().matches("upload failed").count() >= times).then_some(()) },
    )
    .await;
}

/// Writes `data` UNSTABLE in 1 MiB pieces and COMMITs it.
async fn write_and_commit(nfs: &mut Client, fh: &nfs_fh3, data: &[u8]) {
    for (i, piece) in data.chunks(MIB).enumerate() {
        let (count, ..) = nfs
            .write_unstable(fh, (i * MIB) as u64, piece)
            .await
            .unwrap();
        assert_eq!(count as usize, piece.len());
    }
    nfs.commit(fh).await.expect("COMMIT");
}

/// The key in the bucket, read directly: absent, or empty (the object CREATE puts), never
/// anything else, until `done` says the wait is over.
async fn never_partial(s3: &S3Server, key: &str, mut done: impl FnMut() -> bool) {
    loop {
        if let Some(seen) = object(s3, key).await {
            assert!(
                seen.is_empty(),
                "{key} shows {} bytes of a cut upload",
                seen.len()
            );
        }
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_acknowledged_by_file_sync_or_commit_survive_failed_uploads_and_a_kill() {
    let s3 = S3Server::start();
    let switch_dir = tempfile::tempdir().unwrap();
    let switch = switch_dir.path().join("outage");
    let plan = switch_keys(
        &switch,
        "ops = [\"put\", \"put_part\", \"complete_multipart\"]",
    );
    let (server, mut nfs) = serve_faulty(&s3, "flush_after_ms = 200", "", &plan).await;
    let root = nfs.root.clone();
    let small = nfs.create(&root, "small.txt", 0o644).await.unwrap();
    let large = nfs.create(&root, "large.bin", 0o644).await.unwrap();
    std::fs::write(&switch, b"").unwrap();
    let small_data = random_bytes(41, 300 * 1024);
    let large_data = random_bytes(42, 20 * MIB + 5);
    nfs.write_all(&small, 0, &small_data)
        .await
        .expect("FILE_SYNC writes");
    write_and_commit(&mut nfs, &large, &large_data).await;
    failed_uploads(&server, 2).await;
    assert_eq!(
        object(&s3, "small.txt").await.unwrap(),
        b"",
        "nothing uploaded yet"
    );
    assert_eq!(
        object(&s3, "large.bin").await.unwrap(),
        b"",
        "nothing uploaded yet"
    );
    drop(nfs);

    // kill -9, and a start on the same state without the fault plan.
    let config = server.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let (without_faults, _) = text.split_once("[mount.s3.faults]").unwrap();
    std::fs::write(&config, without_faults).unwrap();
    let server = server.restart();
    let uploaded_small = eventually("small.txt uploaded", Duration::from_secs(120), || async {
        object(&s3, "small.txt").await.filter(|d| !d.is_empty())
    })
    .await;
    assert!(
        uploaded_small == small_data,
        "small.txt differs from what was acknowledged"
    );
    let uploaded_large = eventually("large.bin uploaded", Duration::from_secs(120), || async {
        object(&s3, "large.bin").await.filter(|d| !d.is_empty())
    })
    .await;
    assert!(
        digest(&uploaded_large) == digest(&large_data),
        "large.bin differs"
    );
    let mut nfs = server.mount("/bucket").await;
    assert!(nfs.read_path("small.txt").await == small_data);
    assert!(digest(&nfs.read_path("large.bin").await) == digest(&large_data));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_after_some_parts_or_at_its_completion_never_shows_a_partial_object() {
    for (plan, cut) in [
        (
            "ops = [\"put_part\"]\nafter = 2\naction = \"reset\"",
            "after two parts",
        ),
        ("ops = [\"complete_multipart\"]", "at its completion"),
    ] {
        let s3 = S3Server::start();
        let (server, mut nfs) = serve_faulty(&s3, "flush_after_ms = 200", "", plan).await;
        let root = nfs.root.clone();
        let fh = nfs.create(&root, "cut.bin", 0o644).await.unwrap();
        let data = random_bytes(43, 40 * MIB);
        let writing = async {
            write_and_commit(&mut nfs, &fh, &data).await;
        };
        let watching = never_partial(&s3, "cut.bin", || {
            server.stderr().matches("upload failed").count() >= 2
        });
        tokio::join!(writing, watching);
        assert_eq!(
            object(&s3, "cut.bin").await.unwrap(),
            b"",
            "an upload cut {cut} left no object"
        );
        assert!(
            open_multipart_uploads(&s3).len() <= 1,
            "failed uploads are aborted (one may be under way): {:?}",
            open_multipart_uploads(&s3)
        );
        assert_eq!(
            nfs.read_all(&fh).await.unwrap(),
            data,
            "the staged copy is whole"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_an_error_not_a_hang_and_the_staged_write_uploads_after_it() {
    let s3 = S3Server::start();
    put_direct(&s3, "existing.txt", b"stored before the outage").await;
    let switch_dir = tempfile::tempdir().unwrap();
    let switch = switch_dir.path().join("outage");
    let plan = switch_keys(&switch, &format!("ops = {ALL_OPS}"));
    let (server, mut nfs) = serve_faulty(&s3, "flush_after_ms = 200", "", &plan).await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "staged.txt", 0o644).await.unwrap();

    std::fs::write(&switch, b"").unwrap();
    let data = b"written during an outage".to_vec();
    nfs.write_all(&fh, 0, &data)
        .await
        .expect("a write is staged locally");
    assert!(
        nfs.create(&root, "new.txt", 0o644).await.is_err(),
        "CREATE puts an object: it fails"
    );
    let read = match nfs.lookup(&root, "existing.txt").await {
        Ok(existing) => nfs.read_all(&existing).await,
        Err(status) => Err(status),
    };
    assert!(read.is_err(), "reading an object fails: {read:?}");
    failed_uploads(&server, 1).await;
    nfs.null().await.expect("the server goes on serving");
    nfs.getattr(&root)
        .await
        .expect("the server goes on serving");
    assert_eq!(
        nfs.read_all(&fh).await.unwrap(),
        data,
        "the staged copy serves reads"
    );

    std::fs::remove_file(&switch).unwrap();
    let uploaded = eventually(
        "the upload after the outage",
        Duration::from_secs(120),
        || async { object(&s3, "staged.txt").await.filter(|d| !d.is_empty()) },
    )
    .await;
    assert_eq!(uploaded, data);
    let existing = nfs.lookup(&root, "existing.txt").await.unwrap();
    assert_eq!(
        nfs.read_all(&existing).await.unwrap(),
        b"stored before the outage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_hangs_fails_at_its_timeout_and_a_delayed_one_succeeds() {
    let s3 = S3Server::start();
    put_direct(&s3, "slow.txt", b"slow but there").await;
    put_direct(&s3, "stuck.txt", b"never answered").await;
    let switch_dir = tempfile::tempdir().unwrap();
    let switch = switch_dir.path().join("hang");
    let plan = switch_keys(&switch, "ops = [\"get\", \"head\"]\naction = \"hang\"");
    let (_server, mut nfs) = serve_faulty(&s3, "", "request_timeout_ms = 1000", &plan).await;
    let root = nfs.root.clone();
    std::fs::write(&switch, b"").unwrap();
    let read = match nfs.lookup(&root, "stuck.txt").await {
        Ok(stuck) => nfs.read_all(&stuck).await,
        Err(status) => Err(status),
    };
    assert!(
        read.is_err(),
        "a hanging request fails at its timeout: {read:?}"
    );
    nfs.null().await.expect("the server goes on serving");
    std::fs::remove_file(&switch).unwrap();

    let s3 = S3Server::start();
    put_direct(&s3, "slow.txt", b"slow but there").await;
    let plan = "ops = [\"get\", \"head\"]\naction = \"delay\"\ndelay_ms = 300";
    let (_server, mut nfs) = serve_faulty(&s3, "", "", plan).await;
    let root = nfs.root.clone();
    let slow = nfs.lookup(&root, "slow.txt").await.unwrap();
    assert_eq!(nfs.read_all(&slow).await.unwrap(), b"slow but there");
}
