//! The gateway core: every mount side by side under one export root, behind a file-id API.
//!
//! The NFS front calls this API with file ids; the core turns them into (mount, path) through
//! each mount's inode table, answers from its caches where it can, checks the mount's
//! read-only flag and the plugin's declared capabilities, and otherwise calls the plugin. It
//! knows nothing of the wire protocol: errors are the plugin interface's, whose cases map one
//! to one to NFS statuses.

mod cache;
mod exclusive;
pub mod handles;
mod inode_log;
mod inodes;
pub mod mounts;
pub mod permissions;
mod readahead;
pub mod staging;

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use ipnet::IpNet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::buffer_pool::BufferPool;
pub use crate::config::MountLimits;
use crate::plugin::bindings::types::{
    Attrs, BlobRange, Capabilities, Data, Device, Error, FileKind, FileRange, FsStats, ReadResult,
    SetAttrs, SetTime, Timestamp,
};
use crate::plugin::bindings::Backend;
use crate::plugin::runtime::{CallFuture, HostState, MountPlugin};
use cache::{AttrCache, DirCache, Listed, Listing, Ttl};
use handles::{file_id, split, Handle, EXPORT_ROOT, MOUNT_ROOT_INO};
pub use inodes::InodeTable;
use readahead::Version;
use staging::{Staged, Staging};
use wasmtime::Store;

/// Entries asked of a plugin per `list-dir` page.
const LIST_PAGE: u32 = 4096;
/// Cache lifetime when a mutable mount's plugin does not choose one.
const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// A part of a file being written sequentially is uploaded early once the writes are this far
/// past its end (writes in flight arrive out of order; a rewrite of recent data stays cheap).
const STREAM_LAG: u64 = 8 << 20;
/// The largest file of a mount whose writes are staged, unless configured: S3's object limit.
const STAGED_MAX_FILE_SIZE: u64 = 5 << 40;
/// The largest file of other mounts, unless configured: 16 TiB, what ext4 stores with 4 KiB
/// blocks, so clients refuse larger offsets at once (EFBIG) rather than fail a later flush.
pub const HOST_MAX_FILE_SIZE: u64 = (16 << 40) - 1;

pub type FileId = u64;

/// One mount: its plugin, its inode table and its caches.
pub struct Mount {
    pub name: String,
    /// Client addresses that may use this mount.
    pub allow: Vec<IpNet>,
    pub plugin_name: String,
    pub read_only: bool,
    tag: u64,
    plugin: Arc<MountPlugin>,
    capabilities: Capabilities,
    inodes: InodeTable,
    attrs: AttrCache,
    dirs: DirCache,
    /// Staged copies of files being written, for plugins that take whole files at `commit`.
    staging: Option<Staging>,
    /// Off once a plugin's `commit` did not upload a streamed file under its path.
    streaming_off: AtomicBool,
    /// Files made by EXCLUSIVE creates, until the client's SETATTR completes them.
    exclusive: exclusive::ExclusiveCreates,
    /// How callers' identities are mapped before any check (the config's squash options).
    pub squash: crate::config::Squash,
    pub metrics: crate::metrics::MountMetrics,
    /// Blob ranges read ahead for sequential readers.
    readahead: readahead::Readahead,
    /// Whether MKNOD may make devices (for root after squashing).
    allow_devices: bool,
    /// Configured largest file size; None: the default for the mount's kind.
    max_file_size: Option<u64>,
}

impl Mount {
    pub fn new(
        name: &str,
        plugin_name: &str,
        read_only: bool,
        plugin: Arc<MountPlugin>,
        inodes: InodeTable,
        allow: Vec<IpNet>,
        staging: Option<Staging>,
    ) -> Mount {
        let info = plugin.info();
        let ttl = if info.immutable {
            Ttl::Forever
        } else {
            Ttl::For(
                info.attr_ttl_ms
                    .map_or(DEFAULT_TTL, |ms| Duration::from_millis(ms.into())),
            )
        };
        Mount {
            name: name.to_string(),
            allow,
            plugin_name: plugin_name.to_string(),
            read_only,
            tag: handles::mount_tag(name),
            capabilities: info.capabilities,
            plugin,
            inodes,
            attrs: AttrCache::new(ttl, crate::metrics::CacheMetrics::new(name, "attr")),
            dirs: DirCache::new(ttl, crate::metrics::CacheMetrics::new(name, "dir")),
            squash: crate::config::Squash::NONE,
            metrics: crate::metrics::MountMetrics::new(name),
            readahead: readahead::Readahead::default(),
            staging,
            streaming_off: AtomicBool::new(false),
            exclusive: exclusive::ExclusiveCreates::default(),
            allow_devices: false,
            max_file_size: None,
        }
    }

    /// Applies the config's limits (the staging ones went to `Staging::open`).
    pub fn with_limits(mut self, limits: MountLimits) -> Mount {
        self.allow_devices = limits.allow_devices;
        self.max_file_size = limits.max_file_size;
        self
    }

