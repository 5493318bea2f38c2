//! The `host-fs` capability: confined POSIX file access to the directories a mount grants.
//!
//! A grant is a host directory made visible to the plugin under a path of its own
//! ("/export"). Every call names an absolute plugin-side path; it is resolved to one grant and a
//! relative path, and the work is done beneath the granted directory without following any
//! symlink (`nofollow`): a client's symlink is data, never a way to another file. Only regular
//! files are opened for data. A read-only grant refuses every change. What WASI p2 cannot
//! express (mode, owner, link count, chmod, chown, hard links) is served here.
//!
//! Every call can block on the disk, so plugins reach it as async imports that run it on the
//! bounded blocking pool (`crate::blocking`), never on the server's async workers. Reads keep
//! their files open between calls (`open_files`), for all grants together.

mod capability;
mod nofollow;
mod open_files;
mod os_calls;
mod snapshots;
mod sorted_names;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, Metadata};

use super::bindings::types::{
    Attrs, Device, DirEntry, DirPage, Error, FileKind, FsStats, Made, Renamed, SetAttrs,
};
use nofollow::{Access, Parent};
pub use open_files::OpenFiles;
use os_calls::{
    attrs_of, chown_at, fs_stats, map_io, mknod_at, read_more, set_dir_mode, symlink_at, time_spec,
    write_at,
};
use snapshots::{Key, Snapshots};
use sorted_names::NameList;

/// One host directory granted to a plugin.
pub struct Grant {
    /// Where the plugin sees it, e.g. "/export".
    pub guest: String,
    pub host: PathBuf,
    pub read_only: bool,
    dir: Dir,
    /// Unique in the process: what the files kept open for it are known by.
    id: u64,
}

