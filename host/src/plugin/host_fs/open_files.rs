//! The host files kept open for reads, for all grants of all mounts together, so that a READ
//! of a granted file costs no `open` (`[server.cache] open_files`; 0: every read opens).
//!
//! A held file is keyed by its grant and its path beneath it, and is used only once the path
//! is proved to still name it: each read stats the path's last name in its directory, without
//! following it, and compares (device, inode) with the held file's. That directory is held
//! and proved the same way, up to the grant, so the proof is one no-follow stat per component
//! and no symlink is ever followed. A path that names another file now (renamed over, removed
//! and made again, by nfsgw or by anything else on the host) is opened afresh, with `nofollow`'s
//! rules, and replaces what was held. A held file cannot pass for a newer one: its inode number
//! is not reused while it is open. The stat also gives the size that bounds the read, so a
//! truncation is seen at once, and the data comes from the inode, so bytes written through any
//! descriptor are read. Beyond the bound the least recently used is closed; a file unused for
//! `open_file_idle_ms` is closed by the next `sweep` (which `sweep_every` runs): a file removed
//! on the host keeps its disk space until then, one nfsgw removes or renames over is closed at
//! once. Every call here blocks (stat, open, close): callers run it on the blocking pool.

use std::ffi::OsStr;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, Metadata};
use lru::LruCache;

use super::nofollow::{self, Access};
use super::os_calls::map_io;
use super::Grant;
use crate::plugin::bindings::types::Error;

/// The files and directories held open, least recently used first out.
pub struct OpenFiles {
    /// 0: nothing is held.
    bound: usize,
    idle: Duration,
    held: Mutex<LruCache<Key, Held>>,
    /// Files and directories opened, for all reads so far (what the tests count).
    opens: AtomicU64,
}

/// A path beneath one grant (`Grant::id`).
#[derive(Hash, PartialEq, Eq)]
struct Key {
    grant: u64,
    rel: PathBuf,
}

struct Held {
    fd: Fd,
    identity: Identity,
    used: Instant,
}

#[derive(Clone)]
enum Fd {
    File(Arc<File>),
    Dir(Arc<Dir>),
}

/// What names the same file as long as it is open: (device, inode).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity(u64, u64);

impl Default for OpenFiles {
    fn default() -> Self {
        OpenFiles::new(0, Duration::MAX)
    }
}

impl OpenFiles {
    /// At most `bound` open files and directories (0: off; always off where there are no
    /// inode numbers to prove a path with), each closed once unused for `idle`.
    pub fn new(bound: usize, idle: Duration) -> OpenFiles {
        let bound = if cfg!(unix) { bound } else { 0 };
        let cap = NonZeroUsize::new(bound).unwrap_or(NonZeroUsize::MIN);
        OpenFiles {
            bound,
            idle,
            held: Mutex::new(LruCache::new(cap)),
            opens: AtomicU64::new(0),
        }
    }

    /// How many files and directories are held open.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// How many files and directories reads have opened so far.
    #[cfg(test)]
    fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// The regular file at `rel` beneath `grant`, open for reading, and its size now.
    pub fn regular_file(&self, grant: &Grant, rel: PathBuf) -> Result<(Arc<File>, u64), Error> {
        let key = Key {
            grant: grant.id,
            rel,
        };
        let on = self.bound > 0;
        let (Some(name), Some(up), true) = (key.rel.file_name(), key.rel.parent(), on) else {
            // Off, or the grant itself (which `nofollow` refuses).
            let (file, meta) = self.open_file(&grant.dir, &key.rel)?;
            return Ok((file, meta.len()));
        };
        let dir = self.dir(grant, up)?;
        if let Some((Fd::File(file), size)) = self.proved(&dir, name, &key)? {
            return Ok((file, size));
        }
        let (file, meta) = self.open_file(&dir, Path::new(name))?;
        self.hold(key, Fd::File(file.clone()), &meta);
        Ok((file, meta.len()))
    }

