//! The same NFS behaviour from the bundled `local` plugin and the native `memory` backend:
//! each scenario runs against both (`backends::local::*`, `backends::memory::*`), through NFS
//! only. Then the `memory` backend's injected failures.

use nfs3_types::nfs3::{ftype3, nfsstat3};
use tempfile::TempDir;

use crate::harness::{local_mount, memory_mount, tempdir, Client, Server};

/// Which backend serves the mount `/data`.
#[derive(Clone, Copy)]
enum Served {
    Local,
    Memory,
}

/// A server with one read-write mount `/data`, a root client of it, and the directory a
/// `local` mount serves. Fields drop in order: the connection, the server, the directory.
struct Data {
    nfs: Client,
    server: Server,
    _dir: Option<TempDir>,
}

impl Data {
    async fn start(served: Served) -> Data {
        let (server, dir) = match served {
            Served::Local => {
                let dir = tempdir("nfsgw-backends-");
                (
                    Server::start(&local_mount("data", dir.path(), false, "")),
                    Some(dir),
                )
            }
            Served::Memory => (Server::start(&memory_mount("data", "")), None),
        };
        let nfs = server.mount("/data").await;
        Data {
            nfs,
            server,
            _dir: dir,
        }
    }
}

/// Defines one test per scenario and backend.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Served::Local).await
            })*
        }
        mod memory {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Served::Memory).await
            })*
        }
    };
}

on_every_backend!(
    writes_at_offsets_leave_holes_and_truncate,
    rename_replaces_and_refuses_what_posix_refuses,
    hard_links_share_one_file_id_and_count,
    symlinks_and_fifos_keep_what_they_were_made_with,
    new_files_belong_to_the_caller_and_modes_are_enforced,
    a_large_directory_is_listed_once_by_both_readdirs,
);

async fn writes_at_offsets_leave_holes_and_truncate(served: Served) {
    let mut data = Data::start(served).await;
    let nfs = &mut data.nfs;
    let top = nfs.root.clone();
    let f = nfs.put(&top, "f", b"hello").await;
    nfs.write_all(&f, 8, b"world").await.unwrap();
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"hello\0\0\0world");
    nfs.write_all(&f, 1, b"ELL").await.unwrap();
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"hELLo\0\0\0world");
    let attrs = nfs.set_size(&f, 4).await.unwrap().expect("attributes");
    assert_eq!(attrs.size, 4);
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"hELL");
    assert_eq!(nfs.read(&f, 10, 5).await.unwrap(), (Vec::new(), true));
}

async fn rename_replaces_and_refuses_what_posix_refuses(served: Served) {
    let mut data = Data::start(served).await;
    let nfs = &mut data.nfs;
    let top = nfs.root.clone();
    let empty = nfs.mkdir(&top, "empty").await.unwrap();
    let full = nfs.mkdir(&top, "full").await.unwrap();
    nfs.put(&full, "inside", b"i").await;
    let a = nfs.put(&top, "a", b"from a").await;
    nfs.put(&top, "b", b"from b").await;

    nfs.rename(&top, "a", &top, "b").await.unwrap();
    assert_eq!(nfs.read_path("b").await, b"from a");
    assert_eq!(
        nfs.read_all(&a).await.unwrap(),
        b"from a",
        "a's handle follows it"
    );
    assert_eq!(
        nfs.lookup(&top, "a").await.unwrap_err(),
        nfsstat3::NFS3ERR_NOENT
    );
    assert_eq!(
        nfs.rename(&top, "empty", &top, "full").await.unwrap_err(),
        nfsstat3::NFS3ERR_NOTEMPTY
    );
    assert_eq!(
        nfs.rename(&top, "b", &top, "empty").await.unwrap_err(),
        nfsstat3::NFS3ERR_ISDIR
    );
    assert_eq!(
        nfs.rmdir(&top, "full").await.unwrap_err(),
        nfsstat3::NFS3ERR_NOTEMPTY
    );
    // A directory moves into another, handles inside it keep working.
    nfs.rename(&top, "full", &empty, "moved").await.unwrap();
    assert_eq!(nfs.read_path("empty/moved/inside").await, b"i");
    assert_eq!(nfs.getattr(&full).await.unwrap().type_, ftype3::NF3DIR);
    nfs.remove(&full, "inside").await.unwrap();
    nfs.rmdir(&empty, "moved").await.unwrap();
    nfs.rmdir(&top, "empty").await.unwrap();
    assert_eq!(nfs.readdirplus_all(&top).await.unwrap().names(), ["b"]);
}

async fn hard_links_share_one_file_id_and_count(served: Served) {
    let mut data = Data::start(served).await;
    let nfs = &mut data.nfs;
    let top = nfs.root.clone();
    let a = nfs.put(&top, "a", b"shared").await;
    let attrs = nfs.link(&a, &top, "b").await.unwrap().expect("attributes");
    assert_eq!(attrs.nlink, 2);
    let b = nfs.lookup(&top, "b").await.unwrap();
    assert_eq!(
        nfs.getattr(&a).await.unwrap().fileid,
        nfs.getattr(&b).await.unwrap().fileid
    );
    nfs.write_all(&b, 0, b"SHARED").await.unwrap();
    assert_eq!(nfs.read_all(&a).await.unwrap(), b"SHARED");
    nfs.remove(&top, "a").await.unwrap();
    assert_eq!(nfs.getattr(&b).await.unwrap().nlink, 1);
    assert_eq!(nfs.read_all(&b).await.unwrap(), b"SHARED");
}

