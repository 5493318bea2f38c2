//! nfsgw's bundled plugin for the Hugging Face Hub.
//!
//! A mount serves one repo (model, dataset or space) read-only at a revision pinned to its
//! commit at `init`, or one bucket read-write. It speaks to the Hub's API and to the Xet CAS
//! through the host's `http` import (the host checks every URL against the mount's
//! `allow_hosts`), authenticates to the Hub with the `token` secret the mount grants (an opaque
//! handle: the plugin never sees the value), and does the Xet formats itself (crate
//! `nfsgw-xet`). This file is the glue between the interface and the modules; what a mount
//! does is written down in `docs/SEMANTICS-HUB.md`.

mod api;
mod bucket;
mod cas;
mod clock;
mod config;
mod fs;
mod id;
mod listings;
mod mount;
mod net;
mod readahead;
mod repo;
#[cfg(test)]
mod testing;
mod token;
mod tree;
mod urls;

use std::cell::RefCell;

use nfsgw_plugin_sdk::staging::StagedFile;
use nfsgw_plugin_sdk::{
    fs_stats, mount_info, secrets, Attrs, Backend, Capabilities, DirPage, Error, FsStats, Made,
    MountInfo, ReadResult, Renamed,
};

use config::Target;
use mount::{Mount, Source};
use net::Client;

thread_local! {
    /// This instance's mount, set by `init`.
    static MOUNT: RefCell<Option<Mount>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Mount) -> Result<R, Error>) -> Result<R, Error> {
    MOUNT.with(|m| match m.borrow_mut().as_mut() {
        Some(mount) => f(mount),
        None => Err(Error::Io),
    })
}

/// Runs a change on a bucket mount; a repo mount declares no changes, so the host never asks.
fn with_bucket<R>(f: impl FnOnce(&mut Mount) -> Result<R, Error>) -> Result<R, Error> {
    with(|m| match m.source {
        Source::Bucket => f(m),
        Source::Repo { .. } => Err(Error::ReadOnly),
    })
}

struct Hub;

impl Backend for Hub {
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String> {
        let cfg = config::parse(&config)?;
        let token = match secrets::get("token") {
            Ok(secret) => Some(secret),
            Err(Error::NotFound) => None,
            Err(e) => return Err(format!("cannot get the `token` secret: {e:?}")),
        };
        let client = Client::new(&cfg.endpoint, token);
        let (mount, info) = match cfg.target.clone() {
            Target::Repo { kind, id, revision } => {
                let mount = repo::open(cfg, client, kind, id, &revision)?;
                // The first instance resolves the revision; the host starts every later one
                // with the commit it found, so a branch that moves meanwhile cannot mix trees.
                let sha = match &mount.source {
                    Source::Repo { sha, .. } => sha.clone(),
                    Source::Bucket => revision,
                };
                let info = MountInfo {
                    capabilities: Capabilities::empty(),
                    immutable: true,
                    attr_ttl_ms: None,
                    max_instances: None,
                    staged_writes: false,
                    pinned_config: vec![("revision".to_string(), sha)],
                };
                (mount, info)
            }
            Target::Bucket { id } => {
                let ttl = cfg.attr_ttl_ms;
                let mount = bucket::open(cfg, client, &id)?;
                let info = MountInfo {
                    // Directories made by mkdir, and read-your-writes through the listing
                    // cache, live in one instance's memory.
                    max_instances: Some(1),
                    ..mount_info::whole_object_store(ttl)
                };
                (mount, info)
            }
        };
        MOUNT.with(|m| *m.borrow_mut() = Some(mount));
        Ok(info)
    }

    fn stat(path: String) -> Result<Attrs, Error> {
        with(|m| m.stat(&path))
    }

    fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error> {
        with(|m| m.list_dir(&path, cursor.as_deref(), limit))
    }

    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> {
        with(|m| m.read(&path, offset, len))
    }

    // A bucket's directories are implied by its paths, with no attributes of their own to
    // answer: the changes leave them to the host's stat.
    fn create(path: String, _mode: u32, exclusive: bool) -> Result<Made, Error> {
        with_bucket(|m| m.create(&path, exclusive)).map(Made::alone)
    }

    fn mkdir(path: String, _mode: u32) -> Result<Made, Error> {
        with_bucket(|m| m.mkdir(&path)).map(Made::alone)
    }

    fn remove(path: String) -> Result<Option<Attrs>, Error> {
        with_bucket(|m| m.remove(&path)).map(|()| None)
    }

    fn rmdir(path: String) -> Result<Option<Attrs>, Error> {
        with_bucket(|m| m.rmdir(&path)).map(|()| None)
    }

    fn rename(source: String, destination: String) -> Result<Renamed, Error> {
        with_bucket(|m| m.rename(&source, &destination)).map(|()| Renamed::unknown())
    }

    fn statfs() -> Result<FsStats, Error> {
        // Neither has a fixed size: a bucket reports plenty free, a pinned repo nothing.
        let writable = with(|m| Ok(matches!(m.source, Source::Bucket)))?;
        Ok(fs_stats::boundless(writable))
    }

    fn commit(path: String, staged: &StagedFile) -> Result<Attrs, Error> {
        with_bucket(|m| m.commit(&path, staged))
    }
}

nfsgw_plugin_sdk::export!(Hub);