impl Grant {
    pub fn open(guest: &str, host: &Path, read_only: bool) -> io::Result<Grant> {
        static GRANTS: AtomicU64 = AtomicU64::new(0);
        let dir = Dir::open_ambient_dir(host, cap_std::ambient_authority())?;
        Ok(Grant {
            guest: guest.trim_end_matches('/').to_string(),
            host: host.to_path_buf(),
            read_only,
            dir,
            id: GRANTS.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// The directories granted to one mount's plugin, the name snapshots of the directories it
/// pages through, and the files reads keep open (shared by all mounts; none unless given).
#[derive(Default)]
pub struct Grants {
    grants: Vec<Grant>,
    snapshots: Snapshots,
    open_files: Arc<OpenFiles>,
}

/// A path resolved to its grant: `rel` is "." for the granted directory itself.
struct Resolved<'a> {
    grant: &'a Grant,
    rel: PathBuf,
}

impl Resolved<'_> {
    fn writable(&self) -> Result<(), Error> {
        if self.grant.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The directory holding the object (opened no-follow) and the object's name in it.
    fn parent(&self) -> Result<(Parent<'_>, &OsStr), Error> {
        nofollow::parent(&self.grant.dir, &self.rel).map_err(map_io)
    }

    /// The object's own attributes (a symlink's, not its target's).
    fn attrs(&self) -> Result<Attrs, Error> {
        let (parent, name) = self.parent()?;
        Ok(attrs_of(&parent.symlink_metadata(name).map_err(map_io)?))
    }

    fn regular_file(&self, access: Access) -> Result<std::fs::File, Error> {
        nofollow::regular_file(&self.grant.dir, &self.rel, access)
    }
}

/// The attributes of a directory already open: what a change in it left. None when they
/// cannot be read: the change has happened, so the caller reports it done and lets the host
/// stat the directory itself.
fn dir_attrs(dir: &Dir) -> Option<Attrs> {
    dir.dir_metadata().ok().map(|metadata| attrs_of(&metadata))
}

/// A new entry's attributes beside those of the directory that now holds it.
fn made(attrs: Attrs, dir: &Dir) -> Made {
    Made {
        attrs,
        dir: dir_attrs(dir),
    }
}

impl Grants {
    pub fn new(grants: Vec<Grant>) -> Grants {
        Grants {
            grants,
            snapshots: Snapshots::default(),
            open_files: Arc::default(),
        }
    }

    /// Reads keep their files open in `open_files`.
    pub fn with_open_files(mut self, open_files: Arc<OpenFiles>) -> Grants {
        self.open_files = open_files;
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    fn resolve(&self, path: &str) -> Result<Resolved<'_>, Error> {
        for grant in &self.grants {
            let Some(rest) = path.strip_prefix(grant.guest.as_str()) else {
                continue;
            };
            if !(rest.is_empty() || rest.starts_with('/')) {
                continue;
            }
            let mut rel = PathBuf::new();
            for part in rest.split('/').filter(|p| !p.is_empty()) {
                if part == "." || part == ".." {
                    return Err(Error::Invalid);
                }
                rel.push(part);
            }
            if rel.as_os_str().is_empty() {
                rel.push(".");
            }
            return Ok(Resolved { grant, rel });
        }
        Err(Error::Access)
    }

    pub fn stat(&self, path: &str) -> Result<Attrs, Error> {
        self.resolve(path)?.attrs()
    }

    /// Up to `limit` entries of a directory in name order, after the name `after` (from the
    /// start when none), and the cursor of the next page if there is one. A first page reads
    /// the whole directory into a snapshot of sorted names; its continuation pages find their
    /// place in it by binary search while the directory is unchanged.
    pub fn read_dir(&self, path: &str, after: Option<&str>, limit: u32) -> Result<DirPage, Error> {
        let r = self.resolve(path)?;
        let dir = nofollow::dir(&r.grant.dir, &r.rel).map_err(map_io)?;
        let key = Key::new(&r.rel, &attrs_of(&dir.dir_metadata().map_err(map_io)?));
        let names = self
            .snapshots
            .names(key, after.is_some(), || scan(&r, &dir))?;
        let from = after.map_or(0, |a| names.count_through(a));
        let limit = limit.max(1) as usize;
        let to = names.len().min(from + limit);
        let next = (to < names.len()).then(|| names.get(to - 1).to_string());
        let mut entries = Vec::with_capacity(to - from);
        for name in names.range(from, to) {
            // An entry removed since it was listed is simply left out.
            if let Ok(meta) = dir.symlink_metadata(name) {
                entries.push(DirEntry {
                    name: name.to_string(),
                    attrs: Some(attrs_of(&meta)),
                });
            }
        }
        Ok(DirPage { entries, next })
    }

    /// Whole-directory reads made so far by [`Grants::read_dir`].
    pub fn dir_scans(&self) -> u64 {
        self.snapshots.scans()
    }

    /// Reads up to `len` bytes; the flag is true when the read reached the end of the file.
    pub fn read(&self, path: &str, offset: u64, len: u64) -> Result<(Vec<u8>, bool), Error> {
        self.read_into(path, offset, len, Vec::new())
    }

    /// [`Grants::read`] into `buf`, an empty vector (the reads fill it without zeroing it
    /// first): what the gateway uses, with a buffer from its connection's pool.
    pub fn read_into(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        mut buf: Vec<u8>,
    ) -> Result<(Vec<u8>, bool), Error> {
        let r = self.resolve(path)?;
        let (file, size) = self.open_files.regular_file(r.grant, r.rel)?;
        let want = len.min(size.saturating_sub(offset)) as usize;
        buf.reserve_exact(want);
        while buf.len() < want {
            let at = offset + buf.len() as u64;
            match read_more(&file, &mut buf, at, want) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(e)),
            }
        }
        let end = offset + buf.len() as u64 >= size;
        Ok((buf, end))
    }

    pub fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<Attrs, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        let file = r.regular_file(Access::Write)?;
        let mut done = 0;
        while done < data.len() {
            match write_at(&file, &data[done..], offset + done as u64) {
                Ok(0) => return Err(Error::Io),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(e)),
            }
        }
        Ok(attrs_of(&Metadata::from_file(&file).map_err(map_io)?))
    }

    pub fn create(&self, path: &str, mode: u32, exclusive: bool) -> Result<Made, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        let (parent, name) = r.parent()?;
        let attrs = match nofollow::create_file(&parent, name, mode) {
            Ok(file) => attrs_of(&Metadata::from_file(&file).map_err(map_io)?),
            // Without `exclusive` an existing file is used as it is.
            Err(e) if !exclusive && e.kind() == io::ErrorKind::AlreadyExists => {
                let attrs = attrs_of(&parent.symlink_metadata(name).map_err(map_io)?);
                match attrs.kind {
                    FileKind::Directory => return Err(Error::IsDir),
                    _ => attrs,
                }
            }
            Err(e) => return Err(map_io(e)),
        };
        Ok(made(attrs, &parent))
    }

    pub fn mkdir(&self, path: &str, mode: u32) -> Result<Made, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        let (parent, name) = r.parent()?;
        let mut builder = cap_std::fs::DirBuilder::new();
        set_dir_mode(&mut builder, mode);
        parent.create_dir_with(name, &builder).map_err(map_io)?;
        Ok(made(exact_mode(&r, &parent, name, mode)?, &parent))
    }

    pub fn remove_file(&self, path: &str) -> Result<Option<Attrs>, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        let (parent, name) = r.parent()?;
        parent.remove_file_or_symlink(name).map_err(map_io)?;
        self.open_files.forget(r.grant, &r.rel);
        Ok(dir_attrs(&parent))
    }

    pub fn remove_dir(&self, path: &str) -> Result<Option<Attrs>, Error> {
        let r = self.resolve(path)?;
        if r.rel == Path::new(".") {
            return Err(Error::Access);
        }
        r.writable()?;
        let (parent, name) = r.parent()?;
        parent.remove_dir(name).map_err(map_io)?;
        Ok(dir_attrs(&parent))
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<Renamed, Error> {
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        if !std::ptr::eq(from.grant, to.grant) {
            return Err(Error::CrossDevice);
        }
        if from.rel == Path::new(".") || to.rel == Path::new(".") {
            return Err(Error::Access);
        }
        from.writable()?;
        let ((from_dir, from_name), (to_dir, to_name)) = (from.parent()?, to.parent()?);
        from_dir
            .rename(from_name, &to_dir, to_name)
            .map_err(map_io)?;
        self.open_files.forget(from.grant, &from.rel);
        self.open_files.forget(to.grant, &to.rel);
        Ok(Renamed {
            source_dir: dir_attrs(&from_dir),
            destination_dir: dir_attrs(&to_dir),
        })
    }

    pub fn symlink(&self, path: &str, target: &str) -> Result<Made, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        // The link's text is stored as given, absolute targets included: the host never
        // follows a symlink, so its text is only data for the client.
        let (parent, name) = r.parent()?;
        symlink_at(target, &parent, name)?;
        let attrs = attrs_of(&parent.symlink_metadata(name).map_err(map_io)?);
        Ok(made(attrs, &parent))
    }

    pub fn readlink(&self, path: &str) -> Result<String, Error> {
        let r = self.resolve(path)?;
        let (parent, name) = r.parent()?;
        let target = parent.read_link_contents(name).map_err(map_io)?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| Error::Invalid)
    }

    pub fn link(&self, existing: &str, path: &str) -> Result<Made, Error> {
        let (existing, new) = (self.resolve(existing)?, self.resolve(path)?);
        if !std::ptr::eq(existing.grant, new.grant) {
            return Err(Error::CrossDevice);
        }
        new.writable()?;
        let ((from_dir, from_name), (to_dir, to_name)) = (existing.parent()?, new.parent()?);
        // A hard link to a symlink links the symlink itself (linkat without FOLLOW).
        from_dir
            .hard_link(from_name, &to_dir, to_name)
            .map_err(map_io)?;
        let attrs = attrs_of(&to_dir.symlink_metadata(to_name).map_err(map_io)?);
        Ok(made(attrs, &to_dir))
    }

    pub fn mknod(
        &self,
        path: &str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Result<Made, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        let (parent, name) = r.parent()?;
        mknod_at(&parent, name, kind, mode, device)?;
        Ok(made(exact_mode(&r, &parent, name, mode)?, &parent))
    }

    pub fn sync(&self, path: &str) -> Result<(), Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        r.regular_file(Access::Read)?.sync_all().map_err(map_io)
    }

    pub fn setattr(&self, path: &str, changes: SetAttrs) -> Result<Attrs, Error> {
        let r = self.resolve(path)?;
        r.writable()?;
        if changes.uid.is_some() || changes.gid.is_some() {
            let (parent, name) = r.parent()?;
            chown_at(&parent, name, changes.uid, changes.gid)?;
        }
        if let Some(mode) = changes.mode {
            nofollow::set_mode(&r.grant.dir, &r.rel, mode)?;
        }
        if let Some(size) = changes.size {
            let file = r.regular_file(Access::Write)?;
            file.set_len(size).map_err(map_io)?;
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            let atime = changes.atime.map(time_spec);
            let mtime = changes.mtime.map(time_spec);
            let (parent, name) = r.parent()?;
            parent
                .set_symlink_times(name, atime, mtime)
                .map_err(map_io)?;
        }
        r.attrs()
    }

    pub fn statfs(&self, path: &str) -> Result<FsStats, Error> {
        let r = self.resolve(path)?;
        fs_stats(&r.grant.dir)
    }
}

