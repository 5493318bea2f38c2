//! Hostile clients against the host's own file calls (issue #28, items 1 and 5): an ordinary
//! uid on a squashed mount uses a symlink's handle to reach the symlink's target, a FIFO to
//! freeze the server's workers, and a path whose directory the host swapped for a symlink. The
//! host side must refuse each on its own, whatever the gateway checks first: no host file call
//! follows a symlink anywhere in its path, nothing but a regular file is opened for data, and
//! no file call runs on an async worker, so NULL, other clients and SIGTERM are still answered.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use nfs3_types::nfs3::{nfsstat3, sattr3, Nfs3Option};

use crate::harness::{squashed_local_mount, tempdir, Client, Server};

const USER: (u32, u32) = (1000, 1000);
/// Only a guard against a hang: every reply here comes at once when nfsgw is right.
const PATIENCE: Duration = Duration::from_secs(20);

/// A squashed mount of a fresh directory anyone may write to, as uid 1000 sees it.
async fn user_mount(root: &Path, mount_keys: &str) -> (Server, Client) {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = Server::start(&squashed_local_mount("data", root, mount_keys));
    let client = server
        .try_mount_as("/data", Some(USER))
        .await
        .expect("uid 1000 mounts /data");
    (server, client)
}

fn root_only_file(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn a_symlinks_handle_never_reaches_its_target() {
    let root = tempdir("hostile-symlink");
    let secret = root.path().join("secret");
    root_only_file(&secret, b"root's secret");
    let (_server, mut client) = user_mount(root.path(), "").await;
    let dir = client.root.clone();
    let link = client
        .symlink(&dir, "link", "secret")
        .await
        .expect("uid 1000 makes a symlink");

    let read = client.read(&link, 0, 100).await;
    assert!(
        read.as_ref().is_err(),
        "READ of a symlink's handle answered {read:?}"
    );
    let written = client.write(&link, 0, b"overwritten").await;
    assert!(written.is_err(), "WRITE of a symlink's handle: {written:?}");
    let chmod = client.set_mode(&link, 0o666).await;
    let truncate = client.set_size(&link, 0).await;
    assert!(truncate.is_err(), "SETATTR size of a symlink: {truncate:?}");

    assert_eq!(std::fs::read(&secret).unwrap(), b"root's secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o600,
        "SETATTR mode of the symlink ({chmod:?}) changed its target"
    );
}

#[tokio::test]
async fn fifos_answer_inval_and_the_server_stays_responsive() {
    let root = tempdir("hostile-fifo");
    let (mut server, mut client) = user_mount(root.path(), "").await;
    let dir = client.root.clone();
    let fifo = client
        .mkfifo(&dir, "fifo", 0o666)
        .await
        .expect("uid 1000 makes a FIFO");

    // More READs and WRITEs at once than the server has async workers, each on a connection
    // of its own, as a hostile client would send them.
    let mut calls = Vec::new();
    for i in 0..16 {
        let fifo = fifo.clone();
        let mut other = server
            .try_mount_as("/data", Some(USER))
            .await
            .expect("mount");
        calls.push(async move {
            if i % 2 == 0 {
                other.read(&fifo, 0, 4096).await.map(|_| ())
            } else {
                other.write(&fifo, 0, b"data").await.map(|_| ())
            }
        });
    }
    let answers = tokio::time::timeout(PATIENCE, futures::future::join_all(calls))
        .await
        .expect("READ and WRITE of a FIFO were not answered");
    for answer in answers {
        assert_eq!(answer, Err(nfsstat3::NFS3ERR_INVAL));
    }

    let null = tokio::time::timeout(PATIENCE, client.null()).await;
    assert!(matches!(null, Ok(Ok(()))), "NULL went unanswered: {null:?}");
    let attrs = tokio::time::timeout(PATIENCE, client.getattr(&dir))
        .await
        .expect("GETATTR went unanswered");
    assert!(attrs.is_ok());
    // No call is stuck on a worker, so SIGTERM still stops the server (this panics if not).
    server.terminate();
}

#[tokio::test]
async fn a_directory_swapped_for_a_symlink_is_not_followed() {
    let root = tempdir("hostile-swap");
    let base = root.path();
    for dir in ["dir", "other"] {
        std::fs::create_dir(base.join(dir)).unwrap();
        std::fs::write(base.join(dir).join("f"), format!("{dir}'s file")).unwrap();
    }
    std::os::unix::fs::chown(base.join("dir/f"), Some(USER.0), Some(USER.1)).unwrap();
    std::os::unix::fs::chown(base.join("other/f"), Some(USER.0), Some(USER.1)).unwrap();
    let (_server, mut client) = user_mount(base, "").await;
    let file = client.lookup_path("dir/f").await.expect("LOOKUP dir/f");
    assert_eq!(client.read_all(&file).await.unwrap(), b"dir's file");

    // The host (trusted) swaps the directory for a symlink to another one between two calls.
    std::fs::rename(base.join("dir"), base.join("moved")).unwrap();
    symlink("other", base.join("dir")).unwrap();

    let read = client.read(&file, 0, 100).await;
    assert!(
        read.as_ref().is_err(),
        "READ through a swapped-in symlink answered {read:?}"
    );
    let written = client.write(&file, 0, b"changed").await;
    assert!(
        written.is_err(),
        "WRITE through a swapped-in symlink: {written:?}"
    );
    let chmod = client
        .setattr(
            &file,
            sattr3 {
                mode: Nfs3Option::Some(0o600),
                ..sattr3::default()
            },
        )
        .await;
    assert_eq!(
        std::fs::read(base.join("other/f")).unwrap(),
        b"other's file"
    );
    let mode = std::fs::metadata(base.join("other/f"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(
        mode & 0o7777,
        0o600,
        "SETATTR went through the symlink: {chmod:?}"
    );
}
