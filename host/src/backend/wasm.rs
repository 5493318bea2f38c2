//! The WebAssembly backend: a mount served by a plugin component, through the runtime's pool
//! of instances (`crate::plugin::runtime`), which keeps the deadlines, memory limits and trap
//! handling. Each operation is one plugin call, counted in the metrics under the interface's
//! name for it. `WasmBackend::start` finds the mount's plugin (bundled or a `.wasm` file),
//! grants what its config allows and calls `init`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;

use super::types::{
    Attrs, Device, DirPage, FileKind, FsStats, Made, MountInfo, ReadResult, Renamed, SetAttrs,
};
use super::{Backend, Reply};
use crate::config::{MountConfig, Source};
use crate::copy_file::CopyFile;
use crate::objstore::{BlobStore, Credentials, UploadLog};
use crate::plugin::bundled::{self, EXPORT_GUEST_PATH};
use crate::plugin::host_fs::{Grant, Grants};
use crate::plugin::http::{AllowList, Outbound};
use crate::plugin::runtime::{MountPlugin, Sandbox};
use crate::plugin::secrets::{self, Secrets};

pub use crate::plugin::host_fs::OpenFiles;
pub use crate::plugin::runtime::Runtime;

/// A mount's plugin, called through the typed seam.
pub struct WasmBackend {
    plugin: Arc<MountPlugin>,
}

impl WasmBackend {
    /// Loads the mount's plugin, grants it what the mount's config allows (directories, a
    /// bucket, hosts, secrets) and calls `init`; `source` is the config text, for line numbers.
    /// Reads of its directories keep their files open in `open_files`.
    pub async fn start(
        runtime: &Runtime,
        mc: &MountConfig,
        source: &Source<'_>,
        uploads_dir: Option<&Path>,
        open_files: &Arc<OpenFiles>,
    ) -> Result<WasmBackend> {
        let plugin = mc.plugin.get_ref();
        let mut config = mc.plugin_config();
        let mut grants = Vec::new();
        let mut default_hosts: &[&str] = &[];
        let pre = if let Some(b) = bundled::find(plugin) {
            default_hosts = b.default_hosts;
            if let Some(key) = b.dir_key {
                let Some(value) = config.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v) else {
                    bail!("the {plugin} plugin needs `config.{key}`: the host directory to serve");
                };
                let host = Path::new(value.as_str()).to_path_buf();
                let at = mc.config.get(key).map(|v| source.at(v)).unwrap_or_default();
                if !host.is_dir() {
                    bail!(
                        "{at}: key `config.{key}`: {} is not a directory",
                        host.display()
                    );
                }
                let grant =
                    Grant::open(EXPORT_GUEST_PATH, &host, mc.read_only).with_context(|| {
                        format!("{at}: key `config.{key}`: cannot open {}", host.display())
                    })?;
                grants.push(grant);
                // The plugin sees the directory where it is granted, not where it is on the host.
                *value = EXPORT_GUEST_PATH.to_string();
            }
            if b.needs_store && mc.s3.is_none() {
                bail!("the {plugin} plugin needs an `[mount.s3]` table: the bucket to serve");
            }
            runtime.load(&format!("bundled plugin {:?}", b.name), b.wasm)?
        } else if plugin.ends_with(".wasm") || plugin.contains('/') {
            // A relative path is relative to the config file, wherever nfsgw is started from.
            let path = Path::new(source.file)
                .parent()
                .unwrap_or(Path::new(""))
                .join(plugin);
            let wasm = std::fs::read(&path).with_context(|| {
                format!(
                    "{}: key `plugin`: cannot read {}",
                    source.at(&mc.plugin),
                    path.display()
                )
            })?;
            runtime.load(&format!("plugin {plugin}"), &wasm)?
        } else {
            let mut known: Vec<_> = bundled::names().chain([super::memory::NAME]).collect();
            known.sort_unstable();
            bail!(
                "{}: key `plugin`: no bundled plugin is called {plugin:?} (bundled: {}; or give the path of a .wasm component)",
                source.at(&mc.plugin),
                known.join(", ")
            );
        };
        for dir in &mc.dirs {
            let host = Path::new(dir.host.get_ref().as_str());
            let at = source.at(&dir.host);
            if !host.is_dir() {
                bail!(
                    "{at}: key `dirs.host`: {} is not a directory",
                    host.display()
                );
            }
            let grant = Grant::open(dir.guest.get_ref(), host, dir.read_only || mc.read_only)
                .with_context(|| {
                    format!("{at}: key `dirs.host`: cannot open {}", host.display())
                })?;
            grants.push(grant);
        }
        let blobs = match &mc.s3 {
            Some(grant) => {
                let credentials = Credentials::resolve(grant, source, |v| std::env::var(v).ok())?;
                let at = source.at(&grant.bucket);
                let uploads = UploadLog::open(uploads_dir).context(
                    "cannot open the record of open multipart uploads in the state directory",
                )?;
                let mut store = BlobStore::new(grant, credentials, uploads)
                    .with_context(|| format!("{at}: mount's `s3` table"))?;
                store.verify().await.with_context(|| at.clone())?;
                store.abort_leftover_uploads().await;
                store.inject_faults(grant);
                Some(Arc::new(store))
            }
            None => None,
        };
        let allow = match &mc.allow_hosts {
            Some(hosts) => AllowList::parse(hosts.iter().map(|h| h.get_ref().as_str()))?,
            None => AllowList::parse(default_hosts.iter().copied())?,
        };
        let config_endpoint = mc.config.get("endpoint").and_then(|v| v.get_ref().as_str());
        let endpoint = secrets::own_endpoint(config_endpoint, &allow)
            .with_context(|| format!("mount {:?}", mc.name()))?;
        let outbound = if allow.is_empty() {
            None
        } else {
            Some(Arc::new(Outbound::new(allow)?))
        };
        let secrets = Secrets::resolve(&mc.secrets, &endpoint, source, |v| std::env::var(v).ok())?;
        let sandbox = Sandbox {
            grants: Arc::new(Grants::new(grants).with_open_files(open_files.clone())),
            blobs,
            outbound,
            secrets: Arc::new(secrets),
            limits: mc.limits.clone(),
        };
        let plugin = MountPlugin::start(runtime, mc.name(), pre, sandbox, config).await?;
        Ok(WasmBackend { plugin })
    }
}

