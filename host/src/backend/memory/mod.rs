//! The in-memory backend (`plugin = "memory"`): a POSIX file tree that lives as long as the
//! process, served natively with no WebAssembly, for tests, demos and measuring the gateway
//! without a plugin's cost. It keeps regular files with their contents, directories,
//! symlinks, fifos, sockets and device nodes, hard links, modes, owners, times and link counts,
//! and declares every capability. Its mount config can slow it down and make it fail on
//! purpose: `latency_us` delays every call, and with `fail_ops` (a comma list of operation
//! names) and `fail_every = N`, every Nth call of those operations, counted together, fails
//! with `Error::Io`.

mod tree;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;

use super::{Backend, Reply};
use crate::backend::types::{
    Attrs, Capabilities, Device, DirPage, Error, FileKind, FsStats, Made, MountInfo, ReadResult,
    Renamed, SetAttrs,
};
use crate::copy_file::CopyFile;
use crate::metrics;
use crate::objstore::BlobStore;
use crate::plugin::host_fs::Grants;
use tree::{Content, Tree, NO_DEVICE};

/// The name that selects this backend in a mount's `plugin` key.
pub const NAME: &str = "memory";

/// The operations `fail_ops` may name, as the plugin interface names them.
const OPERATIONS: [&str; 17] = [
    "stat", "list-dir", "read", "readlink", "write", "create", "mkdir", "symlink", "mknod", "link",
    "setattr", "remove", "rmdir", "rename", "sync", "statfs", "commit",
];

/// A mount's tree in memory, with its injected latency and failures.
pub struct MemoryBackend {
    mount: Arc<str>,
    info: MountInfo,
    no_host_files: Arc<Grants>,
    faults: Faults,
    tree: Mutex<Tree>,
}

impl MemoryBackend {
    /// An empty tree (a root directory, mode 0755, owned by root) for the mount `mount`, with
    /// the mount's `[mount.config]` settings.
    pub fn new(mount: &str, config: &[(String, String)]) -> anyhow::Result<MemoryBackend> {
        Ok(MemoryBackend {
            mount: mount.into(),
            info: MountInfo {
                capabilities: Capabilities::all(),
                immutable: false,
                attr_ttl_ms: None,
                max_instances: Some(1),
                staged_writes: false,
                pinned_config: Vec::new(),
            },
            no_host_files: Arc::new(Grants::new(Vec::new())),
            faults: Faults::from_config(config)?,
            tree: Mutex::new(Tree::new()),
        })
    }

    /// Runs `op` on the tree after the configured latency, unless it is a call chosen to fail.
    /// Calls are counted in the metrics as plugin calls are.
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        work: impl FnOnce(&mut Tree) -> Result<T, Error> + Send + 'a,
    ) -> Reply<'a, T> {
        Box::pin(async move {
            if !self.faults.latency.is_zero() {
                tokio::time::sleep(self.faults.latency).await;
            }
            metrics::plugin_call(&self.mount, op);
            let result = if self.faults.fails(op) {
                Err(Error::Io)
            } else {
                work(&mut self.tree.lock().unwrap())
            };
            if let Err(e) = &result {
                metrics::plugin_call_error(&self.mount, e.name());
            }
            result
        })
    }
}

/// The failures and latency a mount's config asks for.
struct Faults {
    latency: Duration,
    ops: Vec<&'static str>,
    every: u64,
    calls: AtomicU64,
}

impl Faults {
    fn from_config(config: &[(String, String)]) -> anyhow::Result<Faults> {
        let mut faults = Faults {
            latency: Duration::ZERO,
            ops: Vec::new(),
            every: 0,
            calls: AtomicU64::new(0),
        };
        let number = |key: &str, value: &str| {
            value
                .trim()
                .parse::<u64>()
                .with_context(|| format!("`config.{key}` must be a whole number, not {value:?}"))
        };
        for (key, value) in config {
            match key.as_str() {
                "latency_us" => faults.latency = Duration::from_micros(number(key, value)?),
                "fail_every" => faults.every = number(key, value)?,
                "fail_ops" => {
                    for op in value.split(',').map(str::trim).filter(|op| !op.is_empty()) {
                        let Some(known) = OPERATIONS.iter().copied().find(|known| *known == op) else {
                            bail!(
                                "`config.fail_ops`: no operation is called {op:?} (operations: {})",
                                OPERATIONS.join(", ")
                            );
                        };
                        faults.ops.push(known);
                    }
                }
                _ => bail!(
                    "the {NAME} plugin has no setting `config.{key}` (it takes latency_us, fail_ops and fail_every)"
                ),
            }
        }
        Ok(faults)
    }

