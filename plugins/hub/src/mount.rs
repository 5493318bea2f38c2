//! One mounted repo or bucket and the operations both kinds share: listings (fetched whole and
//! cached per directory), lookups through the parent's listing, and reads (Xet files through
//! the CAS, others through `resolve`, see `repo`). Changes to buckets are in `bucket`.

use std::collections::BTreeSet;

use crate::api::Hub;
use crate::cas::Cas;
use crate::clock::{now_ms, Stamp};
use crate::config::{Config, RepoType};
use crate::fs::{attrs, entry_attrs, page};
use crate::net::{fail, Client};
use crate::tree::{Cache, Entry, Kind, Listing};
use nfsgw_plugin_sdk::paths::split_parent;
use nfsgw_plugin_sdk::{Attrs, Error, ReadResult};
use nfsgw_plugin_sdk::{Data, DirPage};

/// What the mount serves, as pinned at `init`.
pub enum Source {
    Repo {
        kind: RepoType,
        id: String,
        /// The commit every call reads.
        sha: String,
    },
    Bucket,
}

pub struct Mount {
    pub cfg: Config,
    pub client: Client,
    pub hub: Hub,
    pub cas: Cas,
    pub source: Source,
    /// The time of entries the Hub gives none for: the revision's, or the mount's start.
    pub time: Stamp,
    pub listings: Cache,
    /// Directories made by `mkdir` in a bucket that hold no file yet (a bucket stores files
    /// only): they live in this instance's memory.
    pub local_dirs: BTreeSet<String>,
    /// A bucket mount has uploaded the shard of the empty file (whose hash is all zeros).
    pub empty_file_registered: bool,
}

fn root() -> Entry {
    Entry {
        name: String::new(),
        kind: Kind::Dir,
        size: 0,
        xet_hash: None,
        change: None,
        mtime: None,
    }
}

impl Mount {
    fn sha(&self) -> &str {
        match &self.source {
            Source::Repo { sha, .. } => sha,
            Source::Bucket => "",
        }
    }

    /// The whole listing of directory `dir`, from the cache or the Hub.
    pub fn listing(&mut self, dir: &str) -> Result<&Listing, Error> {
        let now = now_ms();
        if self.listings.get(dir, now).is_none() {
            let sha = self.sha().to_string();
            let mut entries = self
                .hub
                .list(&self.client, &sha, dir)
                .map_err(|f| fail("GET", &self.hub.tree_url(&sha, dir, false), &f))?;
            for local in &self.local_dirs {
                let (parent, name) = split_parent(local);
                if parent == dir {
                    entries.push(Entry {
                        name: name.to_string(),
                        ..root()
                    });
                }
            }
            self.listings.put(dir, Listing::new(entries, now));
        }
        self.listings.get(dir, now).ok_or(Error::Io)
    }

    /// The entry at `path` ("" is the root directory).
    pub fn lookup(&mut self, path: &str) -> Result<Entry, Error> {
        if path.is_empty() {
            return Ok(root());
        }
        let (parent, name) = split_parent(path);
        self.listing(parent)?
            .get(name)
            .cloned()
            .ok_or(Error::NotFound)
    }

    /// `lookup`, with not-found as none.
    pub fn find(&mut self, path: &str) -> Result<Option<Entry>, Error> {
        match self.lookup(path) {
            Ok(e) => Ok(Some(e)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn stat(&mut self, path: &str) -> Result<Attrs, Error> {
        let e = self.lookup(path)?;
        Ok(entry_attrs(&self.cfg, &e, self.time))
    }

    pub fn list_dir(
        &mut self,
        path: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DirPage, Error> {
        if self.lookup(path)?.kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        let time = self.time;
        let listing = self.listing(path)?.clone();
        Ok(page(&self.cfg, &listing, cursor, limit, time))
    }

    /// Attributes of a directory made or found now.
    pub fn dir_attrs(&self) -> Attrs {
        attrs(&self.cfg, Kind::Dir, 0, self.time, None)
    }

    pub fn read(&mut self, path: &str, offset: u64, len: u32) -> Result<ReadResult, Error> {
        let e = self.lookup(path)?;
        if e.kind == Kind::Dir {
            return Err(Error::IsDir);
        }
        if offset >= e.size || len == 0 {
            return Ok(ReadResult {
                data: Data::Bytes(Vec::new()),
                eof: offset >= e.size,
            });
        }
        let end = e.size.min(offset + u64::from(len));
        let bytes = match (&e.xet_hash, &self.source) {
            (Some(hash), _) => self.cas.read(&self.client, hash, e.size, offset, end)?,
            (None, Source::Repo { kind, id, sha }) => {
                self.resolve_range(*kind, id, sha, path, offset, end)?
            }
            // Every bucket file is in Xet: a listing without a hash is not one we can read.
            (None, Source::Bucket) => return Err(Error::Io),
        };
        Ok(ReadResult {
            data: Data::Bytes(bytes),
            eof: end >= e.size,
        })
    }
}
