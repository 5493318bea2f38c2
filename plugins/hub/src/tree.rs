//! Directory listings: the JSON entries of the Hub's `tree` endpoints (repos and buckets) turned
//! into named entries of one directory, and the compact form one page of them is kept in.
//!
//! A repo entry is `{"type":"file"|"directory","path","size","oid","xetHash"?,"lfs"?}`; a bucket
//! entry is `{"type":"file","path","size","xetHash","mtime","uploadedAt"}` or
//! `{"type":"directory","path","uploadedAt"}`. Paths are full paths in the repo; an entry whose
//! path is not directly inside the listed directory is ignored. A kept page holds its names in
//! one string and each entry in a fixed 64-byte record (content ids as bytes, see `id`), sorted
//! by name: about 64 bytes plus the name's length per file.

use serde::Deserialize;

use crate::clock::{parse_iso8601, Stamp};
use crate::id::Id;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// One entry, as handed out (kept pages store it as a `Record`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// The Xet hash, else the git object id (none for directories of a bucket).
    pub id: Id,
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

/// The entries of a JSON array of `tree` (or `paths-info`) entries that are directly in
/// directory `dir` ("" for the root).
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
        let id = match r.xet_hash.filter(|h| kind == Kind::File && !h.is_empty()) {
            Some(h) => Id::xet(&h).ok_or_else(|| format!("bad Xet hash {h:?} of {name:?}"))?,
            None => Id::git(r.oid.as_deref().unwrap_or("")),
        };
        out.push(Entry {
            name: name.to_string(),
            kind,
            size: if kind == Kind::File { r.size } else { 0 },
            id,
            mtime: time.and_then(parse_iso8601),
        });
    }
    Ok(out)
}

/// No time: the nanoseconds of a stamp are below 10^9.
const NO_TIME: u32 = u32::MAX;

/// One entry of a kept page: its name is `names[at..at + len]`.
#[derive(Clone, Copy, Debug)]
struct Record {
    at: u32,
    len: u32,
    size: u64,
    seconds: i64,
    nanos: u32,
    kind: Kind,
    id: Id,
}

/// `e`'s record, its name stored at `at`.
fn record(e: &Entry, at: u32) -> Record {
    let (seconds, nanos) = e.mtime.unwrap_or((0, NO_TIME));
    Record {
        at,
        len: e.name.len() as u32,
        size: e.size,
        seconds,
        nanos,
        kind: e.kind,
        id: e.id,
    }
}

/// One page of a directory's listing, sorted by name, and the URL of the page after it.
#[derive(Clone, Debug, Default)]
pub struct Page {
    names: String,
    records: Vec<Record>,
    pub next: Option<Box<str>>,
}

/// What one allocation costs beyond its bytes, as a general-purpose allocator keeps it.
#[cfg(test)]
pub const PER_ALLOCATION: usize = 16;

impl Page {
    pub fn new(mut entries: Vec<Entry>, next: Option<String>) -> Page {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        let mut page = Page {
            names: String::with_capacity(entries.iter().map(|e| e.name.len()).sum()),
            records: Vec::with_capacity(entries.len()),
            next: next.map(String::into_boxed_str),
        };
        for e in &entries {
            let at = page.append_name(&e.name);
            page.records.push(record(e, at));
        }
        page
    }