impl Backend for WasmBackend {
    fn info(&self) -> &MountInfo {
        self.plugin.info()
    }

    fn blobs(&self) -> Option<&Arc<BlobStore>> {
        self.plugin.blobs()
    }

    fn host_files(&self) -> &Arc<Grants> {
        self.plugin.grants()
    }

    fn pool(&self) -> (usize, usize) {
        self.plugin.pool()
    }

    fn stat<'a>(&'a self, path: &'a str) -> Reply<'a, Attrs> {
        let path = path.to_string();
        Box::pin(self.plugin.call("stat", move |b, s| {
            Box::pin(async move { b.call_stat(s, &path).await })
        }))
    }

    fn list_dir<'a>(
        &'a self,
        path: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> Reply<'a, DirPage> {
        let (path, cursor) = (path.to_string(), cursor.map(str::to_string));
        Box::pin(self.plugin.call("list-dir", move |b, s| {
            Box::pin(async move { b.call_list_dir(s, &path, cursor.as_deref(), limit).await })
        }))
    }

    fn read<'a>(&'a self, path: &'a str, offset: u64, len: u32) -> Reply<'a, ReadResult> {
        let path = path.to_string();
        Box::pin(self.plugin.call("read", move |b, s| {
            Box::pin(async move { b.call_read(s, &path, offset, len).await })
        }))
    }

    fn readlink<'a>(&'a self, path: &'a str) -> Reply<'a, String> {
        let path = path.to_string();
        Box::pin(self.plugin.call("readlink", move |b, s| {
            Box::pin(async move { b.call_readlink(s, &path).await })
        }))
    }

    fn write<'a>(&'a self, path: &'a str, offset: u64, data: Bytes) -> Reply<'a, Attrs> {
        let path = path.to_string();
        Box::pin(self.plugin.call("write", move |b, s| {
            Box::pin(async move { b.call_write(s, &path, offset, &data).await })
        }))
    }

    fn create<'a>(&'a self, path: &'a str, mode: u32, exclusive: bool) -> Reply<'a, Made> {
        let path = path.to_string();
        Box::pin(self.plugin.call("create", move |b, s| {
            Box::pin(async move { b.call_create(s, &path, mode, exclusive).await })
        }))
    }

    fn mkdir<'a>(&'a self, path: &'a str, mode: u32) -> Reply<'a, Made> {
        let path = path.to_string();
        Box::pin(self.plugin.call("mkdir", move |b, s| {
            Box::pin(async move { b.call_mkdir(s, &path, mode).await })
        }))
    }

    fn symlink<'a>(&'a self, path: &'a str, target: &'a str) -> Reply<'a, Made> {
        let (path, target) = (path.to_string(), target.to_string());
        Box::pin(self.plugin.call("symlink", move |b, s| {
            Box::pin(async move { b.call_symlink(s, &path, &target).await })
        }))
    }

    fn mknod<'a>(
        &'a self,
        path: &'a str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Reply<'a, Made> {
        let path = path.to_string();
        Box::pin(self.plugin.call("mknod", move |b, s| {
            Box::pin(async move { b.call_mknod(s, &path, kind, mode, device).await })
        }))
    }

    fn link<'a>(&'a self, existing: &'a str, path: &'a str) -> Reply<'a, Made> {
        let (existing, path) = (existing.to_string(), path.to_string());
        Box::pin(self.plugin.call("link", move |b, s| {
            Box::pin(async move { b.call_link(s, &existing, &path).await })
        }))
    }

    fn setattr<'a>(&'a self, path: &'a str, changes: SetAttrs) -> Reply<'a, Attrs> {
        let path = path.to_string();
        Box::pin(self.plugin.call("setattr", move |b, s| {
            Box::pin(async move { b.call_setattr(s, &path, changes).await })
        }))
    }

    fn remove<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>> {
        let path = path.to_string();
        Box::pin(self.plugin.call("remove", move |b, s| {
            Box::pin(async move { b.call_remove(s, &path).await })
        }))
    }

    fn rmdir<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>> {
        let path = path.to_string();
        Box::pin(self.plugin.call("rmdir", move |b, s| {
            Box::pin(async move { b.call_rmdir(s, &path).await })
        }))
    }

    fn rename<'a>(&'a self, source: &'a str, destination: &'a str) -> Reply<'a, Renamed> {
        let (source, destination) = (source.to_string(), destination.to_string());
        Box::pin(self.plugin.call("rename", move |b, s| {
            Box::pin(async move { b.call_rename(s, &source, &destination).await })
        }))
    }

    fn sync<'a>(&'a self, path: &'a str) -> Reply<'a, ()> {
        let path = path.to_string();
        Box::pin(self.plugin.call("sync", move |b, s| {
            Box::pin(async move { b.call_sync(s, &path).await })
        }))
    }

    fn statfs(&self) -> Reply<'_, FsStats> {
        Box::pin(self.plugin.call("statfs", move |b, s| {
            Box::pin(async move { b.call_statfs(s).await })
        }))
    }

    fn commit<'a>(&'a self, path: &'a str, file: Arc<CopyFile>, size: u64) -> Reply<'a, Attrs> {
        Box::pin(self.plugin.commit(path.to_string(), file, size))
    }
}
