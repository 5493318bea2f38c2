//! POSIX behaviour the gateway adds over any plugin, through the `local` plugin: the caller's
//! credentials (owners of new files, permission checks), hard links, special files, COMMIT,
//! plain READDIR paging, and file handles that survive a restart.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use nfs3_types::nfs3::{ftype3, nfsstat3, stable_how};

use crate::harness::{local_mount, tempdir, Server};

fn data_server(dir: &std::path::Path) -> Server {
    Server::start(&local_mount("data", dir, false, ""))
}

#[tokio::test]
async fn new_files_belong_to_the_caller() {
    let dir = tempdir("nfsgw-posix-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = data_server(dir.path());
    let mut user = server
        .try_mount_as("/data", Some((1234, 567)))
        .await
        .unwrap();
    let root = user.root.clone();
    user.create(&root, "mine", 0o640).await.unwrap();
    user.mkdir(&root, "mydir").await.unwrap();
    let meta = std::fs::metadata(dir.path().join("mine")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 567, 0o640)
    );
    let meta = std::fs::metadata(dir.path().join("mydir")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 567));
}

#[tokio::test]
async fn permission_bits_and_ownership_are_enforced() {
    let dir = tempdir("nfsgw-posix-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("roots"), b"secret").unwrap();
    std::fs::set_permissions(
        dir.path().join("roots"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let server = data_server(dir.path());
    let mut root_client = server.mount("/data").await;
    let top = root_client.root.clone();
    let file = root_client.lookup(&top, "roots").await.unwrap();

    let mut user = server
        .try_mount_as("/data", Some((1000, 1000)))
        .await
        .unwrap();
    assert_eq!(
        user.create(&top, "x", 0o644).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        user.read(&file, 0, 10).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        user.set_mode(&file, 0o666).await.unwrap_err(),
        nfsstat3::NFS3ERR_PERM
    );
    assert_eq!(
        user.remove(&top, "roots").await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    // Anonymous (AUTH_NULL) callers are the nobody user.
    let mut anonymous = server.try_mount_as("/data", None).await.unwrap();
    assert_eq!(
        anonymous.create(&top, "y", 0o644).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    // Nothing changed on disk.
    assert_eq!(
        std::fs::metadata(dir.path().join("roots")).unwrap().mode() & 0o777,
        0o600
    );
    assert!(!dir.path().join("x").exists() && !dir.path().join("y").exists());
    // Root may.
    assert_eq!(root_client.read(&file, 0, 10).await.unwrap().0, b"secret");
}

#[tokio::test]
async fn sticky_directories_keep_other_users_files() {
    let dir = tempdir("nfsgw-posix-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let server = data_server(dir.path());
    let mut alice = server
        .try_mount_as("/data", Some((1001, 1001)))
        .await
        .unwrap();
    let mut bob = server
        .try_mount_as("/data", Some((1002, 1002)))
        .await
        .unwrap();
    let top = alice.root.clone();
    alice.create(&top, "alices", 0o666).await.unwrap();
    assert_eq!(
        bob.remove(&top, "alices").await.unwrap_err(),
        nfsstat3::NFS3ERR_PERM
    );
    assert_eq!(
        bob.rename(&top, "alices", &top, "bobs").await.unwrap_err(),
        nfsstat3::NFS3ERR_PERM
    );
    alice.remove(&top, "alices").await.unwrap();
}

#[tokio::test]
async fn hard_links_share_one_file_id_and_count() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let a = nfs.put(&top, "a", b"shared").await;
    let attrs = nfs.link(&a, &top, "b").await.unwrap().expect("attributes");
    assert_eq!(attrs.nlink, 2);
    let b = nfs.lookup(&top, "b").await.unwrap();
    let (at_a, at_b) = (
        nfs.getattr(&a).await.unwrap(),
        nfs.getattr(&b).await.unwrap(),
    );
    assert_eq!(at_a.fileid, at_b.fileid, "both names are one inode");
    assert_eq!(
        std::fs::metadata(dir.path().join("a")).unwrap().ino(),
        std::fs::metadata(dir.path().join("b")).unwrap().ino()
    );
    nfs.remove(&top, "a").await.unwrap();
    let after = nfs.getattr(&b).await.unwrap();
    assert_eq!(after.nlink, 1);
    assert_eq!(nfs.read_all(&b).await.unwrap(), b"shared");
    // The handle of the removed name still reaches the file through its other name.
    assert_eq!(nfs.read_all(&a).await.unwrap(), b"shared");
}

/// A file the Linux client unlinked while open is renamed to `.nfs<24 hex digits>` until the
/// last close ("silly rename"); that name is not a link, so the open file shows 0 links (as
/// `fstat` of an unlinked open file does locally) and keeps working. Other names still count.
#[tokio::test]
async fn a_silly_renamed_file_counts_no_link_for_that_name() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let silly = ".nfs00000000000012ab00000001";
    let open = nfs.put(&top, "open", b"still open").await;
    nfs.rename(&top, "open", &top, silly).await.unwrap();
    assert_eq!(nfs.getattr(&open).await.unwrap().nlink, 0);
    nfs.write_all(&open, 0, b"written after").await.unwrap();
    assert_eq!(nfs.read_all(&open).await.unwrap(), b"written after");
    let listed = nfs.readdirplus_all(&top).await.unwrap();
    let entry = listed
        .entries
        .iter()
        .find(|e| e.name == silly)
        .expect("listed");
    assert_eq!(entry.attrs.as_ref().expect("attributes").nlink, 0);
    // The client removes the name at the last close.
    nfs.remove(&top, silly).await.unwrap();
    assert!(!dir.path().join(silly).exists());

    // A file with another name keeps that one link; names merely like the pattern count.
    let linked = nfs.put(&top, "linked", b"x").await;
    nfs.link(&linked, &top, "other").await.unwrap();
    nfs.rename(&top, "linked", &top, ".nfs00000000000012ac00000002")
        .await
        .unwrap();
    assert_eq!(nfs.getattr(&linked).await.unwrap().nlink, 1);
    for name in [".nfs00000000000012AD00000003", ".nfs12ad", ".nfsfile"] {
        let fh = nfs.put(&top, name, b"y").await;
        assert_eq!(nfs.getattr(&fh).await.unwrap().nlink, 1, "{name}");
    }
}

#[tokio::test]
async fn fifos_are_made_with_their_mode() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let fifo = nfs.mkfifo(&top, "pipe", 0o620).await.unwrap();
    let attrs = nfs.getattr(&fifo).await.unwrap();
    assert!(matches!(attrs.type_, ftype3::NF3FIFO));
    assert_eq!(attrs.mode & 0o7777, 0o620);
    let meta = std::fs::symlink_metadata(dir.path().join("pipe")).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(
        meta.mode() & 0o7777,
        0o620,
        "nfsgw's umask does not narrow the mode"
    );
}

#[tokio::test]
async fn unstable_writes_are_committed_under_one_verifier() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let f = nfs.create(&top, "u", 0o644).await.unwrap();
    let (n, how, verf) = nfs.write_unstable(&f, 0, b"unstable bytes").await.unwrap();
    assert_eq!((n, how), (14, stable_how::UNSTABLE));
    assert_eq!(
        nfs.commit(&f).await.unwrap(),
        verf,
        "no restart: the verifier is the same"
    );
    assert_eq!(
        std::fs::read(dir.path().join("u")).unwrap(),
        b"unstable bytes"
    );

    // After a restart the verifier differs, so a client knows to resend uncommitted data.
    let server = server.restart();
    let mut nfs = server.mount("/data").await;
    assert_ne!(nfs.commit(&f).await.unwrap(), verf);
}

#[tokio::test]
async fn plain_readdir_pages_by_cookie() {
    let dir = tempdir("nfsgw-posix-");
    for i in 0..1500 {
        std::fs::write(dir.path().join(format!("entry-{i:05}")), b"").unwrap();
    }
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let mut names = nfs.readdir_names(&top).await.unwrap();
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(
        (total, names.len()),
        (1500, 1500),
        "every entry exactly once"
    );
}

#[tokio::test]
async fn file_handles_survive_a_restart_and_a_rename() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let sub = nfs.mkdir(&top, "sub").await.unwrap();
    let file = nfs.put(&sub, "f", b"before restart").await;
    drop(nfs);

    let server = server.restart();
    let mut nfs = server.mount("/data").await;
    assert_eq!(
        nfs.read_all(&file).await.unwrap(),
        b"before restart",
        "no ESTALE after a restart"
    );
    nfs.rename(&top, "sub", &top, "moved").await.unwrap();
    nfs.write_all(&file, 0, b"AFTER").await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("moved/f")).unwrap(),
        b"AFTERe restart"
    );

    // And once more: the rename made before this restart is remembered.
    drop(nfs);
    let server = server.restart();
    let mut nfs = server.mount("/data").await;
    assert_eq!(nfs.read_all(&file).await.unwrap(), b"AFTERe restart");
    let fresh = nfs.put(&top, "new", b"n").await;
    assert_ne!(
        nfs.getattr(&fresh).await.unwrap().fileid,
        nfs.getattr(&file).await.unwrap().fileid
    );
}

