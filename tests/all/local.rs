//! The bundled `local` plugin end to end: every change is checked both through NFS and
//! directly in the host directory it serves.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nfs3_types::nfs3::{
    createhow3, ftype3, nfs_fh3, nfsstat3, nfstime3, sattr3, set_atime, set_mtime, Nfs3Option,
};
use tempfile::TempDir;

use crate::harness::{
    host_mode, host_names, host_snapshot, is_dir, local_mount, nfs_time, random_bytes, tempdir,
    Client, Server,
};

const MIB: usize = 1 << 20;

/// A server with one read-write `local` mount `/data`, and a client of it. Fields drop in
/// order: the connection, then the server, then the directory.
struct Local {
    nfs: Client,
    server: Server,
    dir: TempDir,
}

impl Local {
    async fn start(extra_config: &str) -> Local {
        let dir = tempdir("nfsgw-local-");
        let server = Server::start(&local_mount("data", dir.path(), false, extra_config));
        let nfs = server.mount("/data").await;
        Local { nfs, server, dir }
    }

    fn host(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

/// Compares large byte strings, reporting the first difference instead of both in full.
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} bytes read, {} expected; first difference at byte {at}",
            got.len(),
            want.len()
        );
    }
}

fn mtime_of(path: &Path) -> SystemTime {
    std::fs::symlink_metadata(path).unwrap().modified().unwrap()
}

#[tokio::test]
async fn write_and_read_back_at_offsets() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let fh = t.nfs.create(&root, "big.bin", 0o644).await.unwrap();

    let mut model = random_bytes(1, 3 * MIB + 12_345);
    t.nfs.write_all(&fh, 0, &model).await.unwrap();
    // Unaligned writes over the data, and one that runs past the end and grows the file.
    let end = model.len();
    let patches = [
        (1, 1000),
        (4097, 65_536),
        (1_000_003, 300_001),
        (2 * MIB - 1, 2),
        (end - 10, 5000),
    ];
    for (i, &(offset, len)) in patches.iter().enumerate() {
        let patch = random_bytes(100 + i as u64, len);
        t.nfs.write_all(&fh, offset as u64, &patch).await.unwrap();
        if model.len() < offset + len {
            model.resize(offset + len, 0);
        }
        model[offset..offset + len].copy_from_slice(&patch);
    }

    let attrs = t.nfs.getattr(&fh).await.unwrap();
    assert_eq!(attrs.size, model.len() as u64, "GETATTR size");
    assert_eq!(attrs.type_, ftype3::NF3REG);
    assert_bytes(
        "READ of the whole file",
        &t.nfs.read_all(&fh).await.unwrap(),
        &model,
    );
    assert_bytes(
        "the file on the host",
        &std::fs::read(t.host("big.bin")).unwrap(),
        &model,
    );

    // Ranges in the middle, unaligned, and across the end.
    for (offset, len) in [
        (1_234_567usize, 100_000usize),
        (4095, 2),
        (MIB - 3, 2 * MIB),
        (model.len() - 7, 100),
    ] {
        let got = t.nfs.read_range(&fh, offset as u64, len).await.unwrap();
        let want = &model[offset..(offset + len).min(model.len())];
        assert_bytes(&format!("READ of {len} bytes at {offset}"), &got, want);
    }
    // At and past the end: nothing, and eof.
    let (data, eof) = t.nfs.read(&fh, model.len() as u64, 100).await.unwrap();
    assert!(
        data.is_empty() && eof,
        "READ at the end: {} bytes, eof {eof}",
        data.len()
    );
    let (data, eof) = t
        .nfs
        .read(&fh, model.len() as u64 + 5000, 100)
        .await
        .unwrap();
    assert!(
        data.is_empty() && eof,
        "READ past the end: {} bytes, eof {eof}",
        data.len()
    );
    // A short read that does not reach the end is not eof.
    let (data, eof) = t.nfs.read(&fh, 0, 10).await.unwrap();
    assert_eq!((data.as_slice(), eof), (&model[..10], false));

    // A write past the end leaves a hole of zeros.
    let gap_at = model.len() + 70_000;
    t.nfs
        .write_all(&fh, gap_at as u64, b"after the gap")
        .await
        .unwrap();
    model.resize(gap_at, 0);
    model.extend_from_slice(b"after the gap");
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, model.len() as u64);
    assert_bytes(
        "READ after a write past the end",
        &t.nfs.read_all(&fh).await.unwrap(),
        &model,
    );
    assert_bytes(
        "host after a write past the end",
        &std::fs::read(t.host("big.bin")).unwrap(),
        &model,
    );
}

#[tokio::test]
async fn overwrite_in_the_middle_keeps_the_rest() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let mut model = vec![b'a'; 100_000];
    let fh = t.nfs.put(&root, "f.txt", &model).await;
    t.nfs.write_all(&fh, 50_001, b"XYZ").await.unwrap();
    model[50_001..50_004].copy_from_slice(b"XYZ");

    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, 100_000);
    assert_bytes("NFS", &t.nfs.read_all(&fh).await.unwrap(), &model);
    assert_bytes("host", &std::fs::read(t.host("f.txt")).unwrap(), &model);
    let (mid, _) = t.nfs.read(&fh, 49_999, 8).await.unwrap();
    assert_eq!(mid, b"aaXYZaaa");

    // A change on the host is what the next read sees (data is not cached).
    std::fs::write(t.host("f.txt"), b"replaced on the host").unwrap();
    let (data, eof) = t.nfs.read(&fh, 0, 1000).await.unwrap();
    assert_eq!((data.as_slice(), eof), (&b"replaced on the host"[..], true));
}

