//! The gateway core: every mount side by side under one export root, behind a file-id API.
//!
//! The NFS front calls this API with file ids; the core turns them into (mount, path) through
//! each mount's inode table, answers from its caches where it can, checks the mount's
//! read-only flag and the backend's declared capabilities, and otherwise calls the mount's
//! backend (`crate::backend`), whichever serves it. It knows nothing of the wire protocol:
//! errors are the plugin interface's, whose cases map one to one to NFS statuses.
//!
//! The API is split by job: `resolve` (handles, file ids to mounts and paths, allow checks),
//! `read` (attributes, lookups, reads and listings), `write_back` (file data, staged copies and
//! their flushing) and `namespace` (making, linking, removing and renaming entries, and
//! SETATTR). This module holds what they share: `Gateway`, `Mount`, `Caller`, `DirPage`.

mod cache;
mod cold_names;
mod exclusive;
pub mod handles;
mod inode_log;
mod inodes;
pub mod mounts;
pub(crate) mod name_tree;
mod namespace;
pub mod permissions;
mod read;
mod readahead;
mod resolve;
pub mod staging;
mod write_back;

use std::collections::HashMap;

use ipnet::IpNet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::types::{Attrs, Capabilities, Error, FileKind, Timestamp};
use crate::backend::Backend;
pub use crate::config::{CacheLimits, MountLimits};
use cache::{AttrCache, DirCache, Entries, Ttl};
use handles::split;
pub use inodes::InodeTable;
use staging::{Staged, Staging};

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

/// One mount: its backend, its inode table and its caches.
pub struct Mount {
    pub name: String,
    /// Client addresses that may use this mount.
    pub allow: Vec<IpNet>,
    pub plugin_name: String,
    pub read_only: bool,
    tag: u64,
    backend: Arc<dyn Backend>,
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
    /// How much of the mount's metadata its caches and inode table may hold.
    cache_limits: CacheLimits,
}

impl Mount {
    pub fn new(
        name: &str,
        plugin_name: &str,
        read_only: bool,
        backend: Arc<dyn Backend>,
        inodes: InodeTable,
        allow: Vec<IpNet>,
        staging: Option<Staging>,
    ) -> Mount {
        let info = backend.info();
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
            backend,
            inodes,
            attrs: AttrCache::new(
                ttl,
                CacheLimits::default().attr_entries,
                crate::metrics::CacheMetrics::new(name, "attr"),
            ),
            dirs: DirCache::new(
                ttl,
                CacheLimits::default().listing_entries,
                crate::metrics::CacheMetrics::new(name, "dir"),
            ),
            squash: crate::config::Squash::NONE,
            metrics: crate::metrics::MountMetrics::new(name),
            readahead: readahead::Readahead::default(),
            staging,
            streaming_off: AtomicBool::new(false),
            exclusive: exclusive::ExclusiveCreates::default(),
            allow_devices: false,
            max_file_size: None,
            cache_limits: CacheLimits::default(),
        }
    }

    /// Applies the config's limits (the staging ones went to `Staging::open`).
    pub fn with_limits(mut self, limits: MountLimits) -> Mount {
        self.allow_devices = limits.allow_devices;
        self.max_file_size = limits.max_file_size;
        self
    }

    /// Applies the server's cache bounds (`[server.cache]`).
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> Mount {
        self.dirs = self.dirs.with_bound(limits.listing_entries);
        self.attrs.resize(limits.attr_entries);
        self.cache_limits = limits;
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
    fn streaming(&self) -> Option<Arc<crate::objstore::BlobStore>> {
        if self.staging.is_none() || self.streaming_off.load(Ordering::Relaxed) {
            return None;
        }
        self.backend.blobs().cloned()
    }

    fn staged(&self, ino: u64) -> Option<Arc<Staged>> {
        self.staging.as_ref()?.get(ino)
    }

    /// What clients are shown of a file (`path` being the name it was reached by): its
    /// staged writes overlaid, and the names an NFS client gave it when it was unlinked while
    /// open (silly renames) not counted as links, so that `fstat` of an open, unlinked file
    /// says 0 links, as POSIX has it. A file of one link has no other name to look up.
    async fn presented(&self, ino: u64, path: &str, attrs: Attrs) -> Attrs {
        let mut attrs = match self.staged(ino) {
            Some(staged) if attrs.kind == FileKind::Regular => staged.overlay(attrs),
            _ => attrs,
        };
        let silly = |path: &str| is_silly_rename(path.rsplit('/').next().unwrap_or(path));
        let unlinked = match attrs.nlink {
            _ if attrs.kind == FileKind::Directory => 0,
            0 => 0,
            1 => usize::from(silly(path)),
            _ => self.inodes.count_names(ino, silly).await,
        };
        attrs.nlink = attrs.nlink.saturating_sub(unlinked as u32);
        attrs
    }

    /// Sets how callers' identities are mapped.
    pub fn with_squash(mut self, squash: crate::config::Squash) -> Mount {
        self.squash = squash;
        self
    }

    /// The backend's pool of instances: (largest size, instances alive now).
    pub fn pool(&self) -> (usize, usize) {
        self.backend.pool()
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

    /// The backend that serves the mount, for callers that check the backend itself (the
    /// plugin conformance suite).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
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
/// listing's page; only attributes that changed since the listing was made are copied.
pub struct DirPage {
    entries: Entries,
    range: std::ops::Range<usize>,
    /// The cookie of the entry before the first (its position in the listing).
    after: u64,
    /// Attributes newer than the listing's, by index in `range`, in order.
    updated: Vec<(usize, Attrs)>,
    pub end: bool,
    /// The listing's verifier (READDIR's cookieverf).
    pub verf: u64,
}

impl DirPage {
    pub fn entry_count(&self) -> usize {
        self.range.len()
    }

    /// (cookie, file id, name, attributes) of each entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = (u64, FileId, &str, &Attrs)> {
        let mut updated = self.updated.iter().peekable();
        self.entries[self.range.clone()]
            .iter()
            .enumerate()
            .map(move |(i, e)| {
                let attrs = match updated.next_if(|(at, _)| *at == i) {
                    Some((_, attrs)) => attrs,
                    None => &e.attrs,
                };
                (self.after + i as u64 + 1, e.id, e.name.as_str(), attrs)
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

    /// Makes every mount's inode journal durable, the forgets no reply waited for included,
    /// before the process exits. One that cannot be written is reported and left: what it
    /// loses is forgets, which the next run finds to be gone again.
    pub async fn flush_journals(&self) {
        for mount in &self.mounts {
            if let Err(e) = mount.inodes.flush().await {
                tracing::warn!(mount = %mount.name, "the inode journal could not be written before exiting: {e:?}");
            }
        }
    }

    /// The mount a file id belongs to; `None` for the export root.
    pub fn mount_of_id(&self, id: FileId) -> Option<&Mount> {
        split(id).0.checked_sub(1).and_then(|i| self.mounts.get(i))
    }

    /// Records that the directory `dir_ino` changed: its listing is stale, and its attributes
    /// are those the change left, when the backend answered them (`after`) as a directory's,
    /// else stale too. (A directory's attributes are presented as they are answered.)
    fn dir_changed(mount: &Mount, dir_ino: u64, after: Option<Attrs>) {
        mount.dirs.invalidate(dir_ino);
        match after {
            Some(attrs) if attrs.kind == FileKind::Directory => {
                mount.attrs.put(dir_ino, attrs);
            }
            _ => mount.attrs.invalidate(dir_ino),
        }
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
