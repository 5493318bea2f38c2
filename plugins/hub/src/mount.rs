//! One mounted repo or bucket and the operations both kinds share: listings (fetched from the
//! Hub a page at a time, pages kept in a bounded cache), lookups (through kept pages, else the
//! Hub), and reads (Xet files through the CAS, others through `resolve`, see `repo`). Changes
//! to buckets are in `bucket`.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::api::Hub;
use crate::cas::Cas;
use crate::clock::{now_ms, Stamp};
use crate::config::{Config, RepoType};
use crate::fs::{attrs, entry_attrs, page, parse_cursor};
use crate::id::Id;
use crate::listings::Cache;
use crate::net::{fail, log, Client};
use crate::tree::{Entry, Kind, Page};
use nfsgw_plugin_sdk::log::Level;
use nfsgw_plugin_sdk::paths::split_parent;
use nfsgw_plugin_sdk::{Attrs, Error, ReadResult};
use nfsgw_plugin_sdk::{Data, DirPage};

/// How many pages of one directory's listing a search goes through at most (a bound against
/// a Hub whose `next` links go round in a circle).
const MAX_PAGES: usize = 100_000;

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
        id: Id::None,
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

    /// The page of directory `dir`'s listing at `url` ("" for the first), from the cache or
    /// the Hub. The first page of a bucket directory also holds the directories made in it
    /// here (which later pages then leave out).
    fn page(&mut self, dir: &str, url: &str) -> Result<Rc<Page>, Error> {
        let now = now_ms();
        if let Some(page) = self.listings.get(dir, url, now) {
            return Ok(page);
        }
        let fetch = if url.is_empty() {
            self.hub.tree_url(self.sha(), dir, false)
        } else if url.starts_with(&format!("{}/tree", self.hub.api_base())) {
            url.to_string()
        } else {
            // Not a page of this mount's listings: a cursor we never gave out.
            return Err(Error::Invalid);
        };
        let (mut entries, next) = self
            .hub
            .tree_page(&self.client, &fetch, dir)
            .map_err(|f| fail("GET", &fetch, &f))?;
        for local in &self.local_dirs {
            let (parent, name) = split_parent(local);
            if parent != dir {
                continue;
            }
            // On the first page; a later one that has it too (a file was put in it) drops it.
            if url.is_empty() {
                entries.push(Entry {
                    name: name.to_string(),
                    ..root()
                });
            } else {
                entries.retain(|e| e.name != name);
            }
        }
        let page = Rc::new(Page::new(entries, next));
        self.listings.put(dir, url, page.clone(), now);
        Ok(page)
    }

    /// Goes through directory `dir`'s listing page by page until `f` finds something.
    fn search<R>(&mut self, dir: &str, f: impl Fn(&Page) -> Option<R>) -> Result<Option<R>, Error> {
        let mut url = String::new();
        for _ in 0..MAX_PAGES {
            let page = self.page(dir, &url)?;
            if let Some(found) = f(&page) {
                return Ok(Some(found));
            }
            match &page.next {
                Some(next) => url = next.to_string(),
                None => return Ok(None),
            }
        }
        log(
            Level::Warn,
            &format!("{dir}: more than {MAX_PAGES} listing pages"),
        );
        Err(Error::Io)
    }

    /// True when directory `dir` lists nothing.
    pub fn is_empty_dir(&mut self, dir: &str) -> Result<bool, Error> {
        Ok(self
            .search(dir, |p| (!p.is_empty()).then_some(()))?
            .is_none())
    }

    /// The entry at `path` ("" is the root directory): from a kept page of its parent's
    /// listing, else from the Hub: a repo's `paths-info`, or a bucket's listing of the parent
    /// page by page until the name shows up.
    pub fn lookup(&mut self, path: &str) -> Result<Entry, Error> {
        if path.is_empty() {
            return Ok(root());
        }
        let (parent, name) = split_parent(path);
        if self.local_dirs.contains(path) {
            return Ok(Entry {
                name: name.to_string(),
                ..root()
            });
        }
        if let Some(e) = self.listings.find(parent, name, now_ms()) {
            return Ok(e);
        }
        if let Source::Repo { sha, .. } = &self.source {
            return self
                .hub
                .path_info(&self.client, sha, path)
                .map_err(|f| fail("POST", &self.hub.paths_info_url(sha), &f))?
                .ok_or(Error::NotFound);
        }
        self.search(parent, |p| p.get(name))?.ok_or(Error::NotFound)
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

    /// One page of directory `path`, cut from one page of the Hub's listing (see `fs`).
    pub fn list_dir(
        &mut self,
        path: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DirPage, Error> {
        let (url, start) = match cursor {
            Some(c) => parse_cursor(c)?,
            None if self.lookup(path)?.kind != Kind::Dir => return Err(Error::NotDir),
            None => ("", 0),
        };
        let hub_page = self.page(path, url)?;
        Ok(page(&self.cfg, &hub_page, url, start, limit, self.time))
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
        let bytes = match (e.id.xet_hash(), &self.source) {
            (Some(hash), _) => self.cas.read(&self.client, &hash, e.size, offset, end)?,
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
