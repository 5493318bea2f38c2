//! Hostile clients against the gateway's own checks: an ordinary uid (AUTH_UNIX 1000) on a
//! default local mount, root squashed, whose root holds a root-owned `0600` file and a
//! world-writable sticky directory. Each test plays one way such a client took what is not
//! its own on earlier builds (reading and writing through a symlink's handle, taking an
//! existing file over with CREATE, hard-linking a file it may not read, making device nodes)
//! and checks that the gateway refuses it before the plugin or the host file system sees it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nfs3_types::nfs3::{createhow3, createverf3, nfsstat3, sattr3, Nfs3Option};
use tempfile::TempDir;

use crate::harness::{squashed_local_mount, tempdir, Client, Server};

const SECRET: &[u8] = b"root's secret, not for uid 1000";

/// A served directory as the issue describes it: `secret` (root's, `0600`) at the root, which
/// is root's `0755`, and `shared`, a `1777` directory, holding `victim` (root's, `0600`).
fn hostile_tree() -> TempDir {
    let root = tempdir("nfsgw-hostile-gw-");
    let at = root.path();
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
    for path in [at.join("secret"), at.join("shared/victim")] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, SECRET).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(at.join("shared"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    root
}

/// The tree served with nfsgw's defaults (plus `mount_keys`), and a client of uid 1000.
async fn serve_to_uid_1000(root: &Path, mount_keys: &str) -> (Server, Client) {
    let server = Server::start(&squashed_local_mount("data", root, mount_keys));
    let client = server
        .try_mount_as("/data", Some((1000, 1000)))
        .await
        .unwrap_or_else(|e| panic!("mount as uid 1000: {e:?}\n{}", server.stderr()));
    (server, client)
}

/// Asserts a root-owned file is still root's, `0600`, with the secret in it.
fn assert_untouched(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o600),
        "{} changed hands",
        path.display()
    );
    assert_eq!(std::fs::read(path).unwrap(), SECRET, "{}", path.display());
}