#[tokio::test]
async fn create_modes_exclusive_guarded_and_unchecked() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();

    let fh = t.nfs.create(&root, "moded", 0o640).await.unwrap();
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().mode & 0o7777, 0o640);
    assert_eq!(host_mode(&t.host("moded")), 0o640);

    let fh = t.nfs.create_exclusive(&root, "excl", [1; 8]).await.unwrap();
    assert!(t.host("excl").is_file(), "EXCLUSIVE CREATE made no file");
    t.nfs.write_all(&fh, 0, b"first").await.unwrap();
    assert_eq!(
        t.nfs.create_exclusive(&root, "excl", [2; 8]).await,
        Err(nfsstat3::NFS3ERR_EXIST),
        "a second EXCLUSIVE CREATE (other verifier) of an existing name"
    );
    assert_eq!(
        t.nfs.create_guarded(&root, "excl").await,
        Err(nfsstat3::NFS3ERR_EXIST),
        "GUARDED CREATE of an existing name"
    );
    // UNCHECKED opens the existing file as it is.
    let again = t.nfs.create(&root, "excl", 0o600).await.unwrap();
    assert_eq!(t.nfs.read_all(&again).await.unwrap(), b"first");
    assert_eq!(std::fs::read(t.host("excl")).unwrap(), b"first");

    // UNCHECKED with a size applies it.
    let truncate = sattr3 {
        size: Nfs3Option::Some(0),
        ..sattr3::default()
    };
    let fh = t
        .nfs
        .create_how(&root, "excl", createhow3::UNCHECKED(truncate))
        .await
        .unwrap();
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, 0);
    assert_eq!(std::fs::read(t.host("excl")).unwrap(), b"");

    let fh = t.nfs.create_guarded(&root, "guarded").await.unwrap();
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, 0);
    assert_eq!(host_names(t.dir.path()), ["excl", "guarded", "moded"]);
}

#[tokio::test]
async fn setattr_mode_size_and_mtime() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let fh = t.nfs.put(&root, "f", b"0123456789abcdefghij").await;
    let path = t.host("f");

    for mode in [0o640, 0o600, 0o751] {
        t.nfs.set_mode(&fh, mode).await.unwrap();
        assert_eq!(
            t.nfs.getattr(&fh).await.unwrap().mode & 0o7777,
            mode,
            "GETATTR mode"
        );
        assert_eq!(host_mode(&path), mode, "host mode");
    }

    t.nfs.set_size(&fh, 10).await.unwrap();
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, 10);
    assert_eq!(t.nfs.read_all(&fh).await.unwrap(), b"0123456789");
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");

    t.nfs.set_size(&fh, 100).await.unwrap();
    let mut want = b"0123456789".to_vec();
    want.resize(100, 0);
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().size, 100);
    assert_eq!(
        t.nfs.read_all(&fh).await.unwrap(),
        want,
        "grown part is zeros"
    );
    assert_eq!(std::fs::read(&path).unwrap(), want);

    let when = nfs_time(1_600_000_000, 500_000_000);
    t.nfs.set_mtime(&fh, when).await.unwrap();
    let attrs = t.nfs.getattr(&fh).await.unwrap();
    assert_eq!(attrs.mtime, when, "GETATTR mtime after SET_TO_CLIENT_TIME");
    assert_eq!(
        mtime_of(&path),
        UNIX_EPOCH + Duration::new(1_600_000_000, 500_000_000),
        "host mtime"
    );
    // Setting the mtime left the rest alone.
    assert_eq!(attrs.size, 100);
    assert_eq!(attrs.mode & 0o7777, 0o751);

    let atime = nfs_time(1_500_000_000, 0);
    let attrs = sattr3 {
        atime: set_atime::SET_TO_CLIENT_TIME(atime),
        ..sattr3::default()
    };
    t.nfs.setattr(&fh, attrs).await.unwrap();
    assert_eq!(t.nfs.getattr(&fh).await.unwrap().atime, atime);
    assert_eq!(
        t.nfs.getattr(&fh).await.unwrap().mtime,
        when,
        "atime change kept the mtime"
    );
    let accessed = std::fs::metadata(&path).unwrap().accessed().unwrap();
    assert_eq!(
        accessed,
        UNIX_EPOCH + Duration::from_secs(1_500_000_000),
        "host atime"
    );

    let before = SystemTime::now() - Duration::from_secs(2);
    let attrs = sattr3 {
        mtime: set_mtime::SET_TO_SERVER_TIME,
        ..sattr3::default()
    };
    t.nfs.setattr(&fh, attrs).await.unwrap();
    let host_mtime = mtime_of(&path);
    assert!(
        host_mtime > before && host_mtime < SystemTime::now() + Duration::from_secs(2),
        "SET_TO_SERVER_TIME set the host mtime to {host_mtime:?}"
    );
    let nfs_mtime = t.nfs.getattr(&fh).await.unwrap().mtime;
    assert_eq!(
        UNIX_EPOCH + Duration::new(nfs_mtime.seconds.into(), nfs_mtime.nseconds),
        host_mtime
    );
    t.nfs.set_mtime(&fh, when).await.unwrap();

    // The attributes of a new handle for the same file agree.
    let looked_up = t.nfs.lookup(&root, "f").await.unwrap();
    assert_eq!(t.nfs.getattr(&looked_up).await.unwrap().mtime, when);
}

#[tokio::test]
async fn mkdir_and_nested_files() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let a = t.nfs.mkdir(&root, "a").await.unwrap();
    let b = t.nfs.mkdir(&a, "b").await.unwrap();
    let c = t.nfs.put(&b, "c.txt", b"nested").await;

    assert!(t.host("a/b").is_dir());
    assert_eq!(std::fs::read(t.host("a/b/c.txt")).unwrap(), b"nested");
    assert!(is_dir(&t.nfs.getattr(&a).await.unwrap()));
    assert_eq!(t.nfs.read_path("a/b/c.txt").await, b"nested");
    assert_eq!(t.nfs.readdirplus_all(&a).await.unwrap().names(), ["b"]);
    assert_eq!(t.nfs.readdirplus_all(&b).await.unwrap().names(), ["c.txt"]);
    assert_eq!(t.nfs.readdirplus_all(&root).await.unwrap().names(), ["a"]);

    assert_eq!(t.nfs.mkdir(&root, "a").await, Err(nfsstat3::NFS3ERR_EXIST));
    assert_eq!(t.nfs.lookup(&c, "x").await, Err(nfsstat3::NFS3ERR_NOTDIR));
    assert!(t.nfs.mkdir(&c, "x").await.is_err(), "MKDIR inside a file");
    assert!(!t.host("a/b/c.txt/x").exists());
}

