//! The inode journal under damage and failure (issue #28, item 7): file handles must survive a
//! restart even when one record of the journal is damaged (replay reports the damage on stderr
//! and keeps every later record), and a journal that cannot be written fails the call that
//! depended on it with NFS3ERR_IO instead of answering as if its handle were safe.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nfs3_types::nfs3::nfsstat3;

use crate::harness::{spawn_with_file_size_limit, squashed_local_mount, tempdir, Server};

const USER: (u32, u32) = (1000, 1000);

/// Every inode journal under `dir`.
fn journals(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(journals(&path));
        } else if path.extension().is_some_and(|e| e == "inodes") {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_damaged_record_costs_only_itself() {
    let root = tempdir("hostile-journal");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut server = Server::start(&squashed_local_mount("data", root.path(), ""));
    let mut client = server.try_mount_as("/data", Some(USER)).await.unwrap();
    let dir = client.root.clone();
    let names = ["first-file", "damaged-file", "last-file"];
    let mut handles = Vec::new();
    for name in names {
        handles.push(client.create(&dir, name, 0o644).await.unwrap());
    }
    drop(client);
    server.terminate();

    let journal = journals(&server.dir.path().join("state"));
    assert_eq!(journal.len(), 1, "one mount, one journal: {journal:?}");
    let mut data = std::fs::read(&journal[0]).unwrap();
    let at = data
        .windows(names[1].len())
        .position(|w| w == names[1].as_bytes())
        .expect("the journal names the file");
    // The record's tag: one byte before its inode number and the path's length.
    assert_eq!(data[at - 13], b'N');
    data[at - 13] = 0xff;
    std::fs::write(&journal[0], &data).unwrap();

    let server = server.restart();
    assert!(
        server.stderr().contains("damaged"),
        "the skipped record is not reported:\n{}",
        server.stderr()
    );
    let mut client = server.try_mount_as("/data", Some(USER)).await.unwrap();
    for (name, handle) in [(names[0], &handles[0]), (names[2], &handles[2])] {
        let attrs = client.getattr(handle).await;
        assert!(
            attrs.is_ok(),
            "the handle of {name} did not survive the restart: {attrs:?}"
        );
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_fails_the_call() {
    let root = tempdir("hostile-journal-full");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n\n{}",
        squashed_local_mount("data", root.path(), "")
    );
    // No file nfsgw writes may grow past 16 KiB: soon the journal cannot take another record.
    let server = spawn_with_file_size_limit(&config, 16 << 10)
        .unwrap_or_else(|exited| panic!("nfsgw did not start\n{exited}"));
    let mut client = server.try_mount_as("/data", Some(USER)).await.unwrap();
    let dir = client.root.clone();
    let long = "n".repeat(200);
    let creates = async {
        for i in 0..400 {
            if let Err(status) = client.create(&dir, &format!("{long}{i}"), 0o644).await {
                return Some((i, status));
            }
        }
        None
    };
    // Only a guard against a hang: the 400 calls take well under a second when answered.
    let refused = tokio::time::timeout(Duration::from_secs(120), creates)
        .await
        .expect("CREATE went unanswered");
    let Some((i, status)) = refused else {
        panic!("400 files were created with a journal that cannot grow past 16 KiB");
    };
    assert_eq!(status, nfsstat3::NFS3ERR_IO, "CREATE number {i}");
    // The server goes on answering what needs no journal record.
    assert!(client.getattr(&dir).await.is_ok());
    assert!(
        server.stderr().contains("inode journal"),
        "the failure is not logged:\n{}",
        server.stderr()
    );
}