/// A plugin given by path gets exactly the directories its `[[mount.dirs]]` grant, with the
/// access they grant: here the `local` component, loaded as a user plugin.
#[tokio::test]
async fn a_user_plugin_gets_exactly_its_granted_directories() {
    let plugin_dir = tempdir("nfsgw-posix-plugin-");
    let wasm = plugin_dir.path().join("local.wasm");
    std::fs::write(&wasm, crate::harness::local_wasm()).unwrap();
    let (writable, frozen) = (tempdir("nfsgw-posix-rw-"), tempdir("nfsgw-posix-ro-"));
    std::fs::write(frozen.path().join("kept"), b"kept").unwrap();
    let mount = |name: &str, guest: &str, read_only: bool| {
        format!(
            "[[mount]]\nname = \"{name}\"\nplugin = {wasm:?}\nroot_squash = false\nsecure = false\n[mount.config]\nroot = \"{guest}\"\n\
             [[mount.dirs]]\nhost = {:?}\nguest = \"{guest}\"\nread_only = {read_only}\n\n",
            if read_only { frozen.path() } else { writable.path() },
        )
    };
    let server = Server::start(&(mount("rw", "/grant", false) + &mount("ro", "/frozen", true)));
    let mut rw = server.mount("/rw").await;
    let top = rw.root.clone();
    rw.put(&top, "made", b"through a user plugin").await;
    assert_eq!(
        std::fs::read(writable.path().join("made")).unwrap(),
        b"through a user plugin"
    );

    let mut ro = server.mount("/ro").await;
    let top = ro.root.clone();
    assert_eq!(ro.read_path("kept").await, b"kept");
    // The mount is read-write, the grant is not: the host refuses the change.
    assert_eq!(
        ro.create(&top, "nope", 0o644).await.unwrap_err(),
        nfsstat3::NFS3ERR_ROFS
    );
    assert!(!frozen.path().join("nope").exists());
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempdir("nfsgw-posix-");
    let mut server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    nfs.put(&top, "before-term", b"kept").await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        server.stderr().contains("terminated; shutting down"),
        "{}",
        server.stderr()
    );
    assert_eq!(
        std::fs::read(dir.path().join("before-term")).unwrap(),
        b"kept"
    );
}

