//! A bucket mount: a mutable, unversioned tree of Xet files. The host stages writes and hands
//! the whole file to `commit`, which chunks it, uploads its xorbs and shard to the CAS and adds
//! it with one `batch` call. Creating, removing and renaming files are `batch` calls too (a
//! rename adds the same Xet hash under the new path and deletes the old one, in one call).
//! Buckets store no directories: a directory exists while a file is under it, and one made by
//! `mkdir` lives in this instance's memory until a file is put in it (hence one instance).

use std::collections::BTreeSet;

use nfsgw_xet::hash::MerkleHash;
use nfsgw_xet::upload::FileUploader;

use crate::api::{BatchOp, Hub};
use crate::cas::Cas;
use crate::clock::{from_ms, now, now_ms, to_ms};
use crate::config::Config;
use crate::fs::attrs;
use crate::id::Id;
use crate::listings::Cache;
use crate::mount::{Mount, Source};
use crate::net::{fail, init_error, log, Client};
use crate::tree::{Entry, Kind};
use nfsgw_plugin_sdk::log::Level;
use nfsgw_plugin_sdk::paths::split_parent;
use nfsgw_plugin_sdk::staging::StagedFile;
use nfsgw_plugin_sdk::{Attrs, Error};

/// How much of a staged file is read into the plugin at a time.
const PIECE: u32 = 8 << 20;

/// Checks the bucket and builds the mount; the error is shown to the user.
pub fn open(cfg: Config, client: Client, id: &str) -> Result<Mount, String> {
    let hub = Hub {
        endpoint: cfg.endpoint.clone(),
        target: cfg.target.clone(),
    };
    hub.bucket_info(&client)
        .map_err(|f| init_error(&cfg.endpoint, &format!("bucket {id}"), &f))?;
    log(Level::Info, &format!("serving bucket {id}"));
    let cas = Cas::new(hub.xet_token_url("", false), hub.xet_token_url("", true));
    Ok(Mount {
        listings: Cache::new(
            Some(u64::from(cfg.attr_ttl_ms)),
            cfg.listing_cache_entries as usize,
        ),
        time: now(),
        cfg,
        client,
        hub,
        cas,
        source: Source::Bucket,
        local_dirs: BTreeSet::new(),
        empty_file_registered: false,
    })
}

/// `to` + what follows `from` in `path` ("a/x" from "a" to "b" is "b/x").
fn moved(path: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &path[from.len()..])
}

/// True when `path` is `dir` or under it.
fn within(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path[dir.len()..].starts_with('/'))
}

impl Mount {
    /// Sends one batch. On success the caller updates the cached listings it changed; on
    /// failure none of them can be trusted.
    fn batch(&mut self, ops: &[BatchOp]) -> Result<(), Error> {
        let result = self.hub.batch(&self.client, ops);
        if result.is_err() {
            self.listings.clear();
        }
        result.map_err(|f| fail("POST", &format!("{}/batch", self.hub.api_base()), &f))
    }

    /// The listing entry of a file this instance just stored.
    fn stored_entry(path: &str, size: u64, hash: &str, mtime_ms: u64) -> Entry {
        Entry {
            name: split_parent(path).1.to_string(),
            kind: Kind::File,
            size,
            id: Id::xet(hash).unwrap_or(Id::None),
            mtime: Some(from_ms(mtime_ms)),
        }
    }

    fn file_attrs(&self, size: u64, hash: &MerkleHash) -> Attrs {
        attrs(&self.cfg, Kind::File, size, now(), Some(hash.to_hex()))
    }

    /// Uploads `size` bytes, read piece by piece with `read(offset, len)`, and adds them as
    /// the file at `path`.
    pub(crate) fn store(
        &mut self,
        path: &str,
        size: u64,
        read: &mut dyn FnMut(u64, u32) -> Result<Vec<u8>, Error>,
    ) -> Result<Attrs, Error> {
        let mut uploader = FileUploader::new();
        let mut offset = 0;
        while offset < size {
            let piece = read(offset, PIECE.min((size - offset) as u32))?;
            if piece.is_empty() {
                log(
                    Level::Warn,
                    &format!("{path}: the staged file ended at {offset} of {size} bytes"),
                );
                return Err(Error::Io);
            }
            offset += piece.len() as u64;
            for xorb in uploader.push(&piece) {
                self.cas.upload_xorb(&self.client, xorb)?;
            }
        }
        let (xorbs, file) = uploader.finish();
        for xorb in xorbs {
            self.cas.upload_xorb(&self.client, xorb)?;
        }
        // Every empty file has the same (all-zero) hash: its shard is needed once.
        if file.size > 0 || !self.empty_file_registered {
            self.cas.upload_shard(&self.client, file.shard)?;
            self.empty_file_registered |= file.size == 0;
        }
        let hash = file.file_hash.to_hex();
        let mtime_ms = now_ms();
        self.batch(&[BatchOp::Add {
            path,
            xet_hash: &hash,
            mtime_ms,
        }])?;
        let entry = Self::stored_entry(path, file.size, &hash, mtime_ms);
        self.listings.added(path, entry);
        Ok(self.file_attrs(file.size, &file.file_hash))
    }

