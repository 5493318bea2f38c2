//! Starting the configured mounts: finding each plugin, granting what its mount allows,
//! calling `init`, and opening each mount's inode journal in the state directory. Every error
//! names the mount and, where it can, the config line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::staging::{Budget, Staging};
use super::{Gateway, InodeTable, Mount};
use crate::config::{Config, MountConfig, Source};
use crate::plugin::blobstore::{BlobStore, Credentials, UploadLog};
use crate::plugin::bundled::{self, EXPORT_GUEST_PATH};
use crate::plugin::host_fs::{Grant, Grants};
use crate::plugin::http::{AllowList, Outbound};
use crate::plugin::runtime::{MountPlugin, Runtime, Sandbox};
use crate::plugin::secrets::{self, Secrets};

/// Starts every mount of the config; `source` is the config text, for line numbers. With a
/// state directory, file handles outlive the process; without one, they last one run.
pub async fn start(
    runtime: &Runtime,
    config: &Config,
    source: &Source<'_>,
    state_dir: Option<&Path>,
) -> Result<Gateway> {
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    }
    // A new table's numbers differ from any earlier table's.
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_nanos() as u32).max(1))
        .unwrap_or(1);
    let mut mounts = Vec::new();
    for mc in &config.mounts {
        let inodes = match state_dir {
            Some(dir) => {
                let journal = dir.join(format!("{}.inodes", mc.name()));
                InodeTable::open(&journal, generation).with_context(|| {
                    format!("cannot open the inode journal {}", journal.display())
                })?
            }
            None => InodeTable::in_memory(generation),
        };
        let staging_dir = state_dir.map(|dir| dir.join("staged").join(mc.name()));
        let uploads_dir = state_dir.map(|dir| dir.join("uploads").join(mc.name()));
        let dirs = MountDirs {
            staging: staging_dir.as_deref(),
            uploads: uploads_dir.as_deref(),
        };
        let mount = start_mount(runtime, mc, source, inodes, dirs)
            .await
            .with_context(|| format!("{}: mount {:?}", source.at(&mc.name), mc.name()))?;
        mounts.push(mount);
    }
    Ok(Gateway::new(mounts))
}

/// Where a mount keeps its state: staged copies, and the multipart uploads it has open.
/// `None` without a state directory.
struct MountDirs<'a> {
    staging: Option<&'a Path>,
    uploads: Option<&'a Path>,
}

async fn start_mount(
    runtime: &Runtime,
    mc: &MountConfig,
    source: &Source<'_>,
    inodes: InodeTable,
    dirs: MountDirs<'_>,
) -> Result<Mount> {
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
            let grant = Grant::open(EXPORT_GUEST_PATH, &host, mc.read_only).with_context(|| {
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
        let known: Vec<_> = bundled::names().collect();
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
            .with_context(|| format!("{at}: key `dirs.host`: cannot open {}", host.display()))?;
        grants.push(grant);
    }
    let blobs = match &mc.s3 {
        Some(grant) => {
            let credentials = Credentials::resolve(grant, source, |v| std::env::var(v).ok())?;
            let at = source.at(&grant.bucket);
            let uploads = UploadLog::open(dirs.uploads).context(
                "cannot open the record of open multipart uploads in the state directory",
            )?;
            let store = BlobStore::new(grant, credentials, uploads)
                .with_context(|| format!("{at}: mount's `s3` table"))?;
            store.verify().await.with_context(|| at.clone())?;
            store.abort_leftover_uploads().await;
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
        grants: Arc::new(Grants::new(grants)),
        blobs,
        outbound,
        secrets: Arc::new(secrets),
        limits: mc.limits.clone(),
    };
    let plugin_rt = MountPlugin::start(runtime, mc.name(), pre, sandbox, config).await?;
    let staging = if plugin_rt.info().staged_writes {
        let dir = match dirs.staging {
            Some(dir) => dir.to_path_buf(),
            // Without a state directory (checks, tests) copies live as long as the process.
            None => std::env::temp_dir().join(format!(
                "nfsgw-staged-{}-{}",
                std::process::id(),
                mc.name()
            )),
        };
        let flush_after = std::time::Duration::from_millis(mc.flush_after_ms);
        let limits = mc.limits_on_clients();
        let budget = Budget::new(limits.staging_reserve, limits.max_staged_files);
        let (staging, left) = Staging::open(&dir, flush_after, budget)
            .with_context(|| format!("cannot open the staging directory {}", dir.display()))?;
        if !left.is_empty() {
            tracing::info!(
                mount = mc.name(),
                files = left.len(),
                "staged writes left by an earlier run will be uploaded"
            );
        }
        Some(staging)
    } else {
        None
    };
    Ok(Mount::new(
        mc.name(),
        plugin,
        mc.read_only,
        plugin_rt,
        inodes,
        mc.allowed_clients(),
        staging,
    )
    .with_squash(mc.squash())
    .with_limits(mc.limits_on_clients()))
}