    /// The largest size a file of this mount may reach (FSINFO's maxfilesize).
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size.unwrap_or(if self.staging.is_some() {
            STAGED_MAX_FILE_SIZE
        } else {
            HOST_MAX_FILE_SIZE
        })
    }

    /// Refuses a size past the mount's largest file.
    fn check_size(&self, end: u64) -> Result<(), Error> {
        if end > self.max_file_size() {
            return Err(Error::TooBig);
        }
        Ok(())
    }

    /// The store that uploads parts of this mount's staged files while they are written, if
    /// any. The gateway cannot know which key a plugin's `commit` uploads a file to; it starts
    /// streams for the file's path (what the bundled `s3` plugin uses), and `upload` adopts a
    /// stream only for its key and staged file.
    fn streaming(&self) -> Option<Arc<crate::plugin::blobstore::BlobStore>> {
        if self.staging.is_none() || self.streaming_off.load(Ordering::Relaxed) {
            return None;
        }
        self.plugin.blobs().cloned()
    }

    fn staged(&self, ino: u64) -> Option<Arc<Staged>> {
        self.staging.as_ref()?.get(ino)
    }

    /// What clients are shown of a file (`path` being the name it was reached by): its
    /// staged writes overlaid, and the names an NFS client gave it when it was unlinked while
    /// open (silly renames) not counted as links, so that `fstat` of an open, unlinked file
    /// says 0 links, as POSIX has it. A file of one link has no other name to look up.
    fn presented(&self, ino: u64, path: &str, attrs: Attrs) -> Attrs {
        let mut attrs = match self.staged(ino) {
            Some(staged) if attrs.kind == FileKind::Regular => staged.overlay(attrs),
            _ => attrs,
        };
        let silly = |path: &str| is_silly_rename(path.rsplit('/').next().unwrap_or(path));
        let unlinked = match attrs.nlink {
            _ if attrs.kind == FileKind::Directory => 0,
            0 => 0,
            1 => usize::from(silly(path)),
            _ => self.inodes.count_names(ino, silly),
        };
        attrs.nlink = attrs.nlink.saturating_sub(unlinked as u32);
        attrs
    }

    /// Sets how callers' identities are mapped.
    pub fn with_squash(mut self, squash: crate::config::Squash) -> Mount {
        self.squash = squash;
        self
    }

    /// The plugin's instance pool: (largest size, instances alive now).
    pub fn pool(&self) -> (usize, usize) {
        self.plugin.pool()
    }

    /// Files written but not yet uploaded, and their bytes (whole-object mounts).
    pub fn pending_uploads(&self) -> (usize, u64) {
        self.staging.as_ref().map_or((0, 0), Staging::pending)
    }

    /// Whether nothing under this mount can change: read-only in the config, or served by a
    /// plugin that declared no capability (a Hub repo at a commit).
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.capabilities == Capabilities::empty()
    }

    /// What the plugin declared it can change.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Refuses a change the mount cannot make: read-only, or not among the plugin's capabilities.
    fn allow(&self, needed: Capabilities) -> Result<(), Error> {
        if self.read_only || self.capabilities == Capabilities::empty() {
            return Err(Error::ReadOnly);
        }
        if !self.capabilities.contains(needed) {
            // POSIX answers EPERM when a file system cannot make links or special files or
            // keep modes, owners or times; NFS3ERR_NOTSUPP would reach Linux programs as an
            // unknown error.
            let refused_as_permission = Capabilities::HARD_LINK
                | Capabilities::SYMLINK
                | Capabilities::SPECIAL_FILES
                | Capabilities::SET_MODE
                | Capabilities::SET_OWNER
                | Capabilities::SET_TIMES;
            if refused_as_permission.contains(needed & !self.capabilities) {
                return Err(Error::NotOwner);
            }
            return Err(Error::NotSupported);
        }
        Ok(())
    }
}

/// Who makes a request: AUTH_UNIX credentials (or the anonymous user).
#[derive(Clone, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

/// A page of directory entries, and whether it is the last. It borrows its entries from the
/// listing; only attributes that changed since the listing was made are copied.
pub struct DirPage {
    listing: Arc<Listing>,
    range: std::ops::Range<usize>,
    /// Attributes newer than the listing's, by index in `range`, in order.
    updated: Vec<(usize, Attrs)>,
    pub end: bool,
}

impl DirPage {
    pub fn entry_count(&self) -> usize {
        self.range.len()
    }

    /// (file id, name, attributes) of each entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = (FileId, &str, &Attrs)> {
        let mut updated = self.updated.iter().peekable();
        self.listing.entries[self.range.clone()]
            .iter()
            .enumerate()
            .map(move |(i, e)| {
                let attrs = match updated.next_if(|(at, _)| *at == i) {
                    Some((_, attrs)) => attrs,
                    None => &e.attrs,
                };
                (e.id, e.name.as_str(), attrs)
            })
    }
}

/// A file id resolved: its mount's slot, the mount, and the mount-relative path.
type Located<'a> = (usize, &'a Mount, Arc<str>);

