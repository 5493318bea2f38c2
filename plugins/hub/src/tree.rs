//! Directory listings: the JSON entries of the Hub's `tree` endpoints (repos and buckets) turned
//! into named entries of one directory, and a per-instance cache of whole listings.
//!
//! A repo entry is `{"type":"file"|"directory","path","size","oid","xetHash"?,"lfs"?}`; a bucket
//! entry is `{"type":"file","path","size","xetHash","mtime","uploadedAt"}` or
//! `{"type":"directory","path","uploadedAt"}`. Paths are full paths in the repo; an entry whose
//! path is not directly inside the listed directory is ignored.

use std::collections::HashMap;

use nfsgw_plugin_sdk::paths::split_parent;
use serde::Deserialize;

use crate::clock::{parse_iso8601, Stamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// The Xet file hash; none for a repo file stored in git (or in plain LFS).
    pub xet_hash: Option<String>,
    /// What changes when the content does: the Xet hash, else the git object id.
    pub change: Option<String>,
    /// The entry's own time when the listing has one (buckets).
    pub mtime: Option<Stamp>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    oid: Option<String>,
    #[serde(rename = "xetHash")]
    xet_hash: Option<String>,
    mtime: Option<String>,
    #[serde(rename = "uploadedAt")]
    uploaded_at: Option<String>,
}

/// The entries of one page of a `tree` listing of directory `dir` ("" for the root).
pub fn parse_page(body: &[u8], dir: &str) -> Result<Vec<Entry>, String> {
    let raw: Vec<RawEntry> =
        serde_json::from_slice(body).map_err(|e| format!("bad tree listing: {e}"))?;
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let Some(name) = r.path.trim_matches('/').strip_prefix(prefix.as_str()) else {
            continue;
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            continue;
        }
        let kind = match r.kind.as_str() {
            "file" => Kind::File,
            "directory" => Kind::Dir,
            _ => continue,
        };
        let time = r.mtime.as_deref().or(r.uploaded_at.as_deref());
        let xet_hash = r.xet_hash.filter(|h| kind == Kind::File && !h.is_empty());
        out.push(Entry {
            name: name.to_string(),
            kind,
            size: if kind == Kind::File { r.size } else { 0 },
            change: xet_hash.clone().or(r.oid),
            xet_hash,
            mtime: time.and_then(parse_iso8601),
        });
    }
    Ok(out)
}

/// The whole listing of one directory, sorted by name.
#[derive(Clone, Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// When it was fetched (ms since the epoch), for expiry.
    pub fetched_ms: u64,
}