    /// Appends `name` to the names; where it starts.
    fn append_name(&mut self, name: &str) -> u32 {
        let at = self.names.len() as u32;
        self.names.push_str(name);
        at
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn name_of(&self, r: &Record) -> &str {
        &self.names[r.at as usize..(r.at + r.len) as usize]
    }

    /// The name of entry `i`.
    #[cfg(test)]
    pub fn name(&self, i: usize) -> &str {
        self.name_of(&self.records[i])
    }

    /// Entry `i`.
    pub fn entry(&self, i: usize) -> Entry {
        let r = &self.records[i];
        Entry {
            name: self.name_of(r).to_string(),
            kind: r.kind,
            size: r.size,
            id: r.id,
            mtime: (r.nanos != NO_TIME).then_some((r.seconds, r.nanos)),
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.records.binary_search_by(|r| self.name_of(r).cmp(name))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        self.position(name).ok().map(|i| self.entry(i))
    }

    /// Puts `e` in its place, replacing the entry of the same name.
    pub fn put(&mut self, e: &Entry) {
        match self.position(&e.name) {
            Ok(i) => self.records[i] = record(e, self.records[i].at),
            Err(i) => {
                let at = self.append_name(&e.name);
                self.records.insert(i, record(e, at));
            }
        }
    }

    /// The memory the page holds on the heap: the capacity of its name string, record vector
    /// and next URL, and each of those allocations' overhead.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let next = self.next.as_ref().map_or(0, |n| n.len() + PER_ALLOCATION);
        self.names.capacity()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + 2 * PER_ALLOCATION
            + next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XET: &str = "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

    fn repo() -> String {
        r#"[
          {"type":"directory","oid":"d1","size":0,"path":"sub/deeper"},
          {"type":"file","oid":"f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1","size":12,
           "path":"sub/a.txt"},
          {"type":"file","oid":"f2","size":3000000,"path":"sub/w.bin",
           "lfs":{"oid":"ab","size":3000000,"pointerSize":134},"xetHash":"XET"},
          {"type":"file","oid":"f3","size":1,"path":"elsewhere/x"}
        ]"#
        .replace("XET", XET)
    }

    const BUCKET: &str = r#"[
      {"type":"file","path":"f.bin","size":5,"mtime":"2026-11-22T08:16:13.000Z",
       "uploadedAt":"2026-11-22T08:20:00.000Z"},
      {"type":"directory","path":"d","uploadedAt":"2026-11-22T08:16:13.000Z"}
    ]"#;

    #[test]
    fn repo_page() {
        let e = parse_page(repo().as_bytes(), "sub").unwrap();
        assert_eq!(e.len(), 3, "the entry outside `sub` is ignored");
        assert_eq!(
            (e[0].name.as_str(), e[0].kind, e[0].size),
            ("deeper", Kind::Dir, 0)
        );
        assert_eq!(e[1].id.xet_hash(), None);
        assert_eq!(e[1].id.change(), Some("f1".repeat(20)));
        assert_eq!(e[2].id.xet_hash().as_deref(), Some(XET));
        assert_eq!(e[2].id.change().as_deref(), Some(XET));
        assert_eq!(e[2].size, 3_000_000);
        assert!(parse_page(b"{\"error\":1}", "").is_err());
        let bad_hash = repo().replace(XET, "00ff");
        assert!(parse_page(bad_hash.as_bytes(), "sub").is_err());
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
    fn pages_sort_keep_and_update_entries() {
        let mut entries = parse_page(repo().as_bytes(), "sub").unwrap();
        let original = entries.clone();
        entries.reverse();
        let mut p = Page::new(entries, Some("http://h/next".into()));
        assert_eq!((p.len(), p.name(0)), (3, "a.txt"));
        assert_eq!(p.get("w.bin").unwrap(), original[2]);
        assert_eq!(p.entry(1), original[0]);
        assert!(p.get("nope").is_none());
        let mut grown = original[1].clone();
        grown.size = 99;
        grown.mtime = Some((5, 6));
        p.put(&grown);
        assert_eq!((p.len(), p.get("a.txt").unwrap()), (3, grown));
        let mut new = original[1].clone();
        new.name = "b.txt".into();
        p.put(&new);
        let names: Vec<_> = (0..p.len()).map(|i| p.name(i)).collect();
        assert_eq!(names, ["a.txt", "b.txt", "deeper", "w.bin"]);
        assert_eq!(p.next.as_deref(), Some("http://h/next"));
    }
}
