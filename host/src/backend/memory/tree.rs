//! The in-memory backend's file tree: nodes by number (regular files with their contents,
//! directories, symlinks, fifos, sockets and devices) with their modes, owners, times and link
//! counts, names under directories, and the POSIX rules of each change (rename replacing,
//! non-empty directories, hard links). It knows nothing of faults or of the Backend trait.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::SystemTime;

use crate::backend::types::{
    Attrs, Data, Device, DirEntry, DirPage, Error, FileKind, FsStats, Made, ReadResult, SetAttrs,
    SetTime, Timestamp,
};

/// The size the tree reports in `statfs`.
const CAPACITY_BYTES: u64 = 1 << 40;
const CAPACITY_FILES: u64 = 1 << 24;
pub(super) const ROOT: u64 = 1;

pub(super) enum Content {
    File(Vec<u8>),
    Directory(BTreeMap<String, u64>),
    Symlink(String),
    /// Fifos, sockets and device nodes: nothing but attributes.
    Node,
}

pub(super) struct Node {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Names of a non-directory; 2 plus subdirectories for a directory.
    nlink: u32,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    rdev: Device,
    /// Changes whenever the content does (the attributes' change token).
    version: u64,
    pub(super) content: Content,
}

/// The file tree: nodes by number, directories naming their entries' numbers.
pub(super) struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    next_version: u64,
}

pub(super) fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanoseconds: since.subsec_nanos(),
    }
}

impl Tree {
    pub(super) fn new() -> Tree {
        let mut tree = Tree {
            nodes: HashMap::new(),
            next_ino: ROOT,
            next_version: 1,
        };
        tree.add(
            FileKind::Directory,
            0o755,
            Device { major: 0, minor: 0 },
            Content::Directory(BTreeMap::new()),
        );
        tree
    }

    /// A new node, linked nowhere yet.
    pub(super) fn add(&mut self, kind: FileKind, mode: u32, rdev: Device, content: Content) -> u64 {
        let (ino, t) = (self.next_ino, now());
        self.next_ino += 1;
        let nlink = if kind == FileKind::Directory { 2 } else { 0 };
        let node = Node {
            kind,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            nlink,
            atime: t,
            mtime: t,
            ctime: t,
            rdev,
            version: 0,
            content,
        };
        self.nodes.insert(ino, node);
        ino
    }

    pub(super) fn node(&self, ino: u64) -> &Node {
        &self.nodes[&ino]
    }

    pub(super) fn node_mut(&mut self, ino: u64) -> &mut Node {
        self.nodes.get_mut(&ino).unwrap()
    }

    pub(super) fn entries(&self, dir: u64) -> Result<&BTreeMap<String, u64>, Error> {
        match &self.node(dir).content {
            Content::Directory(entries) => Ok(entries),
            _ => Err(Error::NotDir),
        }
    }

    pub(super) fn entries_mut(&mut self, dir: u64) -> &mut BTreeMap<String, u64> {
        match &mut self.node_mut(dir).content {
            Content::Directory(entries) => entries,
            _ => unreachable!("entries of a directory checked before"),
        }
    }

    /// The node a mount-relative path names.
    pub(super) fn find(&self, path: &str) -> Result<u64, Error> {
        if path.is_empty() {
            return Ok(ROOT);
        }
        path.split('/').try_fold(ROOT, |dir, name| {
            self.entries(dir)?.get(name).copied().ok_or(Error::NotFound)
        })
    }