    /// Closes every file and directory unused for the idle time; how many it closed.
    pub fn sweep(&self) -> usize {
        let mut idle = Vec::new();
        {
            let mut held = self.held.lock().unwrap();
            while held
                .peek_lru()
                .is_some_and(|(_, h)| h.used.elapsed() >= self.idle)
            {
                idle.extend(held.pop_lru());
            }
        }
        idle.len()
    }

    /// Sweeps on the blocking pool every half idle time, from a task of the current runtime
    /// that ends with the cache.
    pub fn sweep_every(self: &Arc<Self>) {
        if self.bound == 0 {
            return;
        }
        let files: Weak<OpenFiles> = Arc::downgrade(self);
        let period = (self.idle / 2).max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(files) = files.upgrade() else { break };
                let sweep = move || files.sweep();
                let _ = crate::blocking::run(crate::blocking::DEADLINE, sweep).await;
            }
        });
    }

    /// Closes what is held for `rel` beneath `grant`: nfsgw removed it or renamed over it.
    pub fn forget(&self, grant: &Grant, rel: &Path) {
        if self.bound == 0 {
            return;
        }
        let key = Key {
            grant: grant.id,
            rel: rel.to_path_buf(),
        };
        self.forget_key(&key);
    }

    /// The directory at `rel` beneath `grant` ("" for the grant itself), proved or opened.
    fn dir<'g>(&self, grant: &'g Grant, rel: &Path) -> Result<DirRef<'g>, Error> {
        let (Some(name), Some(up)) = (rel.file_name(), rel.parent()) else {
            return Ok(DirRef::Grant(&grant.dir));
        };
        let parent = self.dir(grant, up)?;
        let key = Key {
            grant: grant.id,
            rel: rel.to_path_buf(),
        };
        if let Some((Fd::Dir(dir), _)) = self.proved(&parent, name, &key)? {
            return Ok(DirRef::Held(dir));
        }
        let dir = Arc::new(nofollow::dir(&parent, Path::new(name)).map_err(map_io)?);
        self.opens.fetch_add(1, Ordering::Relaxed);
        let meta = dir.dir_metadata().map_err(map_io)?;
        self.hold(key, Fd::Dir(dir.clone()), &meta);
        Ok(DirRef::Held(dir))
    }

    /// What is held for `key`, if `name` in `parent` is still that very file, with its size
    /// now; `None` when nothing is held for it, or something else is there now (then closed).
    fn proved(&self, parent: &Dir, name: &OsStr, key: &Key) -> Result<Option<(Fd, u64)>, Error> {
        let Some((fd, held)) = self.lookup(key) else {
            return Ok(None);
        };
        let meta = match parent.symlink_metadata(name) {
            Ok(meta) => meta,
            Err(e) => {
                self.forget_key(key);
                return Err(map_io(e));
            }
        };
        if identity(&meta) == Some(held) {
            return Ok(Some((fd, meta.len())));
        }
        self.forget_key(key);
        Ok(None)
    }

    /// What is held for `key`, marked used.
    fn lookup(&self, key: &Key) -> Option<(Fd, Identity)> {
        let mut held = self.held.lock().unwrap();
        let entry = held.get_mut(key)?;
        entry.used = Instant::now();
        Some((entry.fd.clone(), entry.identity))
    }

    fn forget_key(&self, key: &Key) {
        let closed = self.held.lock().unwrap().pop(key);
        drop(closed);
    }

    /// Holds `fd`, replacing what was held for `key`; the one beyond the bound is closed.
    fn hold(&self, key: Key, fd: Fd, meta: &Metadata) {
        let Some(identity) = identity(meta) else {
            return;
        };
        let entry = Held {
            fd,
            identity,
            used: Instant::now(),
        };
        // Closed after the lock is let go.
        let closed = self.held.lock().unwrap().push(key, entry);
        drop(closed);
    }

    /// Opens the regular file at `rel` in `dir` as `nofollow` opens it, with its metadata.
    fn open_file(&self, dir: &Dir, rel: &Path) -> Result<(Arc<File>, Metadata), Error> {
        let file = nofollow::regular_file(dir, rel, Access::Read)?;
        self.opens.fetch_add(1, Ordering::Relaxed);
        let meta = Metadata::from_file(&file).map_err(map_io)?;
        Ok((Arc::new(file), meta))
    }
}

