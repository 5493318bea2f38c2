//! Starting the configured mounts: starting each mount's backend (the native `memory` one, or
//! a plugin, found and granted what its mount allows by `backend::wasm`), and opening each
//! mount's inode journal in the state directory and its staging directory, and the host files
//! all mounts' reads keep open. Every error names the mount and, where it can, the config line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::staging::{Budget, Staging};
use super::{CacheLimits, Gateway, InodeTable, Mount};
use crate::backend::memory::{self, MemoryBackend};
use crate::backend::wasm::{OpenFiles, Runtime, WasmBackend};
use crate::backend::Backend;
use crate::config::{Config, MountConfig, Source};

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
    let limits = config.server.cache.limits();
    let open_files = Arc::new(OpenFiles::new(limits.open_files, limits.open_file_idle));
    open_files.sweep_every();
    let mut mounts = Vec::new();
    for mc in &config.mounts {
        let inodes = match state_dir {
            Some(dir) => {
                let journal = dir.join(format!("{}.inodes", mc.name()));
                InodeTable::open(&journal, generation, limits.inode_entries)
                    .with_context(|| {
                        format!("cannot open the inode journal {}", journal.display())
                    })?
                    .reporting_as(mc.name())
            }
            None => InodeTable::in_memory(generation),
        };
        let staging_dir = state_dir.map(|dir| dir.join("staged").join(mc.name()));
        let uploads_dir = state_dir.map(|dir| dir.join("uploads").join(mc.name()));
        let dirs = MountDirs {
            staging: staging_dir.as_deref(),
            uploads: uploads_dir.as_deref(),
        };
        let cache = config.server.cache.limits();
        let mount = start_mount(runtime, mc, source, inodes, dirs, cache, &open_files)
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
    cache: CacheLimits,
    open_files: &Arc<OpenFiles>,
) -> Result<Mount> {
    let plugin = mc.plugin.get_ref();
    let backend: Arc<dyn Backend> = if plugin == memory::NAME {
        if !mc.dirs.is_empty() || mc.s3.is_some() {
            bail!(
                "{}: the {plugin} plugin keeps its files in memory: it takes no `[[mount.dirs]]` or `[mount.s3]`",
                source.at(&mc.plugin)
            );
        }
        Arc::new(MemoryBackend::new(mc.name(), &mc.plugin_config())?)
    } else {
        Arc::new(WasmBackend::start(runtime, mc, source, dirs.uploads, open_files).await?)
    };
    let staging = if backend.info().staged_writes {
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
        backend,
        inodes,
        mc.allowed_clients(),
        staging,
    )
    .with_squash(mc.squash())
    .with_limits(mc.limits_on_clients())
    .with_cache_limits(cache))
}