#[tokio::test]
async fn rename_a_file() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let fh = t.nfs.put(&root, "old.txt", b"content").await;
    let sub = t.nfs.mkdir(&root, "sub").await.unwrap();

    t.nfs
        .rename(&root, "old.txt", &root, "new.txt")
        .await
        .unwrap();
    assert_eq!(
        t.nfs.lookup(&root, "old.txt").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(t.nfs.read_path("new.txt").await, b"content");
    assert_eq!(host_names(t.dir.path()), ["new.txt", "sub"]);

    // Renaming onto itself changes nothing.
    t.nfs
        .rename(&root, "new.txt", &root, "new.txt")
        .await
        .unwrap();
    assert_eq!(std::fs::read(t.host("new.txt")).unwrap(), b"content");

    t.nfs
        .rename(&root, "new.txt", &sub, "moved.txt")
        .await
        .unwrap();
    assert_eq!(t.nfs.read_path("sub/moved.txt").await, b"content");
    assert_eq!(std::fs::read(t.host("sub/moved.txt")).unwrap(), b"content");
    assert_eq!(host_names(t.dir.path()), ["sub"]);
    assert_eq!(
        t.nfs.readdirplus_all(&root).await.unwrap().names(),
        ["sub"],
        "listing after the renames"
    );
    // The handle from before both renames still names the file.
    assert_eq!(t.nfs.read_all(&fh).await.unwrap(), b"content");

    assert_eq!(
        t.nfs.rename(&root, "missing", &root, "x").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
}

#[tokio::test]
async fn rename_a_directory_keeps_handles_inside_working() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let d = t.nfs.mkdir(&root, "d").await.unwrap();
    let f = t.nfs.put(&d, "f", b"in d").await;
    let deep = t.nfs.mkdir(&d, "deeper").await.unwrap();
    let g = t.nfs.put(&deep, "g", b"in deeper").await;

    t.nfs.rename(&root, "d", &root, "e").await.unwrap();
    assert_eq!(host_names(t.dir.path()), ["e"]);
    assert_eq!(t.nfs.lookup(&root, "d").await, Err(nfsstat3::NFS3ERR_NOENT));

    // Handles obtained before the rename: reads, writes and listings go to the new place.
    assert_eq!(t.nfs.read_all(&f).await.unwrap(), b"in d");
    assert_eq!(t.nfs.read_all(&g).await.unwrap(), b"in deeper");
    t.nfs.write_all(&g, 0, b"IN").await.unwrap();
    assert_eq!(std::fs::read(t.host("e/deeper/g")).unwrap(), b"IN deeper");
    assert_eq!(
        t.nfs.readdirplus_all(&d).await.unwrap().names(),
        ["deeper", "f"]
    );
    let h = t.nfs.put(&deep, "h", b"new after rename").await;
    assert_eq!(
        std::fs::read(t.host("e/deeper/h")).unwrap(),
        b"new after rename"
    );
    assert_eq!(t.nfs.read_all(&h).await.unwrap(), b"new after rename");
    assert_eq!(t.nfs.read_path("e/f").await, b"in d");
    assert_eq!(t.nfs.read_path("e/deeper/g").await, b"IN deeper");

    // A directory cannot move into itself.
    let e = t.nfs.lookup(&root, "e").await.unwrap();
    let deep_now = t.nfs.lookup(&e, "deeper").await.unwrap();
    assert_eq!(
        t.nfs.rename(&root, "e", &deep_now, "loop").await,
        Err(nfsstat3::NFS3ERR_INVAL)
    );
    assert!(t.host("e/deeper/g").is_file());
}

#[tokio::test]
async fn rename_onto_an_existing_entry() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let a = t.nfs.put(&root, "a", b"AAAA").await;
    let replaced = t.nfs.put(&root, "b", b"BB").await;

    t.nfs.rename(&root, "a", &root, "b").await.unwrap();
    assert_eq!(
        t.nfs.getattr(&replaced).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_STALE),
        "the handle of the replaced file must not name the file that replaced it"
    );
    assert_eq!(t.nfs.read_path("b").await, b"AAAA");
    assert_eq!(t.nfs.getattr(&a).await.unwrap().size, 4);
    let b = t.nfs.lookup(&root, "b").await.unwrap();
    assert_eq!(
        t.nfs.getattr(&b).await.unwrap().size,
        4,
        "GETATTR of the replaced name must not show the old file's size"
    );
    assert_eq!(t.nfs.lookup(&root, "a").await, Err(nfsstat3::NFS3ERR_NOENT));
    assert_eq!(host_names(t.dir.path()), ["b"]);
    assert_eq!(std::fs::read(t.host("b")).unwrap(), b"AAAA");
    assert_eq!(t.nfs.readdirplus_all(&root).await.unwrap().names(), ["b"]);

    // A directory does not replace a non-empty directory.
    let x = t.nfs.mkdir(&root, "x").await.unwrap();
    let y = t.nfs.mkdir(&root, "y").await.unwrap();
    t.nfs.put(&y, "z", b"z").await;
    let err = t.nfs.rename(&root, "x", &root, "y").await.unwrap_err();
    assert!(
        matches!(err, nfsstat3::NFS3ERR_NOTEMPTY | nfsstat3::NFS3ERR_EXIST),
        "RENAME onto a non-empty directory: {err}"
    );
    assert_eq!(std::fs::read(t.host("y/z")).unwrap(), b"z");
    assert!(t.host("x").is_dir());
    // ... but does replace an empty one.
    t.nfs.remove(&y, "z").await.unwrap();
    t.nfs.rename(&root, "x", &root, "y").await.unwrap();
    assert_eq!(host_names(t.dir.path()), ["b", "y"]);
    assert!(is_dir(&t.nfs.getattr(&x).await.unwrap()));

    // A file does not replace a directory, nor a directory a file.
    assert!(
        t.nfs.rename(&root, "b", &root, "y").await.is_err(),
        "file onto directory"
    );
    assert!(
        t.nfs.rename(&root, "y", &root, "b").await.is_err(),
        "directory onto file"
    );
    assert!(t.host("y").is_dir());
    assert_eq!(std::fs::read(t.host("b")).unwrap(), b"AAAA");
}