pub struct Gateway {
    mounts: Vec<Mount>,
    by_name: HashMap<String, usize>,
    by_tag: HashMap<u64, usize>,
    started: Timestamp,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// Runs blocking file work (a staged copy, a granted host file) on the bounded blocking pool;
/// a call stuck past the pool's deadline fails with an I/O error.
async fn blocking<R, F>(f: F) -> Result<R, Error>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, Error> + Send + 'static,
{
    crate::blocking::run(crate::blocking::DEADLINE, f)
        .await
        .map_err(|_| Error::Io)?
}

/// Whether a name is the one the Linux NFS client gives a file unlinked while still open
/// (`.nfs`, then the file id and a counter in 24 hex digits): the client removes it at the last
/// close, so it stands for a link that is already gone.
fn is_silly_rename(name: &str) -> bool {
    name.strip_prefix(".nfs").is_some_and(|rest| {
        rest.len() == 24 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// READ, WRITE and COMMIT act only on regular files: a handle naming a directory answers
/// `IsDir`, any other kind (a symlink, whose target is not what the handle names) `Invalid`,
/// as knfsd answers.
fn regular_file(attrs: &Attrs) -> Result<(), Error> {
    match attrs.kind {
        FileKind::Regular => Ok(()),
        FileKind::Directory => Err(Error::IsDir),
        _ => Err(Error::Invalid),
    }
}

/// A name a plugin may receive: one non-empty component.
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Invalid);
    }
    if name.len() > 255 {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

impl Gateway {
    pub fn new(mounts: Vec<Mount>) -> Gateway {
        let by_name = mounts
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let by_tag = mounts.iter().enumerate().map(|(i, m)| (m.tag, i)).collect();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let started = Timestamp {
            seconds: now.as_secs() as i64,
            nanoseconds: now.subsec_nanos(),
        };
        Gateway {
            mounts,
            by_name,
            by_tag,
            started,
        }
    }

    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The mount a file id belongs to; `None` for the export root.
    pub fn mount_of_id(&self, id: FileId) -> Option<&Mount> {
        split(id).0.checked_sub(1).and_then(|i| self.mounts.get(i))
    }

    // ---- handles

    pub fn handle(&self, id: FileId) -> Vec<u8> {
        let (slot, ino) = split(id);
        let handle = match slot.checked_sub(1).and_then(|i| self.mounts.get(i)) {
            None => Handle {
                tag: 0,
                ino: EXPORT_ROOT,
                generation: 0,
            },
            Some(m) => {
                let generation = if ino == MOUNT_ROOT_INO {
                    0
                } else {
                    m.inodes.generation
                };
                Handle {
                    tag: m.tag,
                    ino,
                    generation,
                }
            }
        };
        handle.encode()
    }

    /// The file id of a handle; `None` for bytes that are no handle of ours, `Stale` for a
    /// handle of ours that no longer names anything.
    pub fn resolve_handle(&self, bytes: &[u8]) -> Option<Result<FileId, Error>> {
        let h = Handle::decode(bytes)?;
        if h.tag == 0 {
            return Some(if h.ino == EXPORT_ROOT {
                Ok(EXPORT_ROOT)
            } else {
                Err(Error::Stale)
            });
        }
        let Some(&index) = self.by_tag.get(&h.tag) else {
            return Some(Err(Error::Stale));
        };
        let mount = &self.mounts[index];
        if h.ino != MOUNT_ROOT_INO
            && (h.generation != mount.inodes.generation || mount.inodes.path(h.ino).is_none())
        {
            return Some(Err(Error::Stale));
        }
        Some(Ok(file_id(index + 1, h.ino)))
    }

    // ---- resolution

    /// The mount and mount-relative path of a file id; `None` for the export root.
    fn locate(&self, id: FileId) -> Result<Option<Located<'_>>, Error> {
        if id == EXPORT_ROOT {
            return Ok(None);
        }
        let (slot, ino) = split(id);
        let mount = slot
            .checked_sub(1)
            .and_then(|i| self.mounts.get(i))
            .ok_or(Error::Stale)?;
        let path = mount.inodes.path(ino).ok_or(Error::Stale)?;
        Ok(Some((slot, mount, path)))
    }

    fn mount_of(&self, id: FileId) -> Result<Located<'_>, Error> {
        // The export root itself holds nothing but the mounts, and cannot be changed.
        self.locate(id)?.ok_or(Error::ReadOnly)
    }

    fn export_root_attrs(&self) -> Attrs {
        Attrs {
            kind: FileKind::Directory,
            size: 4096,
            mode: 0o555,
            uid: 0,
            gid: 0,
            nlink: 2 + self.mounts.len() as u32,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            rdev: Device { major: 0, minor: 0 },
            change: None,
        }
    }

    /// Stats a path through the plugin and caches the answer.
    async fn stat_path(&self, mount: &Mount, ino: u64, path: &str) -> Result<Attrs, Error> {
        let owned = path.to_string();
        let attrs = mount
            .plugin
            .call("stat", move |b, s| {
                Box::pin(async move { b.call_stat(s, &owned).await })
            })
            .await;
        match attrs {
            Ok(attrs) => {
                let attrs = mount.presented(ino, path, attrs);
                mount.attrs.put(ino, attrs.clone());
                Ok(attrs)
            }
            Err(e) => {
                if e == Error::NotFound {
                    mount.attrs.invalidate(ino);
                }
                Err(e)
            }
        }
    }

    /// Whether `client` may use this file id: its mount's allow list holds the address (the
    /// export root: any mount's does). Checked before any call reaches a plugin.
    pub fn allows(&self, id: FileId, client: IpAddr) -> bool {
        let covers = |m: &Mount| m.allow.iter().any(|net| net.contains(&client));
        match split(id).0.checked_sub(1) {
            None => self.mounts.iter().any(covers),
            Some(index) => self.mounts.get(index).is_some_and(covers),
        }
    }

    /// True when nothing under this file id can be changed.
    pub fn read_only(&self, id: FileId) -> bool {
        match self.locate(id) {
            Ok(Some((_, mount, _))) => mount.is_read_only(),
            _ => true,
        }
    }

    /// Current attributes of an entry named by its path, through the cache.
    /// Gives no inode number to a path that has none (it may not exist).
    async fn entry_attrs(&self, mount: &Mount, path: &str) -> Result<Attrs, Error> {
        match mount.inodes.find(path) {
            Some(ino) => match mount.attrs.fresh(ino) {
                Some(attrs) => Ok(attrs),
                None => self.stat_path(mount, ino, path).await,
            },
            None => {
                let owned = path.to_string();
                mount
                    .plugin
                    .call("stat", move |b, s| {
                        Box::pin(async move { b.call_stat(s, &owned).await })
                    })
                    .await
            }
        }
    }

    // ---- reading

    pub async fn getattr(&self, id: FileId) -> Result<Attrs, Error> {
        let Some((_, mount, path)) = self.locate(id)? else {
            return Ok(self.export_root_attrs());
        };
        let (_, ino) = split(id);
        if let Some(attrs) = mount.attrs.fresh(ino) {
            return Ok(attrs);
        }
        match self.stat_path(mount, ino, &path).await {
            // The file went away underneath its handle.
            Err(Error::NotFound) if ino != MOUNT_ROOT_INO => Err(Error::Stale),
            other => other,
        }
    }

    pub async fn lookup(&self, caller: &Caller, dir: FileId, name: &str) -> Result<FileId, Error> {
        let Some((slot, mount, path)) = self.locate(dir)? else {
            return match name {
                "." | ".." => Ok(EXPORT_ROOT),
                _ => self
                    .by_name
                    .get(name)
                    .map(|&i| file_id(i + 1, MOUNT_ROOT_INO))
                    .ok_or(Error::NotFound),
            };
        };
        if name != "." && name != ".." {
            check_name(name)?;
        }
        let dir_attrs = self.getattr(dir).await?;
        permissions::lookup(caller, &dir_attrs)?;
        match name {
            "." => return Ok(dir),
            ".." if path.is_empty() => return Ok(EXPORT_ROOT),
            ".." => return Ok(file_id(slot, mount.inodes.ino(parent_of(&path)))),
            _ => {}
        }
        let child = join(&path, name);
        let ino = mount.inodes.ino(&child);
        if mount.attrs.fresh(ino).is_none() {
            if let Err(e) = self.stat_path(mount, ino, &child).await {
                if e == Error::NotFound {
                    mount.inodes.forget(&child);
                }
                return Err(e);
            }
        }
        mount.inodes.durable().await?;
        Ok(file_id(slot, ino))
    }

    /// Up to `count` bytes at `offset`, and whether they reach the end of the file. Data the
    /// host reads itself goes into a buffer of `buffers`.
    pub async fn read(
        &self,
        caller: &Caller,
        id: FileId,
        offset: u64,
        count: u32,
        buffers: &Arc<BufferPool>,
    ) -> Result<(Bytes, bool), Error> {
        let (_, mount, path) = self.mount_of(id).map_err(|_| Error::IsDir)?;
        let attrs = self.getattr(id).await?;
        regular_file(&attrs)?;
        permissions::read(caller, &attrs)?;
        if let Some(staged) = mount.staged(split(id).1) {
            match blocking(move || staged.read(offset, count)).await {
                Err(Error::Stale) => {} // uploaded meanwhile: the backend has it
                other => return other.map(|(data, eof)| (Bytes::from(data), eof)),
            }
        }
        Self::read_backend(mount, &path, offset, count, buffers, Some(&attrs)).await
    }

    /// Reads through the plugin; what it answers by reference, the host fetches natively
    /// after the plugin instance is free again, into a buffer of `buffers`. With the
    /// attributes of the file being read, a blob range may come from the mount's readahead.
    async fn read_backend(
        mount: &Mount,
        path: &str,
        offset: u64,
        count: u32,
        buffers: &Arc<BufferPool>,
        attrs: Option<&Attrs>,
    ) -> Result<(Bytes, bool), Error> {
        let owned = path.to_string();
        let ReadResult { data, eof } = mount
            .plugin
            .call("read", move |b, s| {
                Box::pin(async move { b.call_read(s, &owned, offset, count).await })
            })
            .await?;
        match data {
            Data::Bytes(mut bytes) => {
                bytes.truncate(count as usize);
                Ok((Bytes::from(bytes), eof))
            }
            Data::HostFile(FileRange { path, offset, len }) => {
                let len = len.min(count.into());
                let grants = mount.plugin.grants().clone();
                let buf = buffers.take(len as usize);
                let (bytes, end) =
                    blocking(move || grants.read_into(&path, offset, len, buf)).await?;
                Ok((buffers.share(bytes), eof || end))
            }
            Data::Blob(BlobRange {
                key,
                offset: at,
                len,
            }) => {
                let Some(store) = mount.plugin.blobs() else {
                    tracing::warn!(mount = %mount.name, "the plugin answered a read with a blob, but its mount grants no object store");
                    return Err(Error::Io);
                };
                let len = len.min(count.into());
                // Read ahead when the object is the file (the same offsets and, checked as
                // blocks arrive, the same size).
                let whole = attrs.filter(|a| at == offset && a.size > 0);
                if let Some(version) = whole.map(Version::of) {
                    let size = version.size;
                    let ahead = mount.readahead.read(store, &key, version, offset, len);
                    if let Some(bytes) = ahead.await {
                        crate::metrics::readahead(&mount.name, bytes.len() as u64);
                        let end = offset + bytes.len() as u64 >= size;
                        return Ok((bytes, eof || end));
                    }
                }
                let buf = buffers.take(len as usize);
                let (bytes, meta) = store.get_range(&key, at, len, buf).await?;
                let bytes = buffers.share(bytes);
                let end = at + bytes.len() as u64 >= meta.size;
                Ok((bytes, eof || end))
            }
        }
    }

    pub async fn readlink(&self, id: FileId) -> Result<String, Error> {
        let (_, mount, path) = self.mount_of(id).map_err(|_| Error::Invalid)?;
        let owned = path.to_string();
        mount
            .plugin
            .call("readlink", move |b, s| {
                Box::pin(async move { b.call_readlink(s, &owned).await })
            })
            .await
    }

    /// Up to `max` entries after the entry whose file id is `cookie` (0: from the start).
    /// `None` when the cookie names no entry of the listing being paged.
    pub async fn readdir(
        &self,
        caller: &Caller,
        dir: FileId,
        cookie: u64,
        max: usize,
    ) -> Result<Option<DirPage>, Error> {
        let Some((slot, mount, path)) = self.locate(dir)? else {
            return Ok(self.readdir_export_root(cookie, max));
        };
        let dir_attrs = self.getattr(dir).await?;
        if dir_attrs.kind != FileKind::Directory {
            return Err(Error::NotDir);
        }
        permissions::read(caller, &dir_attrs)?;
        let (_, ino) = split(dir);
        let cached = if cookie == 0 {
            mount.dirs.fresh(ino)
        } else {
            mount.dirs.current(ino)
        };
        let listing = match cached {
            Some(listing) => listing,
            None => self.fetch_listing(slot, mount, ino, &path).await?,
        };
        let Some(start) = listing.resume_after(cookie) else {
            return Ok(None);
        };
        let end = (start + max).min(listing.entries.len());
        let updated = mount.attrs.updated_since(&listing.entries[start..end]);
        Ok(Some(DirPage {
            end: end == listing.entries.len(),
            listing,
            range: start..end,
            updated,
        }))
    }

    fn readdir_export_root(&self, cookie: u64, max: usize) -> Option<DirPage> {
        let start = if cookie == 0 {
            0
        } else {
            let (slot, ino) = split(cookie);
            if ino != MOUNT_ROOT_INO || slot == 0 || slot > self.mounts.len() {
                return None;
            }
            slot
        };
        let end = (start + max).min(self.mounts.len());
        let entries = (start..end)
            .map(|i| {
                let m = &self.mounts[i];
                let attrs = m
                    .attrs
                    .last_known(MOUNT_ROOT_INO)
                    .unwrap_or_else(|| self.export_root_attrs());
                Listed {
                    id: file_id(i + 1, MOUNT_ROOT_INO),
                    name: m.name.to_string(),
                    attrs,
                    stamp: 0,
                }
            })
            .collect::<Vec<_>>();
        Some(DirPage {
            range: 0..entries.len(),
            listing: Arc::new(Listing::new(entries)),
            updated: Vec::new(),
            end: end == self.mounts.len(),
        })
    }

    async fn fetch_listing(
        &self,
        slot: usize,
        mount: &Mount,
        ino: u64,
        path: &str,
    ) -> Result<Arc<Listing>, Error> {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let (owned, cur) = (path.to_string(), cursor.take());
            let page = mount
                .plugin
                .call("list-dir", move |b, s| {
                    Box::pin(
                        async move { b.call_list_dir(s, &owned, cur.as_deref(), LIST_PAGE).await },
                    )
                })
                .await?;
            for entry in page.entries {
                if check_name(&entry.name).is_err() {
                    tracing::warn!(mount = %mount.name, dir = path, name = ?entry.name, "plugin listed an invalid name; skipped");
                    continue;
                }
                let child = join(path, &entry.name);
                let child_ino = mount.inodes.ino(&child);
                let attrs = match entry.attrs {
                    Some(attrs) => mount.presented(child_ino, &child, attrs),
                    None => match self.stat_path(mount, child_ino, &child).await {
                        Ok(attrs) => attrs,
                        Err(Error::NotFound) => continue,
                        Err(e) => return Err(e),
                    },
                };
                let stamp = mount.attrs.put(child_ino, attrs.clone());
                entries.push(Listed {
                    id: file_id(slot, child_ino),
                    name: entry.name,
                    attrs,
                    stamp,
                });
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        mount.inodes.durable().await?;
        let listing = Arc::new(Listing::new(entries));
        mount.dirs.put(ino, listing.clone());
        Ok(listing)
    }

    // ---- changing

    /// Records that `dir`'s content changed: its attributes and listing are stale.
    fn dir_changed(mount: &Mount, dir_ino: u64) {
        mount.attrs.invalidate(dir_ino);
        mount.dirs.invalidate(dir_ino);
    }

    pub async fn write(
        &self,
        caller: &Caller,
        id: FileId,
        offset: u64,
        data: Bytes,
    ) -> Result<Attrs, Error> {
        let (_, mount, path) = self.mount_of(id)?;
        mount.allow(Capabilities::WRITE)?;
        let current = self.getattr(id).await?;
        regular_file(&current)?;
        permissions::write(caller, &current)?;
        mount.check_size(offset.checked_add(data.len() as u64).ok_or(Error::TooBig)?)?;
        let ino = split(id).1;
        if mount.staging.is_some() {
            // The key and mount name are only needed (and copied) when parts may stream.
            let streaming = mount
                .streaming()
                .map(|store| (store, path.to_string(), mount.name.clone()));
            return self
                .staged_change(mount, ino, &path, current, move |staged| {
                    staged.write(offset, &data)?;
                    if let Some((store, key, name)) = &streaming {
                        let part = crate::plugin::blobstore::STREAM_PART;
                        staged.stream_step(part, STREAM_LAG, || {
                            store.start_stream(key, staged.file.clone(), name)
                        });
                    }
                    Ok(())
                })
                .await;
        }
        let owned = path.to_string();
        let attrs = mount
            .plugin
            .call("write", move |b, s| {
                Box::pin(async move { b.call_write(s, &owned, offset, &data).await })
            })
            .await?;
        mount.attrs.put(ino, attrs.clone());
        Ok(attrs)
    }

    /// Changes a file's staged copy, staging it first (with the backend's content, unless the
    /// change truncates to nothing), and answers the file's attributes afterwards.
    async fn staged_change<F>(
        &self,
        mount: &Mount,
        ino: u64,
        path: &str,
        current: Attrs,
        change: F,
    ) -> Result<Attrs, Error>
    where
        F: Fn(&Staged) -> Result<(), Error> + Send + Sync + 'static,
    {
        if current.kind != FileKind::Regular {
            return Err(Error::Invalid);
        }
        let staging = mount.staging.as_ref().ok_or(Error::NotSupported)?;
        let change = Arc::new(change);
        // A copy let go by an upload finishing meanwhile is staged afresh, once.
        for _ in 0..2 {
            let staged = staging.begin(ino, current.size)?;
            let filled = staged
                .filled
                .get_or_try_init(|| Self::fill(mount, path, &staged));
            match filled.await {
                Ok(()) => {}
                // Let go meanwhile (removed, or its fill failed for another writer).
                Err(Error::Stale) => continue,
                Err(e) => {
                    staging.abandon(&staged);
                    return Err(e);
                }
            }
            let (copy, change) = (staged.clone(), change.clone());
            match blocking(move || change(&copy)).await {
                Err(Error::Stale) => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    let attrs = staged.overlay(current);
                    mount.attrs.put(ino, attrs.clone());
                    return Ok(attrs);
                }
            }
        }
        Err(Error::Busy)
    }

    /// Copies a file's content from the backend into its new staged copy.
    async fn fill(mount: &Mount, path: &str, staged: &Arc<Staged>) -> Result<(), Error> {
        const CHUNK: u32 = 4 << 20;
        let size = staged.backend_len;
        let buffers = BufferPool::new(CHUNK as usize);
        let mut offset = 0;
        while offset < size {
            let (bytes, eof) =
                Self::read_backend(mount, path, offset, CHUNK, &buffers, None).await?;
            let n = bytes.len() as u64;
            let copy = staged.clone();
            blocking(move || copy.write(offset, &bytes)).await?;
            offset += n;
            if eof || n == 0 {
                break;
            }
        }
        Ok(())
    }

    // ---- flushing staged writes

    /// Uploads one staged copy through the plugin's `commit`. True when the backend now holds
    /// the file's latest data and the copy was let go.
    async fn flush_staged(&self, mount: &Mount, staged: Arc<Staged>) -> Result<bool, Error> {
        let staging = mount.staging.as_ref().ok_or(Error::NotSupported)?;
        let _uploading = staged.upload.lock().await;
        if staged.is_retired() {
            // Another flush uploaded it while this one waited for the lock.
            return Ok(true);
        }
        let (size, generation) = staged.snapshot();
        let Some(path) = mount.inodes.path(staged.ino) else {
            tracing::warn!(mount = %mount.name, ino = staged.ino, "a staged file has no name any more; its data is dropped");
            staging.discard(staged.ino);
            return Ok(true);
        };
        let copy = staged.clone();
        if let Err(e) = blocking(move || copy.sync()).await {
            staging.failed(&staged);
            return Err(e);
        }
        let started = std::time::Instant::now();
        let streamed = staged.stream();
        let committed = mount
            .plugin
            .commit(path.to_string(), staged.file.clone(), size)
            .await;
        // The stream ends with the flush; later writes may start another.
        if let Some(stream) = staged.take_stream() {
            let unused = streamed.is_some_and(|s| Arc::ptr_eq(&s, &stream)) && !stream.adopted();
            stream.cancel();
            if unused && committed.is_ok() && !mount.streaming_off.swap(true, Ordering::Relaxed) {
                tracing::info!(mount = %mount.name, path = %path, "the plugin did not upload the file under its path; no more early uploads on this mount");
            }
        }
        match committed {
            Ok(attrs) => {
                let done = staging.uploaded(&staged, generation);
                tracing::info!(mount = %mount.name, path = %path, size, elapsed_ms = started.elapsed().as_millis() as u64, "uploaded");
                if done {
                    mount.attrs.put(staged.ino, attrs);
                } else {
                    mount.attrs.invalidate(staged.ino);
                }
                Self::dir_changed(mount, mount.inodes.ino(parent_of(&path)));
                Ok(done)
            }
            Err(e) => {
                let failures = staging.failed(&staged);
                crate::metrics::upload_failed(&mount.name);
                tracing::warn!(mount = %mount.name, path = %path, size, failures, error = ?e, "upload failed; the data stays staged and is tried again");
                Err(e)
            }
        }
    }

    /// Uploads what has been idle for its mount's flush delay; runs until the process ends.
    /// It sleeps until the next copy is due, and looks again at least every 200 ms for copies
    /// made meanwhile.
    pub async fn run_flusher(self: Arc<Self>) {
        const LOOK_AGAIN: Duration = Duration::from_millis(200);
        loop {
            let now = tokio::time::Instant::now();
            let next = self
                .mounts
                .iter()
                .filter_map(|m| m.staging.as_ref()?.next_due())
                .min()
                .map_or(now + LOOK_AGAIN, tokio::time::Instant::from_std);
            let wake = next.clamp(now + Duration::from_millis(1), now + LOOK_AGAIN);
            tokio::time::sleep_until(wake).await;
            for index in 0..self.mounts.len() {
                let Some(staging) = &self.mounts[index].staging else {
                    continue;
                };
                crate::metrics::flush_queue_set(&self.mounts[index].name, staging.pending().0);
                for staged in staging.due() {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _ = this.flush_staged(&this.mounts[index], staged).await;
                    });
                }
            }
        }
    }

    /// Staged files and bytes not yet uploaded, over every mount.
    pub fn pending_uploads(&self) -> (usize, u64) {
        self.mounts
            .iter()
            .map(Mount::pending_uploads)
            .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2))
    }

    /// Uploads every staged copy now, each tried up to `attempts` times. Returns how many
    /// files are still staged (they stay on disk and are uploaded at the next start).
    pub async fn flush_all(&self, attempts: u32) -> usize {
        for attempt in 1..=attempts {
            let mut failed = 0;
            for mount in &self.mounts {
                let Some(staging) = &mount.staging else {
                    continue;
                };
                for staged in staging.all() {
                    if self.flush_staged(mount, staged).await.is_err() {
                        failed += 1;
                    }
                }
            }
            let (left, bytes) = self.pending_uploads();
            if left == 0 {
                return 0;
            }
            tracing::warn!(
                attempt,
                failed,
                left,
                bytes,
                "staged files are still waiting for upload"
            );
            if attempt < attempts {
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
            }
        }
        self.pending_uploads().0
    }

    /// Creates a regular file and returns its id and attributes. Unless `exclusive`, an
    /// existing regular file is answered as it is (RFC 1813's UNCHECKED): it keeps its owner
    /// and mode, and the caller's attributes go through SETATTR's checks (`setattr`).
    pub async fn create(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        mode: u32,
        exclusive: bool,
    ) -> Result<(FileId, Attrs), Error> {
        // The plugin is always asked for a new file, so that only a file made by this call is
        // given to the caller (`make`); an existing one is looked up instead.
        let made = self
            .make(
                caller,
                dir,
                name,
                Capabilities::CREATE,
                "create",
                move |b, s, p| Box::pin(async move { b.call_create(s, &p, mode, true).await }),
            )
            .await;
        match made {
            Err(Error::Exists) if !exclusive => {
                let id = self.lookup(caller, dir, name).await?;
                let attrs = self.getattr(id).await?;
                match attrs.kind {
                    FileKind::Regular => Ok((id, attrs)),
                    FileKind::Directory => Err(Error::IsDir),
                    _ => Err(Error::Exists),
                }
            }
            other => other,
        }
    }

    /// An EXCLUSIVE create: makes the file, or finds the one an earlier try of this create made
    /// (the same verifier). The verifier is kept in the file's times where the backend keeps
    /// times (it survives a restart), else in memory (it covers retransmissions). The client
    /// then sets the file's attributes, which completes the create (see `setattr`).
    pub async fn create_exclusive(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        verifier: [u8; 8],
    ) -> Result<(FileId, Attrs), Error> {
        let (_, mount, _) = self.mount_of(dir)?;
        let in_times = mount.capabilities.contains(Capabilities::SET_TIMES);
        let stamp = Timestamp {
            seconds: u32::from_be_bytes(verifier[..4].try_into().unwrap()).into(),
            nanoseconds: u32::from_be_bytes(verifier[4..].try_into().unwrap()) % 1_000_000_000,
        };
        let tag = u64::from_be_bytes(verifier);
        match self.create(caller, dir, name, 0o600, true).await {
            Ok((id, mut attrs)) => {
                if in_times {
                    let times = SetAttrs {
                        atime: Some(SetTime::At(stamp)),
                        mtime: Some(SetTime::At(stamp)),
                        ..SetAttrs::none()
                    };
                    attrs = self.setattr(caller, id, times).await?;
                }
                mount.exclusive.made(split(id).1, tag);
                Ok((id, attrs))
            }
            Err(Error::Exists) => {
                let id = self.lookup(caller, dir, name).await?;
                let attrs = self.getattr(id).await?;
                let ours = if in_times {
                    attrs.mtime.seconds == stamp.seconds
                        && attrs.mtime.nanoseconds == stamp.nanoseconds
                } else {
                    mount.exclusive.made_with(split(id).1, tag)
                };
                // Times anyone can read are no proof: the file must also be the caller's,
                // where the backend keeps owners.
                let ours = ours
                    && (attrs.uid == caller.uid
                        || !mount.capabilities.contains(Capabilities::SET_OWNER));
                if attrs.kind == FileKind::Regular && ours {
                    Ok((id, attrs))
                } else {
                    Err(Error::Exists)
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn mkdir(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        mode: u32,
    ) -> Result<(FileId, Attrs), Error> {
        self.make(
            caller,
            dir,
            name,
            Capabilities::MKDIR,
            "mkdir",
            move |b, s, p| Box::pin(async move { b.call_mkdir(s, &p, mode).await }),
        )
        .await
    }

    pub async fn symlink(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        target: &str,
    ) -> Result<(FileId, Attrs), Error> {
        let target = target.to_string();
        self.make(
            caller,
            dir,
            name,
            Capabilities::SYMLINK,
            "symlink",
            move |b, s, p| Box::pin(async move { b.call_symlink(s, &p, &target).await }),
        )
        .await
    }

    /// Makes a fifo, socket or device node.
    pub async fn mknod(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Result<(FileId, Attrs), Error> {
        let (_, mount, _) = self.mount_of(dir)?;
        permissions::make_node(caller, kind, mount.allow_devices)?;
        let needed = Capabilities::SPECIAL_FILES;
        self.make(caller, dir, name, needed, "mknod", move |b, s, p| {
            Box::pin(async move { b.call_mknod(s, &p, kind, mode, device).await })
        })
        .await
    }

    /// Shared path of every call that makes a new entry in `dir`: the new entry belongs to
    /// the caller (its group is the directory's when the directory is set-group-id), where
    /// the plugin can set owners.
    async fn make<F>(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        needed: Capabilities,
        op: &'static str,
        call: F,
    ) -> Result<(FileId, Attrs), Error>
    where
        F: for<'a> FnOnce(&'a Backend, &'a mut Store<HostState>, String) -> CallFuture<'a, Attrs>
            + Send
            + 'static,
    {
        let (slot, mount, path) = self.mount_of(dir)?;
        check_name(name)?;
        mount.allow(needed)?;
        let dir_attrs = self.getattr(dir).await?;
        permissions::change_entries(caller, &dir_attrs)?;
        let child = join(&path, name);
        let owned = child.clone();
        let result = mount.plugin.call(op, move |b, s| call(b, s, owned)).await;
        Self::dir_changed(mount, split(dir).1);
        let mut attrs = result?;
        let ino = mount.inodes.ino(&child);
        mount.inodes.durable().await?;
        let gid = if dir_attrs.mode & 0o2000 != 0 {
            dir_attrs.gid
        } else {
            caller.gid
        };
        if mount.capabilities.contains(Capabilities::SET_OWNER)
            && (attrs.uid != caller.uid || attrs.gid != gid)
        {
            let changes = SetAttrs {
                uid: Some(caller.uid),
                gid: Some(gid),
                ..SetAttrs::none()
            };
            let owned = child.clone();
            attrs = mount
                .plugin
                .call("setattr", move |b, s| {
                    Box::pin(async move { b.call_setattr(s, &owned, changes).await })
                })
                .await?;
        }
        mount.attrs.put(ino, attrs.clone());
        Ok((file_id(slot, ino), attrs))
    }

    /// Makes another name for a file.
    pub async fn link(
        &self,
        caller: &Caller,
        file: FileId,
        dir: FileId,
        name: &str,
    ) -> Result<Attrs, Error> {
        let (file_slot, _, file_path) = self.mount_of(file)?;
        let (slot, mount, dir_path) = self.mount_of(dir)?;
        if file_slot != slot {
            return Err(Error::CrossDevice);
        }
        check_name(name)?;
        mount.allow(Capabilities::HARD_LINK)?;
        permissions::change_entries(caller, &self.getattr(dir).await?)?;
        permissions::link_source(caller, &self.getattr(file).await?)?;
        let (existing, new) = (file_path.to_string(), join(&dir_path, name));
        let (e_owned, n_owned) = (existing.clone(), new.clone());
        let result = mount
            .plugin
            .call("link", move |b, s| {
                Box::pin(async move { b.call_link(s, &e_owned, &n_owned).await })
            })
            .await;
        Self::dir_changed(mount, split(dir).1);
        let attrs = result?;
        mount.inodes.link(&existing, &new);
        mount.inodes.durable().await?;
        let attrs = mount.presented(split(file).1, &new, attrs);
        mount.attrs.put(split(file).1, attrs.clone());
        Ok(attrs)
    }

    /// Makes what was written to a file durable.
    pub async fn sync(&self, id: FileId) -> Result<(), Error> {
        let (_, mount, path) = self.mount_of(id)?;
        mount.allow(Capabilities::WRITE)?;
        regular_file(&self.getattr(id).await?)?;
        if mount.staging.is_some() {
            // Staged data is durable once on the local disk; the upload follows.
            return match mount.staged(split(id).1) {
                Some(staged) => blocking(move || staged.sync()).await,
                None => Ok(()),
            };
        }
        let owned = path.to_string();
        mount
            .plugin
            .call("sync", move |b, s| {
                Box::pin(async move { b.call_sync(s, &owned).await })
            })
            .await
    }

    pub async fn statfs(&self, id: FileId) -> Result<FsStats, Error> {
        match self.locate(id)? {
            Some((_, mount, _)) => {
                mount
                    .plugin
                    .call("statfs", move |b, s| {
                        Box::pin(async move { b.call_statfs(s).await })
                    })
                    .await
            }
            None => Ok(FsStats {
                total_bytes: 0,
                free_bytes: 0,
                available_bytes: 0,
                total_files: self.mounts.len() as u64,
                free_files: 0,
                available_files: 0,
            }),
        }
    }

    /// Removes a non-directory (`directory` false) or an empty directory (`directory` true).
    pub async fn remove(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        directory: bool,
    ) -> Result<(), Error> {
        let (_, mount, path) = self.mount_of(dir)?;
        check_name(name)?;
        mount.allow(Capabilities::REMOVE)?;
        let child = join(&path, name);
        let dir_attrs = self.getattr(dir).await?;
        permissions::change_entries(caller, &dir_attrs)?;
        if permissions::sticky_binds(caller, &dir_attrs) {
            permissions::sticky(caller, &dir_attrs, &self.entry_attrs(mount, &child).await?)?;
        }
        // No upload of the file may be under way while it goes.
        let staged = mount.inodes.find(&child).and_then(|ino| mount.staged(ino));
        let _uploading = match &staged {
            Some(staged) => Some(staged.upload.lock().await),
            None => None,
        };
        let owned = child.clone();
        let result = if directory {
            mount
                .plugin
                .call("rmdir", move |b, s| {
                    Box::pin(async move { b.call_rmdir(s, &owned).await })
                })
                .await
        } else {
            mount
                .plugin
                .call("remove", move |b, s| {
                    Box::pin(async move { b.call_remove(s, &owned).await })
                })
                .await
        };
        Self::dir_changed(mount, split(dir).1);
        result?;
        if let Some(ino) = mount.inodes.find(&child) {
            mount.attrs.invalidate(ino);
            mount.dirs.remove(ino);
            if let Some(staging) = &mount.staging {
                staging.discard(ino);
            }
        }
        mount.inodes.forget(&child);
        mount.inodes.durable().await
    }

    pub async fn rename(
        &self,
        caller: &Caller,
        from_dir: FileId,
        from: &str,
        to_dir: FileId,
        to: &str,
    ) -> Result<(), Error> {
        let (from_slot, mount, from_path) = self.mount_of(from_dir)?;
        let (to_slot, _, to_path) = self.mount_of(to_dir)?;
        if from_slot != to_slot {
            return Err(Error::CrossDevice);
        }
        check_name(from)?;
        check_name(to)?;
        mount.allow(Capabilities::RENAME)?;
        let (source, destination) = (join(&from_path, from), join(&to_path, to));
        if source == destination {
            return Ok(());
        }
        if destination.starts_with(&format!("{source}/")) {
            return Err(Error::Invalid);
        }
        let (from_attrs, to_attrs) = (self.getattr(from_dir).await?, self.getattr(to_dir).await?);
        permissions::change_entries(caller, &from_attrs)?;
        permissions::change_entries(caller, &to_attrs)?;
        // The entries' own attributes matter only for sticky directories and moves.
        if permissions::sticky_binds(caller, &from_attrs) || from_dir != to_dir {
            let moved = self.entry_attrs(mount, &source).await?;
            permissions::sticky(caller, &from_attrs, &moved)?;
            if from_dir != to_dir {
                permissions::move_dir(caller, &moved)?;
            }
        }
        if permissions::sticky_binds(caller, &to_attrs) {
            match self.entry_attrs(mount, &destination).await {
                Ok(replaced) => permissions::sticky(caller, &to_attrs, &replaced)?,
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        // No upload of a file whose name changes (moved, or replaced) may be under way; others
        // go on.
        let moved = format!("{source}/");
        let renamed = |ino: u64| {
            mount
                .inodes
                .path(ino)
                .is_some_and(|p| *p == *source || *p == *destination || p.starts_with(&moved))
        };
        let mut staged: Vec<_> = mount
            .staging
            .as_ref()
            .map(Staging::snapshot_all)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| renamed(s.ino))
            .collect();
        // One order for every caller, so two renames never wait on each other's locks.
        staged.sort_by_key(|s| s.ino);
        let mut _uploading = Vec::with_capacity(staged.len());
        for s in &staged {
            _uploading.push(s.upload.lock().await);
        }
        let (s_owned, d_owned) = (source.clone(), destination.clone());
        let result = mount
            .plugin
            .call("rename", move |b, s| {
                Box::pin(async move { b.call_rename(s, &s_owned, &d_owned).await })
            })
            .await;
        Self::dir_changed(mount, split(from_dir).1);
        Self::dir_changed(mount, split(to_dir).1);
        result?;
        // Streams started for the moved names would complete under them: they go.
        for s in &staged {
            if mount
                .inodes
                .path(s.ino)
                .is_some_and(|p| *p == *source || p.starts_with(&moved))
            {
                if let Some(stream) = s.take_stream() {
                    stream.cancel();
                }
            }
        }
        if let Some(replaced) = mount.inodes.find(&destination) {
            mount.attrs.invalidate(replaced);
            if let Some(staging) = &mount.staging {
                staging.discard(replaced);
            }
        }
        mount.inodes.rename(&source, &destination);
        // ctime of the moved entry changed.
        mount.attrs.invalidate(mount.inodes.ino(&destination));
        mount.inodes.durable().await
    }

    pub async fn setattr(
        &self,
        caller: &Caller,
        id: FileId,
        changes: SetAttrs,
    ) -> Result<Attrs, Error> {
        let (_, mount, path) = self.mount_of(id)?;
        if let Some(size) = changes.size {
            mount.check_size(size)?;
        }
        let mut changes = changes;
        // The SETATTR that completes an exclusive create brings the mode CREATE could not:
        // a backend without modes ignores it, as it ignores CREATE's.
        if mount.exclusive.complete(split(id).1)
            && !mount.capabilities.contains(Capabilities::SET_MODE)
        {
            changes.mode = None;
        }
        let lacks = |c: Capabilities| !mount.capabilities.contains(c) && !mount.read_only;
        let owner_change = changes.uid.is_some() || changes.gid.is_some();
        if (changes.mode.is_some() && lacks(Capabilities::SET_MODE))
            || (owner_change && lacks(Capabilities::SET_OWNER))
        {
            // A backend without modes or owners takes the change that changes nothing (a
            // `chmod` to the mode the file shows), as file systems with fixed modes do; the
            // caller must still be allowed to make it.
            let current = self.getattr(id).await?;
            changes = permissions::setattr(caller, &current, changes)?;
            if lacks(Capabilities::SET_MODE)
                && changes.mode.map(|m| m & 0o7777) == Some(current.mode & 0o7777)
            {
                changes.mode = None;
            }
            if lacks(Capabilities::SET_OWNER) {
                changes.uid = changes.uid.filter(|&uid| uid != current.uid);
                changes.gid = changes.gid.filter(|&gid| gid != current.gid);
            }
        }
        if !mount.capabilities.contains(Capabilities::SET_TIMES) && !mount.read_only {
            // A backend that keeps no times of its own (an object store stamps each upload)
            // takes "set them to now" as done: that is what its times will say.
            let now_or_unset = |t: &Option<SetTime>| matches!(t, None | Some(SetTime::Now));
            if now_or_unset(&changes.atime) && now_or_unset(&changes.mtime) {
                changes.atime = None;
                changes.mtime = None;
            }
        }
        let mut needed = Capabilities::empty();
        if changes.mode.is_some() {
            needed |= Capabilities::SET_MODE;
        }
        if changes.uid.is_some() || changes.gid.is_some() {
            needed |= Capabilities::SET_OWNER;
        }
        if changes.size.is_some() {
            needed |= Capabilities::TRUNCATE;
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            needed |= Capabilities::SET_TIMES;
        }
        if needed == Capabilities::empty() {
            return self.getattr(id).await;
        }
        mount.allow(needed)?;
        let current = self.getattr(id).await?;
        if changes.size.is_some() {
            regular_file(&current)?;
        }
        let mut changes = permissions::setattr(caller, &current, changes)?;
        let ino = split(id).1;
        if let (Some(size), Some(_)) = (changes.size, &mount.staging) {
            let attrs = self
                .staged_change(mount, ino, &path, current, move |s| s.truncate(size))
                .await?;
            changes.size = None;
            if changes.is_empty() {
                return Ok(attrs);
            }
        }
        let owned = path.to_string();
        let attrs = mount
            .plugin
            .call("setattr", move |b, s| {
                Box::pin(async move { b.call_setattr(s, &owned, changes).await })
            })
            .await?;
        let attrs = mount.presented(ino, &path, attrs);
        mount.attrs.put(ino, attrs.clone());
        Ok(attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        assert_eq!(check_name("a/b"), Err(Error::Invalid));
        assert_eq!(check_name(".."), Err(Error::Invalid));
        assert_eq!(check_name(""), Err(Error::Invalid));
        assert_eq!(check_name(&"x".repeat(256)), Err(Error::NameTooLong));
        assert_eq!(check_name("ünïcødé ✓"), Ok(()));
    }

    #[test]
    fn paths_join_and_split() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("a"), "");
    }
}