/// The UTF-8 names of a directory's entries, unsorted; other names are skipped with a warning.
fn scan(r: &Resolved<'_>, dir: &Dir) -> Result<NameList, Error> {
    let mut names = NameList::default();
    for entry in dir.entries().map_err(map_io)? {
        let name = entry.map_err(map_io)?.file_name();
        match name.to_str() {
            Some(name) => names.push(name)?,
            None => tracing::warn!(
                grant = %r.grant.host.display(), name = ?name,
                "skipping a directory entry whose name is not UTF-8"
            ),
        }
    }
    Ok(names)
}

/// The attributes of a file just made as `name` in `parent`, with exactly the mode asked for:
/// the client already applied its umask, so nfsgw's own must not narrow the mode again.
fn exact_mode(r: &Resolved<'_>, parent: &Dir, name: &OsStr, mode: u32) -> Result<Attrs, Error> {
    let attrs_now = || Ok(attrs_of(&parent.symlink_metadata(name).map_err(map_io)?));
    let attrs = attrs_now()?;
    if attrs.mode == mode & 0o7777 || attrs.kind == FileKind::Symlink {
        return Ok(attrs);
    }
    nofollow::set_mode(&r.grant.dir, &r.rel, mode)?;
    attrs_now()
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::bindings::types::{SetTime, Timestamp};
    use super::*;

    fn grants(read_only: bool) -> (tempfile::TempDir, Grants) {
        let tmp = tempfile::tempdir().unwrap();
        let grant = Grant::open("/export", tmp.path(), read_only).unwrap();
        (tmp, Grants::new(vec![grant]))
    }

    #[test]
    fn paths_outside_every_grant_are_refused() {
        let (_tmp, g) = grants(false);
        assert_eq!(g.stat("/etc/passwd").unwrap_err(), Error::Access);
        assert_eq!(g.stat("/exportx").unwrap_err(), Error::Access);
        assert_eq!(g.stat("/export/../etc").unwrap_err(), Error::Invalid);
        assert_eq!(g.stat("/export").unwrap().kind, FileKind::Directory);
    }

    #[test]
    fn symlinks_cannot_lead_out_of_the_grant() {
        let (tmp, g) = grants(false);
        g.symlink("/export/escape", "/etc").unwrap();
        assert_eq!(
            std::fs::read_link(tmp.path().join("escape")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(g.stat("/export/escape").unwrap().kind, FileKind::Symlink);
        assert!(g.read("/export/escape/passwd", 0, 10).is_err());
        assert!(g.create("/export/escape/x", 0o644, true).is_err());
        assert_eq!(g.readlink("/export/escape").unwrap(), "/etc");
    }

    #[test]
    fn a_symlinks_path_never_reaches_its_target() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, g) = grants(false);
        let target = tmp.path().join("target");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        g.symlink("/export/link", "target").unwrap();
        assert_eq!(g.read("/export/link", 0, 10).unwrap_err(), Error::Invalid);
        assert_eq!(
            g.write("/export/link", 0, b"x").unwrap_err(),
            Error::Invalid
        );
        assert_eq!(g.sync("/export/link").unwrap_err(), Error::Invalid);
        let truncate = SetAttrs {
            size: Some(0),
            ..SetAttrs::none()
        };
        assert_eq!(
            g.setattr("/export/link", truncate).unwrap_err(),
            Error::Invalid
        );
        let chmod = SetAttrs {
            mode: Some(0o666),
            ..SetAttrs::none()
        };
        assert!(g.setattr("/export/link", chmod).is_err());
        // A directory reached through a symlink is refused like the file itself.
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), b"in d").unwrap();
        g.symlink("/export/dlink", "d").unwrap();
        assert!(g.stat("/export/dlink/f").is_err());
        assert!(g.read_dir("/export/dlink", None, 10).is_err());
        assert!(g.remove_file("/export/dlink/f").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
        assert!(tmp.path().join("d/f").exists());
    }

    #[test]
    fn a_fifo_is_never_opened_for_data() {
        let (_tmp, g) = grants(false);
        let none = Device { major: 0, minor: 0 };
        g.mknod("/export/fifo", FileKind::Fifo, 0o666, none)
            .unwrap();
        assert_eq!(g.read("/export/fifo", 0, 10).unwrap_err(), Error::Invalid);
        assert_eq!(
            g.write("/export/fifo", 0, b"x").unwrap_err(),
            Error::Invalid
        );
        assert_eq!(g.sync("/export/fifo").unwrap_err(), Error::Invalid);
        assert_eq!(g.stat("/export/fifo").unwrap().kind, FileKind::Fifo);
    }

    #[test]
    fn read_only_grants_refuse_changes() {
        let (tmp, g) = grants(true);
        std::fs::write(tmp.path().join("f"), b"data").unwrap();
        assert_eq!(g.write("/export/f", 0, b"x").unwrap_err(), Error::ReadOnly);
        assert_eq!(
            g.create("/export/g", 0o644, false).unwrap_err(),
            Error::ReadOnly
        );
        assert_eq!(g.remove_file("/export/f").unwrap_err(), Error::ReadOnly);
        assert_eq!(
            g.read("/export/f", 0, 100).unwrap(),
            (b"data".to_vec(), true)
        );
    }

    #[test]
    fn write_read_truncate_and_attributes() {
        let (_tmp, g) = grants(false);
        let created = g.create("/export/f", 0o640, true).unwrap();
        assert_eq!(
            created.attrs.mode, 0o640,
            "the process umask must not narrow the mode"
        );
        assert_eq!(g.mkdir("/export/d", 0o777).unwrap().attrs.mode, 0o777);
        let again = g.create("/export/f", 0o600, false).unwrap();
        assert_eq!(again.attrs.mode, 0o640, "an existing file keeps its mode");
        assert_eq!(
            g.create("/export/f", 0o640, true).unwrap_err(),
            Error::Exists
        );
        let after = g.write("/export/f", 3, b"abc").unwrap();
        assert_eq!(after.size, 6);
        assert_eq!(
            g.read("/export/f", 0, 100).unwrap(),
            (b"\0\0\0abc".to_vec(), true)
        );
        assert_eq!(
            g.read("/export/f", 1, 2).unwrap(),
            (b"\0\0".to_vec(), false)
        );
        let changes = SetAttrs {
            size: Some(2),
            mode: Some(0o600),
            ..SetAttrs::none()
        };
        let a = g.setattr("/export/f", changes).unwrap();
        assert_eq!((a.size, a.mode), (2, 0o600));
        let t = Timestamp {
            seconds: 1_000_000_000,
            nanoseconds: 5,
        };
        let a = g
            .setattr(
                "/export/f",
                SetAttrs {
                    mtime: Some(SetTime::At(t)),
                    ..SetAttrs::none()
                },
            )
            .unwrap();
        assert_eq!(
            (a.mtime.seconds, a.mtime.nanoseconds),
            (t.seconds, t.nanoseconds)
        );
    }

    /// Each change answers the attributes of the directories it changed, and they are what
    /// a stat of each directory says right after: its new link count, size and times.
    #[test]
    fn changes_answer_the_attributes_they_left_their_directories_with() {
        let (_tmp, g) = grants(false);
        g.mkdir("/export/a", 0o755).unwrap();
        g.mkdir("/export/b", 0o755).unwrap();
        let same = |answered: Option<Attrs>, dir: &str| {
            let answered = answered.expect("host-fs answers when fstat works");
            let stat = g.stat(dir).unwrap();
            assert!(
                answered.same_state(&stat),
                "{dir}: {answered:?}, stat {stat:?}"
            );
        };
        let a_before = g.stat("/export/a").unwrap();
        let made = g.mkdir("/export/a/sub", 0o755).unwrap();
        assert_eq!(made.dir.as_ref().unwrap().nlink, a_before.nlink + 1);
        same(made.dir, "/export/a");
        same(
            g.create("/export/a/f", 0o644, true).unwrap().dir,
            "/export/a",
        );
        same(g.symlink("/export/a/l", "f").unwrap().dir, "/export/a");
        same(
            g.link("/export/a/f", "/export/b/f2").unwrap().dir,
            "/export/b",
        );
        let none = Device { major: 0, minor: 0 };
        let node = g.mknod("/export/b/fifo", FileKind::Fifo, 0o600, none);
        same(node.unwrap().dir, "/export/b");
        let renamed = g.rename("/export/a/f", "/export/b/g").unwrap();
        same(renamed.source_dir, "/export/a");
        same(renamed.destination_dir, "/export/b");
        same(g.remove_file("/export/b/g").unwrap(), "/export/b");
        let a = g.remove_dir("/export/a/sub").unwrap();
        assert_eq!(a.as_ref().unwrap().nlink, a_before.nlink);
        same(a, "/export/a");
    }

    #[test]
    fn directory_pages_are_sorted_and_resume_after_a_name() {
        let (tmp, g) = grants(false);
        for n in ["c", "a", "b", "d"] {
            std::fs::write(tmp.path().join(n), n).unwrap();
        }
        let page = g.read_dir("/export", None, 3).unwrap();
        let names: Vec<_> = page.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(page.next.as_deref(), Some("c"));
        let page = g.read_dir("/export", page.next.as_deref(), 3).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].name, "d");
        assert_eq!(page.next, None);
    }

    #[test]
    fn paging_a_directory_reads_it_once_and_leaves_out_what_was_removed() {
        let (tmp, g) = grants(false);
        for i in 0..100 {
            std::fs::write(tmp.path().join(format!("f{i:03}")), "").unwrap();
        }
        let page_all = |g: &Grants, removing: Option<&str>| {
            let (mut names, mut after) = (Vec::new(), None::<String>);
            loop {
                let page = g.read_dir("/export", after.as_deref(), 10).unwrap();
                names.extend(page.entries.into_iter().map(|e| e.name));
                if let Some(name) = removing.filter(|_| names.len() == 50) {
                    std::fs::remove_file(tmp.path().join(name)).unwrap();
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => return names,
                }
            }
        };
        let expected: Vec<String> = (0..100).map(|i| format!("f{i:03}")).collect();
        assert_eq!(page_all(&g, None), expected);
        assert_eq!(g.dir_scans(), 1, "ten pages, one read of the directory");
        // A new listing reads the directory again; an entry removed while it is paged is
        // left out of the pages after the removal.
        let names = page_all(&g, Some("f070"));
        assert_eq!(names.len(), 99);
        assert!(!names.iter().any(|n| n == "f070"));
        assert!(g.dir_scans() >= 2);
    }
}