#[tokio::test]
async fn remove_and_rmdir() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let file = t.nfs.put(&root, "file", b"x").await;
    let dir = t.nfs.mkdir(&root, "dir").await.unwrap();
    t.nfs.put(&dir, "inner", b"y").await;

    t.nfs.remove(&root, "file").await.unwrap();
    assert!(!t.host("file").exists());
    assert_eq!(
        t.nfs.getattr(&file).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_STALE),
        "GETATTR of a removed file's handle"
    );
    assert_eq!(
        t.nfs.lookup(&root, "file").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        t.nfs.remove(&root, "file").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );

    assert_eq!(
        t.nfs.rmdir(&root, "dir").await,
        Err(nfsstat3::NFS3ERR_NOTEMPTY)
    );
    assert!(
        t.host("dir/inner").is_file(),
        "a failed RMDIR removed something"
    );

    t.nfs.remove(&dir, "inner").await.unwrap();
    t.nfs.rmdir(&root, "dir").await.unwrap();
    assert!(!t.host("dir").exists());
    assert_eq!(
        t.nfs.lookup(&root, "dir").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        t.nfs.rmdir(&root, "dir").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert!(t
        .nfs
        .readdirplus_all(&root)
        .await
        .unwrap()
        .entries
        .is_empty());
    assert!(host_names(t.dir.path()).is_empty());
}

#[tokio::test]
async fn symlink_and_readlink() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    t.nfs.put(&root, "real.txt", b"real content").await;

    let target = "some/dir/../not-there";
    let link = t.nfs.symlink(&root, "dangling", target).await.unwrap();
    assert_eq!(t.nfs.readlink(&link).await.unwrap(), target);
    let attrs = t.nfs.getattr(&link).await.unwrap();
    assert_eq!(attrs.type_, ftype3::NF3LNK);
    assert_eq!(attrs.size, target.len() as u64);
    let host = t.host("dangling");
    assert!(std::fs::symlink_metadata(&host)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&host).unwrap(), Path::new(target));

    let link = t.nfs.symlink(&root, "to-real", "real.txt").await.unwrap();
    assert_eq!(t.nfs.readlink(&link).await.unwrap(), "real.txt");
    assert_eq!(std::fs::read(t.host("to-real")).unwrap(), b"real content");

    let looked_up = t.nfs.lookup(&root, "to-real").await.unwrap();
    assert_eq!(t.nfs.readlink(&looked_up).await.unwrap(), "real.txt");
    let listing = t.nfs.readdirplus_all(&root).await.unwrap();
    let entry = listing.get("to-real").expect("the link is listed");
    assert_eq!(entry.attrs.as_ref().unwrap().type_, ftype3::NF3LNK);
    assert_eq!(
        t.nfs.symlink(&root, "to-real", "other").await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    // READLINK of a file is an error.
    let file = t.nfs.lookup(&root, "real.txt").await.unwrap();
    assert!(t.nfs.readlink(&file).await.is_err());
}

#[tokio::test]
async fn large_directory_is_listed_completely_once_by_readdirplus_paging() {
    const N: usize = 5000;
    let mut t = Local::start("").await;
    let mut expected = HashSet::new();
    for i in 0..N {
        // Names of varied length, so pages hold varied numbers of entries.
        let name = format!("entry-{i:05}-{}", "x".repeat(i % 37));
        std::fs::write(t.host(&name), vec![b'.'; i % 97]).unwrap();
        expected.insert(name);
    }
    let root = t.nfs.root.clone();
    let listing = t.nfs.readdirplus_all(&root).await.unwrap();

    assert!(
        listing.pages > 20,
        "expected READDIRPLUS to take many pages, took {}",
        listing.pages
    );
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names in the listing");
    assert_eq!(names.len(), N, "entry count");
    let expected_refs: HashSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(unique, expected_refs, "listed names");
    let cookies: HashSet<u64> = listing.entries.iter().map(|e| e.cookie).collect();
    assert_eq!(cookies.len(), N, "duplicate cookies");
    let ids: HashSet<u64> = listing.entries.iter().map(|e| e.fileid).collect();
    assert_eq!(ids.len(), N, "duplicate file ids");

    for entry in &listing.entries {
        let i: usize = entry.name[6..11].parse().unwrap();
        let attrs = entry
            .attrs
            .as_ref()
            .expect("READDIRPLUS entry has attributes");
        assert_eq!(attrs.size, (i % 97) as u64, "size of {}", entry.name);
        assert_eq!(attrs.type_, ftype3::NF3REG);
        assert_eq!(attrs.fileid, entry.fileid);
        assert!(entry.handle.is_some(), "{} has no handle", entry.name);
    }
    // The handles in the listing work.
    for i in [0, 1234, N - 1] {
        let name = format!("entry-{i:05}-{}", "x".repeat(i % 37));
        let fh = listing.get(&name).unwrap().handle.clone().unwrap();
        assert_eq!(t.nfs.read_all(&fh).await.unwrap(), vec![b'.'; i % 97]);
    }
    // A second enumeration sees the same.
    let again = t.nfs.readdirplus_all(&root).await.unwrap();
    assert_eq!(again.entries.len(), N);
}