/// A directory to stat and open in: the grant's own, or one held.
enum DirRef<'g> {
    Grant(&'g Dir),
    Held(Arc<Dir>),
}

impl std::ops::Deref for DirRef<'_> {
    type Target = Dir;

    fn deref(&self) -> &Dir {
        match self {
            DirRef::Grant(dir) => dir,
            DirRef::Held(dir) => dir,
        }
    }
}

#[cfg(unix)]
fn identity(meta: &Metadata) -> Option<Identity> {
    use cap_std::fs::MetadataExt;
    Some(Identity(meta.dev(), meta.ino()))
}

/// Without inode numbers no path can be proved to name a held file.
#[cfg(not(unix))]
fn identity(_: &Metadata) -> Option<Identity> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::{Grants, SetAttrs};
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn export(bound: usize, idle: Duration) -> (tempfile::TempDir, Grants, Arc<OpenFiles>) {
        let tmp = tempfile::tempdir().unwrap();
        let files = Arc::new(OpenFiles::new(bound, idle));
        let grant = Grant::open("/export", tmp.path(), false).unwrap();
        let grants = Grants::new(vec![grant]).with_open_files(files.clone());
        (tmp, grants, files)
    }

    fn read(g: &Grants, path: &str) -> Result<Vec<u8>, Error> {
        g.read(path, 0, 1000).map(|(data, _)| data)
    }

    #[test]
    fn a_hundred_reads_of_a_file_open_it_once() {
        let (tmp, g, files) = export(16, LONG);
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("top"), b"top file").unwrap();
        std::fs::write(tmp.path().join("d/f"), b"nested").unwrap();
        for _ in 0..100 {
            let (data, end) = g.read("/export/top", 4, 100).unwrap();
            assert_eq!((data.as_slice(), end), (&b"file"[..], true));
        }
        assert_eq!(files.opens(), 1);
        for _ in 0..100 {
            assert_eq!(read(&g, "/export/d/f").unwrap(), b"nested");
        }
        assert_eq!(
            files.opens(),
            3,
            "and once the nested file and its directory"
        );
        assert_eq!(files.held(), 3);
    }

    #[test]
    fn a_path_renamed_over_or_made_again_on_the_host_is_read_anew() {
        let (tmp, g, files) = export(16, LONG);
        let host = |rel: &str| tmp.path().join(rel);
        std::fs::write(host("f"), b"first").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"first");
        std::fs::write(host("new"), b"second!").unwrap();
        std::fs::rename(host("new"), host("f")).unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"second!");
        std::fs::remove_file(host("f")).unwrap();
        assert_eq!(read(&g, "/export/f").unwrap_err(), Error::NotFound);
        std::fs::write(host("f"), b"third").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"third");
        assert_eq!(files.opens(), 3);
        // A directory on the path replaced by another.
        std::fs::create_dir(host("a")).unwrap();
        std::fs::write(host("a/x"), b"in a").unwrap();
        assert_eq!(read(&g, "/export/a/x").unwrap(), b"in a");
        std::fs::create_dir(host("b")).unwrap();
        std::fs::write(host("b/x"), b"in b").unwrap();
        std::fs::rename(host("a"), host("old")).unwrap();
        std::fs::rename(host("b"), host("a")).unwrap();
        assert_eq!(read(&g, "/export/a/x").unwrap(), b"in b");
        assert_eq!(files.opens(), 7);
    }

    #[test]
    fn reads_see_writes_and_truncation_through_any_descriptor() {
        use std::io::Write;
        let (tmp, g, files) = export(16, LONG);
        g.create("/export/f", 0o644, true).unwrap();
        g.write("/export/f", 0, b"hello world").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"hello world");
        g.write("/export/f", 0, b"HELLO").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"HELLO world");
        let truncate = SetAttrs {
            size: Some(5),
            ..SetAttrs::none()
        };
        g.setattr("/export/f", truncate).unwrap();
        assert_eq!(
            g.read("/export/f", 0, 100).unwrap(),
            (b"HELLO".to_vec(), true)
        );
        let mut outside = std::fs::OpenOptions::new()
            .append(true)
            .open(tmp.path().join("f"))
            .unwrap();
        outside.write_all(b" again").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"HELLO again");
        assert_eq!(files.opens(), 1);
    }

    #[test]
    fn a_held_path_swapped_for_a_symlink_is_refused() {
        use std::os::unix::fs::symlink;
        let (tmp, g, _files) = export(16, LONG);
        let host = |rel: &str| tmp.path().join(rel);
        std::fs::create_dir(host("d")).unwrap();
        std::fs::create_dir(host("other")).unwrap();
        std::fs::write(host("f"), b"mine").unwrap();
        std::fs::write(host("d/f"), b"mine too").unwrap();
        std::fs::write(host("other/f"), b"secret").unwrap();
        std::fs::write(host("target"), b"secret").unwrap();
        assert_eq!(read(&g, "/export/f").unwrap(), b"mine");
        assert_eq!(read(&g, "/export/d/f").unwrap(), b"mine too");
        std::fs::remove_file(host("f")).unwrap();
        symlink("target", host("f")).unwrap();
        assert_eq!(read(&g, "/export/f").unwrap_err(), Error::Invalid);
        std::fs::rename(host("d"), host("d.old")).unwrap();
        symlink("other", host("d")).unwrap();
        assert!(read(&g, "/export/d/f").is_err());
    }

    #[test]
    fn no_more_than_the_bound_are_held() {
        let (tmp, g, files) = export(4, LONG);
        for i in 0..10 {
            std::fs::write(tmp.path().join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        for _ in 0..2 {
            for i in 0..10 {
                let data = read(&g, &format!("/export/f{i}")).unwrap();
                assert_eq!(data, format!("file {i}").as_bytes());
                assert!(files.held() <= 4);
            }
        }
        assert_eq!(files.held(), 4);
        assert_eq!(
            files.opens(),
            20,
            "in a cycle longer than the bound every read opens"
        );
    }

    #[test]
    fn a_bound_of_zero_holds_nothing() {
        let (tmp, g, files) = export(0, LONG);
        std::fs::write(tmp.path().join("f"), b"data").unwrap();
        for _ in 0..100 {
            assert_eq!(read(&g, "/export/f").unwrap(), b"data");
        }
        assert_eq!((files.opens(), files.held()), (100, 0));
    }

    #[test]
    fn what_nfsgw_removes_or_renames_over_is_closed_at_once() {
        let (tmp, g, files) = export(16, LONG);
        for name in ["f", "g", "h"] {
            std::fs::write(tmp.path().join(name), name).unwrap();
            read(&g, &format!("/export/{name}")).unwrap();
        }
        assert_eq!(files.held(), 3);
        g.rename("/export/g", "/export/f").unwrap();
        assert_eq!(files.held(), 1);
        g.remove_file("/export/h").unwrap();
        assert_eq!(files.held(), 0);
        assert_eq!(read(&g, "/export/f").unwrap(), b"g");
    }

    #[test]
    fn files_unused_for_the_idle_time_are_closed_by_a_sweep() {
        let (tmp, g, files) = export(16, Duration::from_millis(1));
        for name in ["f", "g"] {
            std::fs::write(tmp.path().join(name), name).unwrap();
            read(&g, &format!("/export/{name}")).unwrap();
        }
        assert_eq!(files.held(), 2);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(files.sweep(), 2);
        assert_eq!(files.held(), 0);
        assert_eq!(read(&g, "/export/f").unwrap(), b"f");
        assert_eq!(files.opens(), 3);
    }
}