/// Plugins store UTF-8 names: any UTF-8 name works, and a name that is not UTF-8 is refused
/// with NFS3ERR_INVAL, leaving nothing behind.
#[tokio::test]
async fn names_in_any_utf8_work_and_other_bytes_are_refused_clearly() {
    let dir = tempdir("nfsgw-posix-");
    let server = data_server(dir.path());
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    for name in ["日本語.txt", "emoji-🦀", "spaces and\ttabs", "ǅ-mixed-Case"] {
        nfs.create(&top, name, 0o644).await.unwrap();
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    assert_eq!(
        nfs.create_raw(&top, b"latin1-\xe9t\xe9").await,
        Err(nfsstat3::NFS3ERR_INVAL)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

/// A mount serves only the clients its `allow` list names (loopback when it names none): the
/// others are refused at MNT and on every handle, before a call reaches the plugin.
#[tokio::test]
async fn clients_outside_the_allow_list_are_refused() {
    let (open, closed) = (tempdir("nfsgw-posix-"), tempdir("nfsgw-posix-"));
    std::fs::write(closed.path().join("secret"), b"secret").unwrap();
    let server = Server::start(&format!(
        "{}[[mount]]\nname = \"closed\"\nplugin = \"local\"\nallow = [\"127.0.0.2\", \"10.0.0.0/8\"]\n\
         secure = false\n[mount.config]\nroot = {:?}\n",
        local_mount("open", open.path(), false, ""),
        closed.path(),
    ));
    // This client connects from 127.0.0.1: a loopback address, but not 127.0.0.2.
    let mut nfs = server.mount("/open").await;
    assert!(
        server.try_mount("/closed").await.is_err(),
        "MNT of a mount that does not allow us"
    );
    // A handle learned some other way is refused too: look the mount up from the export root.
    let mut root = server.mount("/").await;
    let top = root.root.clone();
    assert_eq!(
        root.lookup(&top, "closed").await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    let names = root.readdirplus_all(&top).await.unwrap().names();
    assert!(names.contains(&"open".to_string()), "{names:?}");
    let open_top = nfs.root.clone();
    nfs.put(&open_top, "fine", b"ok").await;
    assert!(
        server.stderr().contains("not in the mount's allow list"),
        "{}",
        server.stderr()
    );
}