#[tokio::test]
async fn host_changes_show_after_the_attribute_ttl() {
    let mut t = Local::start("attr_ttl_ms = 200").await;
    let root = t.nfs.root.clone();
    t.nfs.put(&root, "grows", b"1").await;
    let grows = t.nfs.lookup(&root, "grows").await.unwrap();
    t.nfs.put(&root, "goes", b"2").await;
    let goes = t.nfs.lookup(&root, "goes").await.unwrap();
    assert_eq!(
        t.nfs.readdirplus_all(&root).await.unwrap().names(),
        ["goes", "grows"]
    );
    assert_eq!(t.nfs.getattr(&grows).await.unwrap().size, 1);

    std::fs::write(t.host("late.txt"), b"made on the host").unwrap();
    std::fs::write(t.host("grows"), b"1234567").unwrap();
    std::fs::remove_file(t.host("goes")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let listing = t.nfs.readdirplus_all(&root).await.unwrap();
    assert_eq!(listing.names(), ["grows", "late.txt"]);
    assert_eq!(
        listing
            .get("late.txt")
            .unwrap()
            .attrs
            .as_ref()
            .unwrap()
            .size,
        16
    );
    assert_eq!(t.nfs.read_path("late.txt").await, b"made on the host");
    assert_eq!(t.nfs.getattr(&grows).await.unwrap().size, 7);
    let err = t.nfs.getattr(&goes).await.unwrap_err();
    assert!(
        matches!(err, nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_NOENT),
        "GETATTR of a file removed on the host: {err}"
    );
    assert_eq!(
        t.nfs.lookup(&root, "goes").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
}

#[tokio::test]
async fn utf8_names() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let names = [
        "héllo wörld.txt",
        "日本語のファイル",
        "emoji 🦀 ✓",
        "Ωmega-ß",
    ];
    for name in names {
        t.nfs.put(&root, name, name.as_bytes()).await;
    }
    let dir = t.nfs.mkdir(&root, "répertoire ü").await.unwrap();
    t.nfs.put(&dir, "naïve.txt", b"inside").await;

    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.push("répertoire ü".into());
    want.sort();
    assert_eq!(host_names(t.dir.path()), want, "names on the host");
    assert_eq!(t.nfs.readdirplus_all(&root).await.unwrap().names(), want);
    for name in names {
        assert_eq!(t.nfs.read_path(name).await, name.as_bytes(), "{name}");
        assert_eq!(std::fs::read(t.host(name)).unwrap(), name.as_bytes());
    }
    assert_eq!(t.nfs.read_path("répertoire ü/naïve.txt").await, b"inside");
    assert!(t.host("répertoire ü/naïve.txt").is_file());
    t.nfs
        .rename(&root, "日本語のファイル", &dir, "ファイル")
        .await
        .unwrap();
    assert!(t.host("répertoire ü/ファイル").is_file());
}

#[tokio::test]
async fn missing_names_and_wrong_kinds() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    std::fs::create_dir(t.host("a")).unwrap();
    std::fs::write(t.host("a/b"), b"b").unwrap();
    let file = t.nfs.put(&root, "file", b"f").await;

    assert_eq!(
        t.nfs.lookup(&root, "missing").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        t.nfs.lookup_path("missing/x").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        t.nfs.lookup(&file, "x").await,
        Err(nfsstat3::NFS3ERR_NOTDIR)
    );
    // A name is one component: "a/b" is not the path a/b.
    assert!(
        t.nfs.lookup(&root, "a/b").await.is_err(),
        "LOOKUP of \"a/b\""
    );
    assert!(
        t.nfs.create(&root, "a/c", 0o644).await.is_err(),
        "CREATE of \"a/c\""
    );
    assert!(!t.host("a/c").exists());
    assert!(
        t.nfs.lookup(&root, "").await.is_err(),
        "LOOKUP of an empty name"
    );
    let long = "y".repeat(255);
    t.nfs.put(&root, &long, b"long").await;
    assert_eq!(std::fs::read(t.host(&long)).unwrap(), b"long");
    let too_long = "z".repeat(256);
    assert_eq!(
        t.nfs.create(&root, &too_long, 0o644).await,
        Err(nfsstat3::NFS3ERR_NAMETOOLONG)
    );
    assert_eq!(
        t.nfs.lookup(&root, &too_long).await,
        Err(nfsstat3::NFS3ERR_NAMETOOLONG)
    );
    // "." is the directory itself.
    let dot = t.nfs.lookup(&root, ".").await.unwrap();
    assert!(is_dir(&t.nfs.getattr(&dot).await.unwrap()));
    // READ of a directory, READDIRPLUS of a file.
    let a = t.nfs.lookup(&root, "a").await.unwrap();
    assert!(t.nfs.read(&a, 0, 10).await.is_err(), "READ of a directory");
    assert_eq!(
        t.nfs.readdirplus_all(&file).await.map(|l| l.entries.len()),
        Err(nfsstat3::NFS3ERR_NOTDIR)
    );
}