    /// Whether this call of `op` is one chosen to fail.
    fn fails(&self, op: &'static str) -> bool {
        if self.every == 0 || !self.ops.contains(&op) {
            return false;
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        call.is_multiple_of(self.every)
    }
}

impl Backend for MemoryBackend {
    fn info(&self) -> &MountInfo {
        &self.info
    }

    fn blobs(&self) -> Option<&Arc<BlobStore>> {
        None
    }

    fn host_files(&self) -> &Arc<Grants> {
        &self.no_host_files
    }

    fn pool(&self) -> (usize, usize) {
        (1, 1)
    }

    fn stat<'a>(&'a self, path: &'a str) -> Reply<'a, Attrs> {
        self.call("stat", move |tree| Ok(tree.attrs(tree.find(path)?)))
    }

    fn list_dir<'a>(
        &'a self,
        path: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> Reply<'a, DirPage> {
        self.call("list-dir", move |tree| tree.list(path, cursor, limit))
    }

    fn read<'a>(&'a self, path: &'a str, offset: u64, len: u32) -> Reply<'a, ReadResult> {
        self.call("read", move |tree| tree.read(path, offset, len))
    }

    fn readlink<'a>(&'a self, path: &'a str) -> Reply<'a, String> {
        self.call("readlink", move |tree| {
            match &tree.node(tree.find(path)?).content {
                Content::Symlink(target) => Ok(target.clone()),
                _ => Err(Error::Invalid),
            }
        })
    }

    fn write<'a>(&'a self, path: &'a str, offset: u64, data: Bytes) -> Reply<'a, Attrs> {
        self.call("write", move |tree| tree.write(path, offset, &data))
    }

    fn create<'a>(&'a self, path: &'a str, mode: u32, exclusive: bool) -> Reply<'a, Made> {
        self.call("create", move |tree| {
            let file = Content::File(Vec::new());
            let attrs = match tree.make(path, FileKind::Regular, mode, NO_DEVICE, file) {
                Err(Error::Exists) if !exclusive => {
                    let (ino, _) = tree.file_mut(path)?;
                    tree.attrs(ino)
                }
                other => other?,
            };
            tree.made(path, attrs)
        })
    }

    fn mkdir<'a>(&'a self, path: &'a str, mode: u32) -> Reply<'a, Made> {
        self.call("mkdir", move |tree| {
            let dir = Content::Directory(BTreeMap::new());
            let attrs = tree.make(path, FileKind::Directory, mode, NO_DEVICE, dir)?;
            tree.made(path, attrs)
        })
    }