    pub fn commit(&mut self, path: &str, staged: &StagedFile) -> Result<Attrs, Error> {
        if self.find(path)?.is_some_and(|e| e.kind == Kind::Dir) {
            return Err(Error::IsDir);
        }
        self.store(path, staged.size(), &mut |offset, len| {
            staged.read(offset, len)
        })
    }

    pub fn create(&mut self, path: &str, exclusive: bool) -> Result<Attrs, Error> {
        match self.find(path)? {
            Some(_) if exclusive => Err(Error::Exists),
            Some(e) if e.kind == Kind::Dir => Err(Error::IsDir),
            Some(e) => Ok(crate::fs::entry_attrs(&self.cfg, &e, self.time)),
            None => self.store(path, 0, &mut |_, _| Ok(Vec::new())),
        }
    }

    pub fn mkdir(&mut self, path: &str) -> Result<Attrs, Error> {
        if self.find(path)?.is_some() {
            return Err(Error::Exists);
        }
        self.local_dirs.insert(path.to_string());
        self.listings.clear();
        Ok(self.dir_attrs())
    }

    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        if self.lookup(path)?.kind == Kind::Dir {
            return Err(Error::IsDir);
        }
        self.batch(&[BatchOp::Delete { path }])?;
        self.listings.removed(path);
        Ok(())
    }

    pub fn rmdir(&mut self, path: &str) -> Result<(), Error> {
        if self.lookup(path)?.kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        if !self.is_empty_dir(path)? {
            return Err(Error::NotEmpty);
        }
        self.local_dirs.remove(path);
        self.listings.clear();
        Ok(())
    }

    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let source = self.lookup(from)?;
        let target = self.find(to)?;
        if from == to {
            return Ok(());
        }
        if source.kind == Kind::File {
            if target.is_some_and(|t| t.kind == Kind::Dir) {
                return Err(Error::IsDir);
            }
            let hash = source.id.xet_hash().ok_or(Error::Io)?;
            let mtime_ms = source.mtime.map_or_else(now_ms, to_ms);
            self.batch(&[
                BatchOp::Add {
                    path: to,
                    xet_hash: &hash,
                    mtime_ms,
                },
                BatchOp::Delete { path: from },
            ])?;
            self.listings.removed(from);
            let entry = Self::stored_entry(to, source.size, &hash, mtime_ms);
            self.listings.added(to, entry);
            return Ok(());
        }
        if within(to, from) {
            return Err(Error::Invalid);
        }
        match target {
            Some(t) if t.kind != Kind::Dir => return Err(Error::NotDir),
            Some(_) if !self.is_empty_dir(to)? => return Err(Error::NotEmpty),
            _ => {}
        }
        let files = self
            .hub
            .files_under(&self.client, from)
            .map_err(|f| fail("GET", &self.hub.tree_url("", from, true), &f))?;
        let dests: Vec<String> = files.iter().map(|(p, _)| moved(p, from, to)).collect();
        let mtime_ms = now_ms();
        let mut ops: Vec<BatchOp> = files
            .iter()
            .zip(&dests)
            .map(|((_, hash), dest)| BatchOp::Add {
                path: dest,
                xet_hash: hash,
                mtime_ms,
            })
            .collect();
        ops.extend(files.iter().map(|(p, _)| BatchOp::Delete { path: p }));
        // An empty directory at the destination is replaced; empty directories made here move.
        self.local_dirs.remove(to);
        let local: Vec<String> = self
            .local_dirs
            .iter()
            .filter(|d| within(d, from))
            .cloned()
            .collect();
        for d in local {
            self.local_dirs.remove(&d);
            self.local_dirs.insert(moved(&d, from, to));
        }
        let result = if ops.is_empty() {
            Ok(())
        } else {
            self.batch(&ops)
        };
        self.listings.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under() {
        assert!(within("a/b", "a"));
        assert!(within("a", "a"));
        assert!(!within("ab", "a"));
        assert_eq!(moved("a/x/y", "a", "b/c"), "b/c/x/y");
        assert_eq!(moved("a", "a", "z"), "z");
    }
}