#[tokio::test]
async fn dotdot_at_a_mount_root_is_the_export_root_never_the_host_parent() {
    let mut t = Local::start("").await;
    // A sibling of the served directory on the host, which must stay out of reach.
    let outside = tempdir("nfsgw-outside-");
    std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
    let outside_name = outside
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let root = t.nfs.root.clone();

    let up = t.nfs.lookup(&root, "..").await.unwrap();
    assert_eq!(
        t.nfs.readdirplus_all(&up).await.unwrap().names(),
        ["data"],
        "the parent of a mount root lists the mounts"
    );
    let attrs = t.nfs.getattr(&up).await.unwrap();
    assert!(is_dir(&attrs));
    assert_eq!(
        t.nfs.lookup(&up, &outside_name).await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let up_up = t.nfs.lookup(&up, "..").await.unwrap();
    assert_eq!(up_up, up, "the export root is its own parent");
    assert_eq!(t.nfs.lookup(&up, "data").await.unwrap(), root);

    let export_root = t.server.mount("/").await;
    assert_eq!(
        export_root.root, up,
        "MNT / gives the same handle as LOOKUP .."
    );

    let sub = t.nfs.mkdir(&root, "sub").await.unwrap();
    assert_eq!(t.nfs.lookup(&sub, "..").await.unwrap(), root);

    // MNT paths that climb out resolve inside the export or not at all.
    for path in [
        "/../etc",
        "/data/../../etc",
        &format!("/data/../{outside_name}"),
    ] {
        assert!(
            t.server.try_mount(path).await.is_err(),
            "MNT {path} succeeded"
        );
    }
}

#[tokio::test]
async fn symlinks_pointing_outside_stay_confined() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let outside = tempdir("nfsgw-outside-");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, b"TOP SECRET").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let outside_name = outside.path().file_name().unwrap().to_str().unwrap();
    let before = host_snapshot(outside.path());
    let secret_mtime = mtime_of(&secret);

    let absolute = secret.to_str().unwrap().to_string();
    let relative = format!("../{outside_name}/secret.txt");
    let links = [
        ("abs", absolute.as_str()),
        ("rel", relative.as_str()),
        ("absdir", outside.path().to_str().unwrap()),
        ("etc", "/etc"),
    ];
    for (name, target) in links {
        let fh = t.nfs.symlink(&root, name, target).await.unwrap();
        assert_eq!(
            t.nfs.readlink(&fh).await.unwrap(),
            target,
            "READLINK {name}"
        );
        assert_eq!(
            std::fs::read_link(t.host(name)).unwrap(),
            Path::new(target),
            "the host holds a real symlink"
        );
    }

    for name in ["abs", "rel"] {
        let fh = t.nfs.lookup(&root, name).await.unwrap();
        if let Ok((data, _)) = t.nfs.read(&fh, 0, 100).await {
            assert!(
                !data.windows(3).any(|w| w == b"TOP"),
                "READ through {name} returned the outside file's content"
            );
        }
        let _ = t.nfs.write(&fh, 0, b"PWNED").await;
        let _ = t.nfs.set_size(&fh, 0).await;
        let _ = t.nfs.set_mode(&fh, 0o777).await;
        let _ = t.nfs.set_mtime(&fh, nfs_time(1_000_000_000, 0)).await;
    }
    for name in ["absdir", "etc"] {
        let fh = t.nfs.lookup(&root, name).await.unwrap();
        assert!(
            t.nfs.lookup(&fh, "secret.txt").await.is_err()
                && t.nfs.lookup(&fh, "passwd").await.is_err(),
            "LOOKUP through the {name} symlink"
        );
        assert!(
            t.nfs.readdirplus_all(&fh).await.is_err(),
            "READDIRPLUS through the {name} symlink"
        );
        if name == "absdir" {
            assert!(t.nfs.create(&fh, "planted", 0o644).await.is_err());
            assert!(t.nfs.mkdir(&fh, "planted-dir").await.is_err());
            assert!(t.nfs.symlink(&fh, "planted-link", "x").await.is_err());
            assert!(t.nfs.remove(&fh, "secret.txt").await.is_err());
        }
    }

    assert_eq!(
        host_snapshot(outside.path()),
        before,
        "the outside directory changed"
    );
    assert_eq!(
        mtime_of(&secret),
        secret_mtime,
        "the outside file's mtime changed"
    );
    assert_eq!(host_mode(&secret), 0o600);
    // The links themselves are still there, unchanged.
    assert_eq!(
        std::fs::read_link(t.host("abs")).unwrap(),
        Path::new(&absolute)
    );
}