    fn symlink<'a>(&'a self, path: &'a str, target: &'a str) -> Reply<'a, Made> {
        self.call("symlink", move |tree| {
            let link = Content::Symlink(target.to_string());
            let attrs = tree.make(path, FileKind::Symlink, 0o777, NO_DEVICE, link)?;
            tree.made(path, attrs)
        })
    }

    fn mknod<'a>(
        &'a self,
        path: &'a str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Reply<'a, Made> {
        self.call("mknod", move |tree| {
            let rdev = match kind {
                FileKind::BlockDevice | FileKind::CharDevice => device,
                FileKind::Fifo | FileKind::Socket => NO_DEVICE,
                _ => return Err(Error::Invalid),
            };
            let attrs = tree.make(path, kind, mode, rdev, Content::Node)?;
            tree.made(path, attrs)
        })
    }

    fn link<'a>(&'a self, existing: &'a str, path: &'a str) -> Reply<'a, Made> {
        self.call("link", move |tree| {
            let attrs = tree.link(existing, path)?;
            tree.made(path, attrs)
        })
    }

    fn setattr<'a>(&'a self, path: &'a str, changes: SetAttrs) -> Reply<'a, Attrs> {
        self.call("setattr", move |tree| tree.setattr(path, changes))
    }

    fn remove<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>> {
        self.call("remove", move |tree| {
            tree.remove(path)?;
            tree.dir_of(path).map(Some)
        })
    }

    fn rmdir<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>> {
        self.call("rmdir", move |tree| {
            tree.rmdir(path)?;
            tree.dir_of(path).map(Some)
        })
    }

    fn rename<'a>(&'a self, source: &'a str, destination: &'a str) -> Reply<'a, Renamed> {
        self.call("rename", move |tree| {
            tree.rename(source, destination)?;
            Ok(Renamed {
                source_dir: Some(tree.dir_of(source)?),
                destination_dir: Some(tree.dir_of(destination)?),
            })
        })
    }

    fn sync<'a>(&'a self, path: &'a str) -> Reply<'a, ()> {
        self.call("sync", move |tree| tree.find(path).map(|_| ()))
    }

    fn statfs(&self) -> Reply<'_, FsStats> {
        self.call("statfs", |tree| Ok(tree.statfs()))
    }

    fn commit<'a>(&'a self, _path: &'a str, _file: Arc<CopyFile>, _size: u64) -> Reply<'a, Attrs> {
        // Writes reach the tree directly: nothing is ever staged.
        self.call("commit", |_| Err(Error::NotSupported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::types::Data;

    fn backend(config: &[(&str, &str)]) -> MemoryBackend {
        let config: Vec<_> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MemoryBackend::new("test", &config).unwrap()
    }

    #[tokio::test]
    async fn files_keep_their_bytes_and_links() {
        let m = backend(&[]);
        m.mkdir("d", 0o755).await.unwrap();
        m.create("d/f", 0o644, true).await.unwrap();
        m.write("d/f", 3, Bytes::from_static(b"abc")).await.unwrap();
        let read = m.read("d/f", 0, 100).await.unwrap();
        assert!(matches!(read.data, Data::Bytes(ref b) if b == b"\0\0\0abc"));
        assert!(read.eof);
        let linked = m.link("d/f", "g").await.unwrap();
        assert_eq!(linked.attrs.nlink, 2);
        let root_version = linked.dir.and_then(|d| d.change);
        assert_eq!(root_version, m.stat("").await.unwrap().change);
        assert_eq!(m.stat("d").await.unwrap().nlink, 2);
        assert_eq!(m.stat("").await.unwrap().nlink, 3);
        m.remove("d/f").await.unwrap();
        assert_eq!(m.stat("g").await.unwrap().nlink, 1);
        assert_eq!(m.stat("d/f").await.err(), Some(Error::NotFound));
        assert_eq!(m.stat("g/x").await.err(), Some(Error::NotDir));
        assert_eq!(m.create("g", 0o644, true).await.err(), Some(Error::Exists));
    }

    #[tokio::test]
    async fn rename_replaces_as_posix_does() {
        let m = backend(&[]);
        for dir in ["a", "b", "full"] {
            m.mkdir(dir, 0o755).await.unwrap();
        }
        m.create("full/x", 0o644, true).await.unwrap();
        m.create("f", 0o644, true).await.unwrap();
        assert_eq!(m.rename("a", "full").await.err(), Some(Error::NotEmpty));
        assert_eq!(m.rename("a", "f").await.err(), Some(Error::NotDir));
        assert_eq!(m.rename("f", "a").await.err(), Some(Error::IsDir));
        assert_eq!(m.rename("a", "a/inside").await.err(), Some(Error::Invalid));
        m.rename("a", "b").await.unwrap();
        assert_eq!(m.stat("a").await.err(), Some(Error::NotFound));
        assert_eq!(m.stat("").await.unwrap().nlink, 4, "b and full are left");
        m.rename("f", "full/x").await.unwrap();
        assert_eq!(m.stat("full/x").await.unwrap().nlink, 1);
        assert_eq!(m.rmdir("full").await.err(), Some(Error::NotEmpty));
        m.remove("full/x").await.unwrap();
        m.rmdir("full").await.unwrap();
    }

    #[tokio::test]
    async fn listings_page_with_cursors() {
        let m = backend(&[]);
        for i in 0..5 {
            m.create(&format!("f{i}"), 0o644, true).await.unwrap();
        }
        let (mut names, mut cursor) = (Vec::new(), None);
        loop {
            let page = m.list_dir("", cursor.as_deref(), 2).await.unwrap();
            assert!(page.entries.len() <= 2);
            names.extend(page.entries.into_iter().map(|e| e.name));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(names, ["f0", "f1", "f2", "f3", "f4"]);
    }

    #[tokio::test]
    async fn every_nth_call_of_the_chosen_ops_fails() {
        let m = backend(&[("fail_ops", "write, create"), ("fail_every", "2")]);
        assert!(m.create("f", 0o644, true).await.is_ok());
        let data = || Bytes::from_static(b"x");
        assert_eq!(m.write("f", 0, data()).await.err(), Some(Error::Io));
        assert!(m.write("f", 0, data()).await.is_ok());
        assert_eq!(m.create("g", 0o644, true).await.err(), Some(Error::Io));
        assert!(m.stat("f").await.is_ok(), "other operations never fail");
        assert!(m.stat("f").await.is_ok());
    }

    #[test]
    fn unknown_settings_and_operations_are_refused() {
        let config = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let refused = |c: Vec<(String, String)>| MemoryBackend::new("t", &c).err().unwrap();
        assert!(refused(config("root", "/x"))
            .to_string()
            .contains("config.root"));
        assert!(refused(config("fail_ops", "write,frob"))
            .to_string()
            .contains("\"frob\""));
        assert!(refused(config("fail_every", "often"))
            .to_string()
            .contains("whole number"));
    }
}