/// A symlink's handle used as a directory (found by `hostile::model`): uid 1000 links to a
/// directory of root's that it may not change, and must not reach it through the link.
#[tokio::test(flavor = "multi_thread")]
async fn directory_calls_on_a_symlinks_handle_are_not_dir() {
    let tree = hostile_tree();
    let private = tree.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::write(private.join("inner"), SECRET).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (_server, mut nfs) = serve_to_uid_1000(tree.path(), "").await;
    let root = nfs.root.clone();
    let shared = nfs.lookup(&root, "shared").await.unwrap();
    let link = nfs
        .symlink(&shared, "to-private", "../private")
        .await
        .unwrap();
    let not_dir = Some(nfsstat3::NFS3ERR_NOTDIR);
    assert_eq!(nfs.lookup(&link, "inner").await.err(), not_dir);
    assert_eq!(nfs.remove(&link, "inner").await.err(), not_dir);
    assert_eq!(nfs.create(&link, "planted", 0o644).await.err(), not_dir);
    assert_eq!(nfs.mkdir(&link, "planted-dir").await.err(), not_dir);
    assert_eq!(
        nfs.rename(&link, "inner", &shared, "taken").await.err(),
        not_dir
    );
    assert_eq!(std::fs::read(private.join("inner")).unwrap(), SECRET);
    let mut names: Vec<_> = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["inner"],
        "nothing was made or taken through the link"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_and_commit_act_on_the_symlink_not_its_target() {
    let tree = hostile_tree();
    let (_server, mut nfs) = serve_to_uid_1000(tree.path(), "").await;
    let root = nfs.root.clone();
    let shared = nfs.lookup(&root, "shared").await.unwrap();
    let link = nfs.symlink(&shared, "link", "../secret").await.unwrap();

    assert_eq!(
        nfs.read(&link, 0, 4096).await.err(),
        Some(nfsstat3::NFS3ERR_INVAL)
    );
    assert_eq!(
        nfs.write(&link, 0, b"owned").await.err(),
        Some(nfsstat3::NFS3ERR_INVAL)
    );
    assert_eq!(nfs.commit(&link).await.err(), Some(nfsstat3::NFS3ERR_INVAL));
    // A directory's handle is no file either (knfsd's answer).
    assert_eq!(
        nfs.read(&shared, 0, 4096).await.err(),
        Some(nfsstat3::NFS3ERR_ISDIR)
    );
    assert_untouched(&tree.path().join("secret"));
    // The link itself is still what it was.
    assert_eq!(nfs.readlink(&link).await.unwrap(), "../secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_on_an_existing_file_never_gives_it_to_the_caller() {
    let tree = hostile_tree();
    let (_server, mut nfs) = serve_to_uid_1000(tree.path(), "").await;
    let root = nfs.root.clone();
    let shared = nfs.lookup(&root, "shared").await.unwrap();
    let victim_path = tree.path().join("shared/victim");

    // UNCHECKED on an existing file answers the file as it is: its owner stays.
    let unchecked = createhow3::UNCHECKED(sattr3::default());
    let victim = nfs.create_how(&shared, "victim", unchecked).await.unwrap();
    assert_untouched(&victim_path);
    // Its attributes go through SETATTR's rules: truncating needs write permission, and only
    // root gives a file away.
    let truncate = createhow3::UNCHECKED(sattr3 {
        size: Nfs3Option::Some(0),
        ..sattr3::default()
    });
    assert_eq!(
        nfs.create_how(&shared, "victim", truncate).await.err(),
        Some(nfsstat3::NFS3ERR_ACCES)
    );
    let chown = createhow3::UNCHECKED(sattr3 {
        uid: Nfs3Option::Some(1000),
        ..sattr3::default()
    });
    assert_eq!(
        nfs.create_how(&shared, "victim", chown).await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert_untouched(&victim_path);
    assert_eq!(
        nfs.create_guarded(&shared, "victim").await.err(),
        Some(nfsstat3::NFS3ERR_EXIST)
    );
    // An EXCLUSIVE create whose verifier copies the file's times is no retransmission of the
    // caller's own create.
    let mtime = nfs.getattr(&victim).await.unwrap().mtime;
    let mut verifier = [0; 8];
    verifier[..4].copy_from_slice(&mtime.seconds.to_be_bytes());
    verifier[4..].copy_from_slice(&mtime.nseconds.to_be_bytes());
    let exclusive = createhow3::EXCLUSIVE(createverf3(verifier));
    assert_eq!(
        nfs.create_how(&shared, "victim", exclusive).await.err(),
        Some(nfsstat3::NFS3ERR_EXIST)
    );
    assert_untouched(&victim_path);
    // A new file is the caller's, as before.
    nfs.create(&shared, "mine", 0o644).await.unwrap();
    let mine = std::fs::metadata(tree.path().join("shared/mine")).unwrap();
    assert_eq!((mine.uid(), mine.gid()), (1000, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn link_needs_a_file_the_caller_owns_or_may_read_and_write() {
    let tree = hostile_tree();
    let (_server, mut nfs) = serve_to_uid_1000(tree.path(), "").await;
    let root = nfs.root.clone();
    let shared = nfs.lookup(&root, "shared").await.unwrap();
    let secret = nfs.lookup(&root, "secret").await.unwrap();

    assert_eq!(
        nfs.link(&secret, &shared, "stolen").await.err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert!(!tree.path().join("shared/stolen").exists());
    assert_eq!(
        std::fs::metadata(tree.path().join("secret"))
            .unwrap()
            .nlink(),
        1
    );
    // Its own file it may link.
    let mine = nfs.create(&shared, "mine", 0o600).await.unwrap();
    nfs.link(&mine, &shared, "mine-too").await.unwrap();
    assert!(tree.path().join("shared/mine-too").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn device_nodes_are_refused_to_everyone_but_an_allowed_root() {
    let tree = hostile_tree();
    let (server, mut nfs) = serve_to_uid_1000(tree.path(), "").await;
    let root = nfs.root.clone();
    let shared = nfs.lookup(&root, "shared").await.unwrap();
    // /dev/sda and /dev/mem.
    for (name, block, device) in [("disk", true, (8, 0)), ("mem", false, (1, 1))] {
        assert_eq!(
            nfs.mknod_device(&shared, name, block, 0o666, device)
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_PERM),
            "{name}"
        );
        assert!(!tree.path().join("shared").join(name).exists(), "{name}");
    }
    // Root is squashed by default: it is nobody, and may not either.
    let mut squashed_root = server.try_mount_as("/data", Some((0, 0))).await.unwrap();
    assert_eq!(
        squashed_root
            .mknod_device(&shared, "disk", true, 0o666, (8, 0))
            .await
            .err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert!(!tree.path().join("shared/disk").exists());
    // A fifo is no device: anyone may make one.
    nfs.mkfifo(&shared, "pipe", 0o644).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_need_allow_devices_even_for_an_unsquashed_root() {
    let tree = hostile_tree();
    let server = Server::start(&squashed_local_mount(
        "data",
        tree.path(),
        "root_squash = false",
    ));
    let mut root_client = server.try_mount_as("/data", Some((0, 0))).await.unwrap();
    let root = root_client.root.clone();
    assert_eq!(
        root_client
            .mknod_device(&root, "disk", true, 0o600, (8, 0))
            .await
            .err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );
    assert!(!tree.path().join("disk").exists());
}