impl Listing {
    pub fn new(mut entries: Vec<Entry>, fetched_ms: u64) -> Listing {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        Listing {
            entries,
            fetched_ms,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Listings by directory path; entries older than `ttl_ms` are dropped on lookup (`None`: never).
pub struct Cache {
    ttl_ms: Option<u64>,
    dirs: HashMap<String, Listing>,
}

impl Cache {
    pub fn new(ttl_ms: Option<u64>) -> Cache {
        Cache {
            ttl_ms,
            dirs: HashMap::new(),
        }
    }

    pub fn get(&mut self, dir: &str, now_ms: u64) -> Option<&Listing> {
        let fresh = match (self.dirs.get(dir), self.ttl_ms) {
            (None, _) => return None,
            (Some(_), None) => true,
            (Some(l), Some(ttl)) => now_ms.saturating_sub(l.fetched_ms) < ttl,
        };
        if !fresh {
            self.dirs.remove(dir);
        }
        self.dirs.get(dir)
    }

    pub fn put(&mut self, dir: &str, listing: Listing) {
        self.dirs.insert(dir.to_string(), listing);
    }

    /// Forgets every listing (after a change made through this instance).
    pub fn clear(&mut self) {
        self.dirs.clear();
    }

    /// Records a file this instance just stored at `path` in its parent's cached listing, so
    /// a run of creates in one directory does not list it again each time. When the parent is
    /// not cached it may be new, so every ancestor's listing is dropped instead.
    pub fn added(&mut self, path: &str, entry: Entry) {
        let (parent, _) = split_parent(path);
        match self.dirs.get_mut(parent) {
            Some(listing) => {
                match listing
                    .entries
                    .binary_search_by(|e| e.name.as_str().cmp(&entry.name))
                {
                    Ok(i) => listing.entries[i] = entry,
                    Err(i) => listing.entries.insert(i, entry),
                }
            }
            None => self.forget_ancestors(path),
        }
    }

    /// Forgets the listings a removal at `path` may change: its parent's, and every ancestor's
    /// (a bucket directory vanishes with its last file).
    pub fn removed(&mut self, path: &str) {
        self.forget_ancestors(path);
    }

    fn forget_ancestors(&mut self, path: &str) {
        let mut dir = path;
        while !dir.is_empty() {
            dir = split_parent(dir).0;
            self.dirs.remove(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            size,
            xet_hash: None,
            change: None,
            mtime: None,
        }
    }

    #[test]
    fn stores_update_cached_listings_and_removals_drop_ancestors() {
        let mut cache = Cache::new(None);
        cache.put("a", Listing::new(vec![file("x", 1), file("z", 1)], 0));
        cache.put("", Listing::new(vec![], 0));
        cache.added("a/y", file("y", 2));
        cache.added("a/x", file("x", 5));
        let names: Vec<_> = cache
            .get("a", 0)
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.size))
            .collect();
        assert_eq!(names, [("x".into(), 5), ("y".into(), 2), ("z".into(), 1)]);
        assert!(
            cache.get("", 0).is_some(),
            "a cached parent needs no ancestor refresh"
        );
        // A file in an uncached (maybe new) directory: the ancestors may lack it.
        cache.put("b", Listing::new(vec![], 0));
        cache.added("b/new/f", file("f", 1));
        assert!(cache.get("b", 0).is_none() && cache.get("", 0).is_none());
        cache.put("", Listing::new(vec![], 0));
        cache.removed("a/y");
        assert!(cache.get("a", 0).is_none() && cache.get("", 0).is_none());
    }

    const REPO: &str = r#"[
      {"type":"directory","oid":"d1","size":0,"path":"sub/deeper"},
      {"type":"file","oid":"f1","size":12,"path":"sub/a.txt"},
      {"type":"file","oid":"f2","size":3000000,"path":"sub/w.bin",
       "lfs":{"oid":"ab","size":3000000,"pointerSize":134},"xetHash":"00ff"},
      {"type":"file","oid":"f3","size":1,"path":"elsewhere/x"}
    ]"#;

    const BUCKET: &str = r#"[
      {"type":"file","path":"f.bin","size":5,"xetHash":"aa","mtime":"2026-11-22T08:16:13.000Z",
       "uploadedAt":"2026-11-22T08:20:00.000Z"},
      {"type":"directory","path":"d","uploadedAt":"2026-11-22T08:16:13.000Z"}
    ]"#;

    #[test]
    fn repo_page() {
        let e = parse_page(REPO.as_bytes(), "sub").unwrap();
        assert_eq!(e.len(), 3, "the entry outside `sub` is ignored");
        assert_eq!(
            (e[0].name.as_str(), e[0].kind, e[0].size),
            ("deeper", Kind::Dir, 0)
        );
        assert_eq!(e[1].xet_hash, None);
        assert_eq!(e[1].change.as_deref(), Some("f1"));
        assert_eq!(e[2].xet_hash.as_deref(), Some("00ff"));
        assert_eq!(e[2].change.as_deref(), Some("00ff"));
        assert_eq!(e[2].size, 3_000_000);
        assert!(parse_page(b"{\"error\":1}", "").is_err());
    }

    #[test]
    fn bucket_page() {
        let e = parse_page(BUCKET.as_bytes(), "").unwrap();
        assert_eq!(
            e[0].mtime,
            Some((1_795_335_373, 0)),
            "mtime wins over uploadedAt"
        );
        assert_eq!(e[1].kind, Kind::Dir);
        assert_eq!(e[1].mtime, Some((1_795_335_373, 0)));
    }

    #[test]
    fn listing_and_cache() {
        let mut entries = parse_page(REPO.as_bytes(), "sub").unwrap();
        entries.reverse();
        let l = Listing::new(entries, 100);
        assert_eq!(l.entries[0].name, "a.txt");
        assert_eq!(l.get("w.bin").unwrap().size, 3_000_000);
        assert!(l.get("nope").is_none());

        let mut c = Cache::new(Some(50));
        c.put("sub", l.clone());
        assert!(c.get("sub", 149).is_some());
        assert!(c.get("sub", 150).is_none(), "expired");
        let mut forever = Cache::new(None);
        forever.put("sub", l);
        assert!(forever.get("sub", u64::MAX).is_some());
        forever.clear();
        assert!(forever.get("sub", 0).is_none());
    }
}