#[tokio::test]
async fn two_mounts_side_by_side() {
    let (a_dir, b_dir) = (tempdir("nfsgw-a-"), tempdir("nfsgw-b-"));
    std::fs::write(a_dir.path().join("only-in-a"), b"A").unwrap();
    std::fs::write(b_dir.path().join("only-in-b"), b"B").unwrap();
    let server = Server::start(&format!(
        "{}\n{}",
        local_mount("a", a_dir.path(), false, ""),
        local_mount("b", b_dir.path(), false, "")
    ));
    let mut a = server.mount("/a").await;
    let mut b = server.mount("/b").await;
    assert_ne!(a.root, b.root);

    let (a_root, b_root) = (a.root.clone(), b.root.clone());
    assert_eq!(
        a.readdirplus_all(&a_root).await.unwrap().names(),
        ["only-in-a"]
    );
    assert_eq!(
        b.readdirplus_all(&b_root).await.unwrap().names(),
        ["only-in-b"]
    );
    assert_eq!(
        a.lookup(&a_root, "only-in-b").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    a.put(&a_root, "written-via-a", b"via a").await;
    b.put(&b_root, "written-via-b", b"via b").await;
    assert_eq!(host_names(a_dir.path()), ["only-in-a", "written-via-a"]);
    assert_eq!(host_names(b_dir.path()), ["only-in-b", "written-via-b"]);
    assert_eq!(b.read_path("only-in-b").await, b"B");

    let mut top = server.mount("/").await;
    let top_root = top.root.clone();
    let listing = top.readdirplus_all(&top_root).await.unwrap();
    assert_eq!(listing.names(), ["a", "b"]);
    for entry in &listing.entries {
        assert!(
            is_dir(entry.attrs.as_ref().unwrap()),
            "{} is a directory",
            entry.name
        );
    }
    assert_eq!(top.lookup(&top_root, "a").await.unwrap(), a_root);
    assert_eq!(top.lookup(&top_root, "b").await.unwrap(), b_root);
    assert_eq!(top.read_path("a/written-via-a").await, b"via a");
    assert_eq!(top.read_path("b/only-in-b").await, b"B");
    assert_eq!(
        top.lookup(&top_root, "c").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert!(
        server.try_mount("/c").await.is_err(),
        "MNT of a mount that does not exist"
    );

    // A rename between mounts is refused and moves nothing.
    assert_eq!(
        top.rename(&a_root, "written-via-a", &b_root, "moved").await,
        Err(nfsstat3::NFS3ERR_XDEV)
    );
    assert!(a_dir.path().join("written-via-a").is_file());
    assert!(!b_dir.path().join("moved").exists());

    // The export root itself cannot be changed.
    assert_eq!(
        top.mkdir(&top_root, "new").await,
        Err(nfsstat3::NFS3ERR_ROFS)
    );
    assert_eq!(
        top.create(&top_root, "new", 0o644).await,
        Err(nfsstat3::NFS3ERR_ROFS)
    );
    assert_eq!(
        top.remove(&top_root, "a").await,
        Err(nfsstat3::NFS3ERR_ROFS)
    );
    assert_eq!(top.rmdir(&top_root, "a").await, Err(nfsstat3::NFS3ERR_ROFS));
    assert_eq!(
        top.rename(&top_root, "a", &top_root, "z").await,
        Err(nfsstat3::NFS3ERR_ROFS)
    );
    assert_eq!(
        top.readdirplus_all(&top_root).await.unwrap().names(),
        ["a", "b"]
    );
    assert!(a_dir.path().is_dir() && b_dir.path().is_dir());
}

#[tokio::test]
async fn read_only_mount_refuses_every_change() {
    let dir = tempdir("nfsgw-ro-");
    std::fs::write(dir.path().join("f.txt"), b"read me").unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/inner"), b"inner").unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::os::unix::fs::symlink("f.txt", dir.path().join("link")).unwrap();
    let before = host_snapshot(dir.path());
    let mtime = mtime_of(&dir.path().join("f.txt"));

    let server = Server::start(&local_mount("ro", dir.path(), true, ""));
    let mut nfs = server.mount("/ro").await;
    let root = nfs.root.clone();
    let f = nfs.lookup(&root, "f.txt").await.unwrap();
    let d = nfs.lookup(&root, "d").await.unwrap();

    // Reads work.
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"read me");
    assert_eq!(nfs.read_path("d/inner").await, b"inner");
    assert_eq!(
        nfs.readdirplus_all(&root).await.unwrap().names(),
        ["d", "empty", "f.txt", "link"]
    );
    let link = nfs.lookup(&root, "link").await.unwrap();
    assert_eq!(nfs.readlink(&link).await.unwrap(), "f.txt");
    assert_eq!(nfs.getattr(&f).await.unwrap().size, 7);

    // Every change is ROFS.
    const ROFS: Result<(), nfsstat3> = Err(nfsstat3::NFS3ERR_ROFS);
    assert_eq!(
        nfs.write(&f, 0, b"changed").await.map(|_| ()),
        ROFS,
        "WRITE"
    );
    assert_eq!(
        nfs.create(&root, "new", 0o644).await.map(|_| ()),
        ROFS,
        "CREATE"
    );
    assert_eq!(
        nfs.create(&root, "f.txt", 0o644).await.map(|_| ()),
        ROFS,
        "CREATE existing"
    );
    assert_eq!(
        nfs.create_guarded(&d, "new").await.map(|_| ()),
        ROFS,
        "CREATE guarded"
    );
    assert_eq!(
        nfs.create_exclusive(&root, "new", [7; 8]).await.map(|_| ()),
        ROFS,
        "CREATE exclusive"
    );
    assert_eq!(nfs.mkdir(&root, "newdir").await.map(|_| ()), ROFS, "MKDIR");
    assert_eq!(
        nfs.symlink(&root, "sl", "f.txt").await.map(|_| ()),
        ROFS,
        "SYMLINK"
    );
    assert_eq!(nfs.remove(&root, "f.txt").await, ROFS, "REMOVE");
    assert_eq!(
        nfs.remove(&d, "inner").await,
        ROFS,
        "REMOVE in a subdirectory"
    );
    assert_eq!(nfs.rmdir(&root, "empty").await, ROFS, "RMDIR");
    assert_eq!(
        nfs.rename(&root, "f.txt", &root, "g.txt").await,
        ROFS,
        "RENAME"
    );
    assert_eq!(
        nfs.set_mode(&f, 0o777).await.map(|_| ()),
        ROFS,
        "SETATTR mode"
    );
    assert_eq!(nfs.set_size(&f, 0).await.map(|_| ()), ROFS, "SETATTR size");
    assert_eq!(
        nfs.set_mtime(&f, nfs_time(1_000_000_000, 0))
            .await
            .map(|_| ()),
        ROFS,
        "SETATTR mtime"
    );

    assert_eq!(
        host_snapshot(dir.path()),
        before,
        "the read-only directory changed"
    );
    assert_eq!(mtime_of(&dir.path().join("f.txt")), mtime);
    assert_eq!(nfs.read_all(&f).await.unwrap(), b"read me");
    let attrs = nfs.getattr(&f).await.unwrap();
    assert_eq!(
        (attrs.size, attrs.mode & 0o7777),
        (7, host_mode(&dir.path().join("f.txt")))
    );
    assert_ne!(
        attrs.mtime,
        nfstime3 {
            seconds: 1_000_000_000,
            nseconds: 0
        }
    );
}

#[tokio::test]
async fn exclusive_create_retransmitted_with_the_same_verifier_succeeds() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let first = t.nfs.create_exclusive(&root, "once", [9; 8]).await.unwrap();
    // RFC 1813 3.3.8: a retransmitted EXCLUSIVE CREATE, same verifier, succeeds on the file
    // the first one made; only another verifier is EXIST.
    assert_eq!(
        t.nfs.create_exclusive(&root, "once", [9; 8]).await,
        Ok(first)
    );
    assert_eq!(
        t.nfs.create_exclusive(&root, "once", [8; 8]).await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    assert_eq!(host_names(t.dir.path()), ["once"]);
}

#[tokio::test]
async fn setattr_guard_with_the_current_ctime_applies() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let fh = t.nfs.put(&root, "g", b"data").await;
    t.nfs.set_mode(&fh, 0o644).await.unwrap();
    let ctime = t.nfs.getattr(&fh).await.unwrap().ctime;
    let chmod = sattr3 {
        mode: Nfs3Option::Some(0o600),
        ..sattr3::default()
    };
    t.nfs
        .setattr_guarded(&fh, chmod, Some(ctime))
        .await
        .unwrap();
    assert_eq!(host_mode(&t.host("g")), 0o600);
}

#[tokio::test]
async fn setattr_guard_with_a_stale_ctime_is_not_sync() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let fh = t.nfs.put(&root, "g", b"data").await;
    t.nfs.set_mode(&fh, 0o644).await.unwrap();
    let ctime = t.nfs.getattr(&fh).await.unwrap().ctime;
    let chmod = sattr3 {
        mode: Nfs3Option::Some(0o600),
        ..sattr3::default()
    };
    let stale = nfs_time(ctime.seconds - 100, ctime.nseconds);
    assert_eq!(
        t.nfs
            .setattr_guarded(&fh, chmod, Some(stale))
            .await
            .map(|_| ()),
        Err(nfsstat3::NFS3ERR_NOT_SYNC),
        "SETATTR guarded by a ctime that is not the file's"
    );
    assert_eq!(
        host_mode(&t.host("g")),
        0o644,
        "the guarded SETATTR changed the mode"
    );
}