async fn symlinks_and_fifos_keep_what_they_were_made_with(served: Served) {
    let mut data = Data::start(served).await;
    let nfs = &mut data.nfs;
    let top = nfs.root.clone();
    let link = nfs.symlink(&top, "l", "some/where/else").await.unwrap();
    assert_eq!(nfs.readlink(&link).await.unwrap(), "some/where/else");
    assert_eq!(nfs.getattr(&link).await.unwrap().type_, ftype3::NF3LNK);
    let fifo = nfs.mkfifo(&top, "pipe", 0o620).await.unwrap();
    let attrs = nfs.getattr(&fifo).await.unwrap();
    assert_eq!((attrs.type_, attrs.mode & 0o7777), (ftype3::NF3FIFO, 0o620));
    assert_eq!(
        nfs.read(&fifo, 0, 10).await.unwrap_err(),
        nfsstat3::NFS3ERR_INVAL
    );
    assert_eq!(
        nfs.symlink(&top, "pipe", "x").await.unwrap_err(),
        nfsstat3::NFS3ERR_EXIST
    );
}

async fn new_files_belong_to_the_caller_and_modes_are_enforced(served: Served) {
    let mut data = Data::start(served).await;
    let (nfs, server) = (&mut data.nfs, &data.server);
    let top = nfs.root.clone();
    nfs.set_mode(&top, 0o777).await.unwrap();
    let secret = nfs.put(&top, "roots", b"secret").await;
    nfs.set_mode(&secret, 0o600).await.unwrap();

    let mut user = server
        .try_mount_as("/data", Some((1234, 567)))
        .await
        .unwrap();
    let mine = user.create(&top, "mine", 0o640).await.unwrap();
    let attrs = user.getattr(&mine).await.unwrap();
    assert_eq!(
        (attrs.uid, attrs.gid, attrs.mode & 0o7777),
        (1234, 567, 0o640)
    );
    assert_eq!(
        user.read(&secret, 0, 10).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        user.set_mode(&secret, 0o666).await.unwrap_err(),
        nfsstat3::NFS3ERR_PERM
    );
    assert_eq!(nfs.read(&secret, 0, 10).await.unwrap().0, b"secret");
}

async fn a_large_directory_is_listed_once_by_both_readdirs(served: Served) {
    let mut data = Data::start(served).await;
    let nfs = &mut data.nfs;
    let top = nfs.root.clone();
    let dir = nfs.mkdir(&top, "many").await.unwrap();
    let want: Vec<String> = (0..1200).map(|i| format!("entry-{i:05}")).collect();
    for name in &want {
        nfs.create(&dir, name, 0o644).await.unwrap();
    }
    let listed = nfs.readdirplus_all(&dir).await.unwrap();
    assert!(listed.pages > 1, "one page: {}", listed.pages);
    assert_eq!(listed.names(), want);
    let mut names = nfs.readdir_names(&dir).await.unwrap();
    names.sort();
    assert_eq!(names, want);
}

/// With `fail_ops = "write"` and `fail_every = 2`, every second WRITE fails with
/// NFS3ERR_IO and changes nothing; the others, and every other call, succeed.
#[tokio::test]
async fn memory_fails_every_second_write_and_keeps_serving() {
    let server = Server::start(&memory_mount(
        "data",
        "fail_ops = \"write\"\nfail_every = 2\n",
    ));
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let f = nfs.create(&top, "f", 0o644).await.unwrap();
    let mut outcomes = Vec::new();
    for (i, byte) in b"abcdef".iter().enumerate() {
        outcomes.push(nfs.write(&f, i as u64, &[*byte]).await);
    }
    let io = Err(nfsstat3::NFS3ERR_IO);
    assert_eq!(outcomes, [Ok(1), io, Ok(1), io, Ok(1), io]);
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"a\0c\0e");

    // The server goes on serving this client and new ones.
    nfs.mkdir(&top, "d").await.unwrap();
    let mut other = server.mount("/data").await;
    assert_eq!(other.read_path("f").await, b"a\0c\0e");
    assert_eq!(
        other.readdirplus_all(&top).await.unwrap().names(),
        ["d", "f"]
    );
}

/// A setting the backend does not know stops the server with a message that names it.
#[test]
fn memory_refuses_settings_it_does_not_know() {
    let mount = memory_mount("data", "fail_ops = \"frobnicate\"\n");
    let config = format!("[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n\n{mount}");
    let Err(exited) = crate::harness::spawn(&config) else {
        panic!("a mount with an unknown operation started");
    };
    assert!(exited.stderr.contains("\"frobnicate\""), "{exited}");
}