    /// The directory a new or existing entry's path is in, and its name there.
    pub(super) fn parent<'p>(&self, path: &'p str) -> Result<(u64, &'p str), Error> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name.is_empty() {
            return Err(Error::Invalid);
        }
        let dir = self.find(dir)?;
        self.entries(dir)?;
        Ok((dir, name))
    }

    pub(super) fn entry(&self, dir: u64, name: &str) -> Result<u64, Error> {
        self.entries(dir)?.get(name).copied().ok_or(Error::NotFound)
    }

    pub(super) fn is_dir(&self, ino: u64) -> bool {
        self.node(ino).kind == FileKind::Directory
    }

    /// Names `ino` `name` in `dir`, counting the link.
    pub(super) fn attach(&mut self, dir: u64, name: &str, ino: u64) {
        self.entries_mut(dir).insert(name.to_string(), ino);
        if self.is_dir(ino) {
            self.node_mut(dir).nlink += 1;
        } else {
            self.node_mut(ino).nlink += 1;
        }
        self.touched(dir);
    }

    /// Takes `name` out of `dir`, uncounting the link; the node stays until `release`.
    pub(super) fn detach(&mut self, dir: u64, name: &str) -> u64 {
        let ino = self.entries_mut(dir).remove(name).unwrap();
        if self.is_dir(ino) {
            self.node_mut(dir).nlink -= 1;
        } else {
            self.node_mut(ino).nlink -= 1;
        }
        self.touched(dir);
        self.node_mut(ino).ctime = now();
        ino
    }

    /// Drops a detached node that no name holds any more.
    pub(super) fn release(&mut self, ino: u64) {
        if self.is_dir(ino) || self.node(ino).nlink == 0 {
            self.nodes.remove(&ino);
        }
    }

    /// Records a change of `ino`'s content now.
    pub(super) fn touched(&mut self, ino: u64) {
        let (t, version) = (now(), self.next_version);
        self.next_version += 1;
        let node = self.node_mut(ino);
        node.mtime = t;
        node.ctime = t;
        node.version = version;
    }

    pub(super) fn attrs(&self, ino: u64) -> Attrs {
        let node = self.node(ino);
        let size = match &node.content {
            Content::File(data) => data.len() as u64,
            Content::Directory(_) => 4096,
            Content::Symlink(target) => target.len() as u64,
            Content::Node => 0,
        };
        Attrs {
            kind: node.kind,
            size,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            nlink: node.nlink,
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
            rdev: node.rdev,
            change: Some(node.version.to_string()),
        }
    }

    /// The attributes of the directory that holds (or held) the entry at `path`.
    pub(super) fn dir_of(&self, path: &str) -> Result<Attrs, Error> {
        Ok(self.attrs(self.parent(path)?.0))
    }

    /// What a call that made the entry `path` answers: its attributes and its directory's.
    pub(super) fn made(&self, path: &str, attrs: Attrs) -> Result<Made, Error> {
        Ok(Made {
            attrs,
            dir: Some(self.dir_of(path)?),
        })
    }

    /// Makes a new entry at `path`.
    pub(super) fn make(
        &mut self,
        path: &str,
        kind: FileKind,
        mode: u32,
        rdev: Device,
        content: Content,
    ) -> Result<Attrs, Error> {
        let (dir, name) = self.parent(path)?;
        if self.entries(dir)?.contains_key(name) {
            return Err(Error::Exists);
        }
        let ino = self.add(kind, mode, rdev, content);
        self.attach(dir, name, ino);
        Ok(self.attrs(ino))
    }

    /// The contents of the regular file at `path`.
    pub(super) fn file_mut(&mut self, path: &str) -> Result<(u64, &mut Vec<u8>), Error> {
        let ino = self.find(path)?;
        match &mut self.node_mut(ino).content {
            Content::File(data) => Ok((ino, data)),
            Content::Directory(_) => Err(Error::IsDir),
            _ => Err(Error::Invalid),
        }
    }

    pub(super) fn read(&self, path: &str, offset: u64, len: u32) -> Result<ReadResult, Error> {
        let data = match &self.node(self.find(path)?).content {
            Content::File(data) => data,
            Content::Directory(_) => return Err(Error::IsDir),
            _ => return Err(Error::Invalid),
        };
        let size = data.len() as u64;
        let start = offset.min(size);
        let end = offset.saturating_add(len.into()).min(size);
        Ok(ReadResult {
            data: Data::Bytes(data[start as usize..end as usize].to_vec()),
            eof: end >= size,
        })
    }

    pub(super) fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<Attrs, Error> {
        let end = offset
            .checked_add(data.len() as u64)
            .and_then(|end| usize::try_from(end).ok())
            .ok_or(Error::TooBig)?;
        let (ino, content) = self.file_mut(path)?;
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset as usize..end].copy_from_slice(data);
        self.touched(ino);
        Ok(self.attrs(ino))
    }

    pub(super) fn list(
        &self,
        path: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DirPage, Error> {
        let entries = self.entries(self.find(path)?)?;
        let after = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let mut rest = entries.range::<str, _>((after, Bound::Unbounded));
        let page: Vec<DirEntry> = rest
            .by_ref()
            .take(limit.max(1) as usize)
            .map(|(name, &ino)| DirEntry {
                name: name.clone(),
                attrs: Some(self.attrs(ino)),
            })
            .collect();
        let next = match rest.next() {
            Some(_) => page.last().map(|e| e.name.clone()),
            None => None,
        };
        Ok(DirPage {
            entries: page,
            next,
        })
    }

    pub(super) fn setattr(&mut self, path: &str, changes: SetAttrs) -> Result<Attrs, Error> {
        let ino = self.find(path)?;
        if let Some(size) = changes.size {
            let size = usize::try_from(size).map_err(|_| Error::TooBig)?;
            self.file_mut(path)?.1.resize(size, 0);
            self.touched(ino);
        }
        let t = now();
        let time = |change: SetTime| match change {
            SetTime::Now => t,
            SetTime::At(at) => at,
        };
        let node = self.node_mut(ino);
        if let Some(mode) = changes.mode {
            node.mode = mode & 0o7777;
        }
        node.uid = changes.uid.unwrap_or(node.uid);
        node.gid = changes.gid.unwrap_or(node.gid);
        if let Some(atime) = changes.atime {
            node.atime = time(atime);
        }
        if let Some(mtime) = changes.mtime {
            node.mtime = time(mtime);
        }
        node.ctime = t;
        Ok(self.attrs(ino))
    }

    pub(super) fn link(&mut self, existing: &str, path: &str) -> Result<Attrs, Error> {
        let ino = self.find(existing)?;
        if self.is_dir(ino) {
            return Err(Error::NotOwner);
        }
        let (dir, name) = self.parent(path)?;
        if self.entries(dir)?.contains_key(name) {
            return Err(Error::Exists);
        }
        self.attach(dir, name, ino);
        self.node_mut(ino).ctime = now();
        Ok(self.attrs(ino))
    }

    pub(super) fn remove(&mut self, path: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(path)?;
        if self.is_dir(self.entry(dir, name)?) {
            return Err(Error::IsDir);
        }
        let ino = self.detach(dir, name);
        self.release(ino);
        Ok(())
    }

    pub(super) fn rmdir(&mut self, path: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(path)?;
        let ino = self.entry(dir, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(Error::NotEmpty);
        }
        self.detach(dir, name);
        self.release(ino);
        Ok(())
    }

    /// POSIX rename: an existing destination of a compatible kind is replaced (a directory
    /// only when empty); two names of one file stay as they are.
    pub(super) fn rename(&mut self, source: &str, destination: &str) -> Result<(), Error> {
        let (from_dir, from) = self.parent(source)?;
        let ino = self.entry(from_dir, from)?;
        let (to_dir, to) = self.parent(destination)?;
        if source == destination {
            return Ok(());
        }
        if self.is_dir(ino) && destination.starts_with(&format!("{source}/")) {
            return Err(Error::Invalid);
        }
        if let Some(&replaced) = self.entries(to_dir)?.get(to) {
            if replaced == ino {
                return Ok(());
            }
            match (self.is_dir(ino), self.is_dir(replaced)) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !self.entries(replaced)?.is_empty() => return Err(Error::NotEmpty),
                _ => {}
            }
            self.detach(to_dir, to);
            self.release(replaced);
        }
        self.detach(from_dir, from);
        self.attach(to_dir, to, ino);
        Ok(())
    }

    pub(super) fn statfs(&self) -> FsStats {
        let used: u64 = self
            .nodes
            .values()
            .map(|node| match &node.content {
                Content::File(data) => data.len() as u64,
                _ => 0,
            })
            .sum();
        let free_bytes = CAPACITY_BYTES.saturating_sub(used);
        let free_files = CAPACITY_FILES.saturating_sub(self.nodes.len() as u64);
        FsStats {
            total_bytes: CAPACITY_BYTES,
            free_bytes,
            available_bytes: free_bytes,
            total_files: CAPACITY_FILES,
            free_files,
            available_files: free_files,
        }
    }
}

pub(super) const NO_DEVICE: Device = Device { major: 0, minor: 0 };