fn unit<T>(result: Result<T, nfsstat3>) -> Result<(), nfsstat3> {
    result.map(|_| ())
}

#[tokio::test]
async fn stale_handles_answer_stale() {
    check_stale_handles(&[
        "GETATTR",
        "READ",
        "WRITE",
        "LOOKUP",
        "READDIRPLUS",
        "CREATE",
        "MKDIR",
        "SYMLINK",
        "REMOVE",
        "RMDIR",
    ])
    .await;
}

#[tokio::test]
async fn stale_handles_answer_stale_in_well_formed_replies() {
    check_stale_handles(&["READLINK", "RENAME", "SETATTR"]).await;
}

/// Runs each operation of `ops` on handles of removed objects; each must answer STALE.
async fn check_stale_handles(ops: &[&'static str]) {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let dir = t.nfs.mkdir(&root, "gone-dir").await.unwrap();
    let file = t.nfs.put(&root, "gone-file", b"x").await;
    let link = t.nfs.symlink(&root, "gone-link", "x").await.unwrap();
    t.nfs.rmdir(&root, "gone-dir").await.unwrap();
    t.nfs.remove(&root, "gone-file").await.unwrap();
    t.nfs.remove(&root, "gone-link").await.unwrap();

    // Each operation on its own connection, so that a malformed reply fails only its own.
    let mut wrong = Vec::new();
    for &op in ops {
        let mut nfs = t.server.mount("/data").await;
        let (root, dir, file, link) = (root.clone(), dir.clone(), file.clone(), link.clone());
        let answer = tokio::spawn(async move {
            match op {
                "GETATTR" => unit(nfs.getattr(&file).await),
                "READ" => unit(nfs.read(&file, 0, 10).await),
                "WRITE" => unit(nfs.write(&file, 0, b"y").await),
                "READLINK" => unit(nfs.readlink(&link).await),
                "LOOKUP" => unit(nfs.lookup(&dir, "x").await),
                "READDIRPLUS" => unit(nfs.readdirplus_all(&dir).await),
                "CREATE" => unit(nfs.create(&dir, "x", 0o644).await),
                "MKDIR" => unit(nfs.mkdir(&dir, "x").await),
                "SYMLINK" => unit(nfs.symlink(&dir, "x", "y").await),
                "REMOVE" => nfs.remove(&dir, "x").await,
                "RMDIR" => nfs.rmdir(&dir, "x").await,
                "RENAME" => nfs.rename(&dir, "x", &root, "y").await,
                "SETATTR" => unit(nfs.set_mode(&file, 0o600).await),
                _ => unreachable!(),
            }
        })
        .await;
        match answer {
            Ok(Err(nfsstat3::NFS3ERR_STALE)) => {}
            Ok(other) => wrong.push(format!("{op}: {other:?}")),
            Err(_) => wrong.push(format!("{op}: malformed reply (see the panic above)")),
        }
    }
    assert!(
        wrong.is_empty(),
        "operations on removed objects' handles must answer NFS3ERR_STALE:\n{}",
        wrong.join("\n")
    );
    assert!(
        host_names(t.dir.path()).is_empty(),
        "something was recreated"
    );
}

#[tokio::test]
async fn handles_that_are_not_ours_are_badhandle() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    for bytes in [vec![0xAB; 21], vec![1, 2, 3, 4], vec![0xFF; 64]] {
        let fh = nfs_fh3 {
            data: bytes.clone().into(),
        };
        assert_eq!(
            t.nfs.getattr(&fh).await.map(|_| ()),
            Err(nfsstat3::NFS3ERR_BADHANDLE),
            "GETATTR of {bytes:?}"
        );
        assert_eq!(
            t.nfs.lookup(&fh, "x").await.map(|_| ()),
            Err(nfsstat3::NFS3ERR_BADHANDLE),
            "LOOKUP in {bytes:?}"
        );
        assert!(t.nfs.read(&fh, 0, 10).await.is_err(), "READ of {bytes:?}");
    }
    // The connection still works.
    assert!(t
        .nfs
        .readdirplus_all(&root)
        .await
        .unwrap()
        .entries
        .is_empty());
}

#[tokio::test]
async fn dot_names_in_a_file_are_not_dir() {
    let mut t = Local::start("").await;
    let root = t.nfs.root.clone();
    let file = t.nfs.put(&root, "file", b"f").await;
    assert_eq!(
        t.nfs.lookup(&file, "..").await,
        Err(nfsstat3::NFS3ERR_NOTDIR)
    );
    assert_eq!(
        t.nfs.lookup(&file, ".").await,
        Err(nfsstat3::NFS3ERR_NOTDIR)
    );
}

#[tokio::test]
async fn concurrent_clients_each_see_their_own_writes() {
    let t = Local::start("").await;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let mut nfs = t.server.mount("/data").await;
        tasks.push(tokio::spawn(async move {
            let root = nfs.root.clone();
            let data = random_bytes(1000 + i, 512 * 1024 + i as usize * 1001);
            let fh = nfs.put(&root, &format!("client-{i}"), &data).await;
            // Overwrite a slice in the middle, read everything back.
            nfs.write_all(&fh, 100_000, &data[..1000]).await.unwrap();
            let mut want = data.clone();
            want[100_000..101_000].copy_from_slice(&data[..1000]);
            let back = nfs.read_all(&fh).await.unwrap();
            assert!(back == want, "client {i} read back something else");
            (i, want)
        }));
    }
    for task in tasks {
        let (i, want) = task.await.unwrap();
        let host = std::fs::read(t.host(&format!("client-{i}"))).unwrap();
        assert_bytes(&format!("client-{i} on the host"), &host, &want);
    }
    assert_eq!(host_names(t.dir.path()).len(), 8);
}
