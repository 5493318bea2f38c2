//! The per-instance cache of listing pages, keyed by directory and page URL ("" for a
//! directory's first page). It holds at most a fixed number of entries in all: a page that
//! would pass the bound pushes out the pages of the least recently used directories, and one
//! larger than the bound is not kept. A directory's pages are dropped together, also when one
//! is older than the time to live (buckets), so the pages kept of a directory are one listing.
//! It also keeps the listings right after changes made through this instance.

use std::rc::Rc;

use nfsgw_plugin_sdk::paths::split_parent;

use crate::tree::{Entry, Page};

struct Slot {
    dir: Box<str>,
    url: Box<str>,
    page: Rc<Page>,
    fetched_ms: u64,
    /// When it was last used, on the cache's own clock.
    used: u64,
}

pub struct Cache {
    ttl_ms: Option<u64>,
    max_entries: usize,
    slots: Vec<Slot>,
    /// Entries in all pages kept.
    entries: usize,
    clock: u64,
}

impl Cache {
    /// A cache of at most `max_entries` entries, each page for `ttl_ms` (`None`: for ever).
    pub fn new(ttl_ms: Option<u64>, max_entries: usize) -> Cache {
        Cache {
            ttl_ms,
            max_entries,
            slots: Vec::new(),
            entries: 0,
            clock: 0,
        }
    }

    /// Entries in all pages kept.
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.entries
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn drop_slot(&mut self, i: usize) {
        self.entries -= self.slots[i].page.len();
        self.slots.swap_remove(i);
    }

    /// Drops the pages of `dir` when one is too old at `now_ms`.
    fn expire(&mut self, dir: &str, now_ms: u64) {
        let Some(ttl) = self.ttl_ms else { return };
        let old = |s: &Slot| &*s.dir == dir && now_ms.saturating_sub(s.fetched_ms) >= ttl;
        if self.slots.iter().any(old) {
            self.forget(dir);
        }
    }

    /// The page at `url` of `dir`, if kept and fresh.
    pub fn get(&mut self, dir: &str, url: &str, now_ms: u64) -> Option<Rc<Page>> {
        self.expire(dir, now_ms);
        let tick = self.tick();
        let slot = self
            .slots
            .iter_mut()
            .find(|s| &*s.dir == dir && &*s.url == url)?;
        slot.used = tick;
        Some(slot.page.clone())
    }

    /// The entry `name` of `dir` if a kept, fresh page of `dir` has it.
    pub fn find(&mut self, dir: &str, name: &str, now_ms: u64) -> Option<Entry> {
        self.expire(dir, now_ms);
        let tick = self.tick();
        self.slots
            .iter_mut()
            .filter(|s| &*s.dir == dir)
            .find_map(|s| {
                let e = s.page.get(name)?;
                s.used = tick;
                Some(e)
            })
    }

    /// Keeps `page` as the page at `url` of `dir`, fetched at `now_ms`.
    pub fn put(&mut self, dir: &str, url: &str, page: Rc<Page>, now_ms: u64) {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| &*s.dir == dir && &*s.url == url)
        {
            self.drop_slot(i);
        }
        if page.len() > self.max_entries {
            return;
        }
        self.entries += page.len();
        let used = self.tick();
        self.slots.push(Slot {
            dir: dir.into(),
            url: url.into(),
            page,
            fetched_ms: now_ms,
            used,
        });
        self.evict();
    }

    /// Drops the pages of the least recently used directories until the bound holds.
    fn evict(&mut self) {
        while self.entries > self.max_entries {
            let Some(oldest) = self.slots.iter().min_by_key(|s| s.used) else {
                return;
            };
            let dir = oldest.dir.clone();
            self.forget(&dir);
        }
    }

    /// Forgets every page (after a change made through this instance).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.entries = 0;
    }

    /// Forgets every page of `dir`.
    fn forget(&mut self, dir: &str) {
        let mut i = 0;
        while i < self.slots.len() {
            if &*self.slots[i].dir == dir {
                self.drop_slot(i);
            } else {
                i += 1;
            }
        }
    }

    /// The slot of the last page of `dir` when every page of it is kept.
    fn last_of_whole(&self, dir: &str) -> Option<usize> {
        let mut url = "";
        for _ in 0..self.slots.len() {
            let i = self
                .slots
                .iter()
                .position(|s| &*s.dir == dir && &*s.url == url)?;
            match &self.slots[i].page.next {
                Some(next) => url = next,
                None => return Some(i),
            }
        }
        None
    }

    /// Records a file this instance just stored at `path` in its parent's kept listing, so a
    /// run of creates in one directory does not list it again each time: in the kept page that
    /// has the name, else in the last page when every page of the parent is kept. Otherwise
    /// the name may belong on a page not kept, so the parent's pages and every ancestor's are
    /// dropped.
    pub fn added(&mut self, path: &str, entry: Entry) {
        let (parent, _) = split_parent(path);
        let tick = self.tick();
        let home = self
            .slots
            .iter()
            .position(|s| &*s.dir == parent && s.page.contains(&entry.name))
            .or_else(|| self.last_of_whole(parent));
        match home {
            Some(i) => {
                let slot = &mut self.slots[i];
                let before = slot.page.len();
                Rc::make_mut(&mut slot.page).put(&entry);
                slot.used = tick;
                self.entries += slot.page.len() - before;
                self.evict();
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
            self.forget(dir);
        }
    }

    /// The memory the cache holds on the heap: every page's, its slot and its keys.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        use crate::tree::PER_ALLOCATION;
        // An `Rc` allocation holds two counts besides the page.
        let rc = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Page>();
        let pages: usize = self
            .slots
            .iter()
            .map(|s| s.page.heap_bytes() + rc + s.dir.len() + s.url.len() + 3 * PER_ALLOCATION)
            .sum();
        pages + self.slots.capacity() * std::mem::size_of::<Slot>() + PER_ALLOCATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::tree::{parse_page, Kind};

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            size,
            id: Id::None,
            mtime: None,
        }
    }

    fn page(names: &[&str], next: Option<&str>) -> Rc<Page> {
        let entries = names.iter().map(|n| file(n, 1)).collect();
        Rc::new(Page::new(entries, next.map(str::to_string)))
    }

    fn sizes(cache: &mut Cache, dir: &str, url: &str) -> Vec<(String, u64)> {
        let p = cache.get(dir, url, 0).unwrap();
        (0..p.len())
            .map(|i| (p.name(i).into(), p.entry(i).size))
            .collect()
    }

    #[test]
    fn stores_update_kept_pages_and_removals_drop_ancestors() {
        let mut cache = Cache::new(None, 100);
        cache.put("a", "", page(&["x", "z"], None), 0);
        cache.put("", "", page(&[], None), 0);
        cache.added("a/y", file("y", 2));
        cache.added("a/x", file("x", 5));
        let expect = [("x".into(), 5), ("y".into(), 2), ("z".into(), 1)];
        assert_eq!(sizes(&mut cache, "a", ""), expect);
        assert_eq!(cache.entries(), 3);
        assert!(
            cache.get("", "", 0).is_some(),
            "a kept parent needs no ancestor refresh"
        );
        // A file in a directory not kept (maybe new): the ancestors may lack it.
        cache.put("b", "", page(&[], None), 0);
        cache.added("b/new/f", file("f", 1));
        assert!(cache.get("b", "", 0).is_none() && cache.get("", "", 0).is_none());
        cache.put("", "", page(&[], None), 0);
        cache.removed("a/y");
        assert!(cache.get("a", "", 0).is_none() && cache.get("", "", 0).is_none());
        assert_eq!(cache.entries(), 0);
    }

    #[test]
    fn stores_in_a_directory_of_several_pages() {
        let mut cache = Cache::new(None, 100);
        cache.put("d", "", page(&["a", "b"], Some("u2")), 0);
        cache.put("d", "u2", page(&["c", "e"], None), 0);
        cache.added("d/c", file("c", 7));
        assert_eq!(
            cache.find("d", "c", 0).unwrap().size,
            7,
            "replaced in place"
        );
        assert_eq!(cache.entries(), 4);
        // A new name goes on the last page when every page is kept.
        cache.added("d/new", file("new", 1));
        assert!(cache.get("d", "u2", 0).unwrap().contains("new"));
        assert_eq!(cache.entries(), 5);
        // Else it may belong on a page not kept: the directory is listed again.
        cache.put("p", "u2", page(&["c"], None), 0);
        cache.added("p/new", file("new", 1));
        assert!(cache.get("p", "u2", 0).is_none());
    }

    #[test]
    fn pages_expire_and_are_found_by_name() {
        let mut c = Cache::new(Some(50), 100);
        c.put("sub", "", page(&["a"], Some("u2")), 100);
        c.put("sub", "u2", page(&["b"], None), 120);
        assert_eq!(c.find("sub", "b", 149).unwrap().name, "b");
        assert!(c.find("sub", "nope", 149).is_none());
        assert!(c.get("sub", "u2", 149).is_some());
        assert!(c.get("sub", "", 150).is_none(), "expired");
        assert!(
            c.get("sub", "u2", 150).is_none(),
            "a directory's pages go together"
        );
        assert_eq!(c.entries(), 0);
        let mut forever = Cache::new(None, 100);
        forever.put("sub", "", page(&["a"], None), 0);
        assert!(forever.get("sub", "", u64::MAX).is_some());
        forever.clear();
        assert!(forever.get("sub", "", 0).is_none());
        assert_eq!(forever.entries(), 0);
    }

    #[test]
    fn holds_at_most_its_bound_dropping_the_least_recently_used() {
        let mut c = Cache::new(None, 10);
        let four = ["1", "2", "3", "4"];
        c.put("a", "", page(&four, None), 0);
        c.put("b", "", page(&four, None), 0);
        assert!(c.get("a", "", 0).is_some(), "a is now used after b");
        c.put("c", "", page(&four, None), 0);
        assert_eq!(c.entries(), 8);
        assert!(c.get("b", "", 0).is_none(), "b was the least recently used");
        assert!(c.get("a", "", 0).is_some() && c.get("c", "", 0).is_some());
        let eleven = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"];
        c.put("big", "", page(&eleven, None), 0);
        assert!(
            c.get("big", "", 0).is_none(),
            "a page over the bound is not kept"
        );
        assert_eq!(c.entries(), 8);
        for (i, dir) in ["d", "e", "f", "g", "h"].iter().enumerate() {
            c.put(dir, "", page(&four[..3], None), i as u64);
            assert!(c.entries() <= 10);
        }
        assert_eq!(c.entries(), 9, "three pages of three");
        c.added("h/5", file("5", 1));
        assert_eq!(c.entries(), 10);
        c.added("h/6", file("6", 1));
        assert_eq!(c.entries(), 8, "the least recently used page made room");
        assert!(c.get("f", "", 0).is_none() && c.find("h", "6", 0).is_some());
    }

    /// A listing of 100,000 files with Hub-like names, Xet hashes and git ids, kept in pages of
    /// 1000 as the Hub sends them, costs at most 200 bytes of heap per file.
    #[test]
    fn a_file_costs_at_most_200_bytes() {
        const FILES: usize = 100_000;
        const PER_PAGE: usize = 1000;
        let mut c = Cache::new(None, FILES);
        for p in 0..FILES / PER_PAGE {
            let body: Vec<String> = (p * PER_PAGE..(p + 1) * PER_PAGE)
                .map(|i| {
                    format!(
                        r#"{{"type":"file","path":"data/train-{i:06}-of-{FILES:06}.parquet",
                        "size":{},"oid":"{:040x}","xetHash":"{:064x}",
                        "lfs":{{"oid":"{:064x}","size":1,"pointerSize":134}}}}"#,
                        i * 1000,
                        i,
                        i + 7,
                        i + 9
                    )
                })
                .collect();
            let entries = parse_page(format!("[{}]", body.join(",")).as_bytes(), "data").unwrap();
            let next = format!(
                "https://huggingface.co/api/datasets/org/name/tree/0123456789abcdef0123456789abcdef01234567/data?expand=false&cursor=ZXlKbWFXeGxYMjVoYldVaU9pSmtZWFJoTDNSeVlXbHVMVEF3TURBd01TMXZaaTB3TURBd01EQXVjR0Z5Y1hWbGRDSjk{p}"
            );
            let url = if p == 0 { String::new() } else { next.clone() };
            c.put("data", &url, Rc::new(Page::new(entries, Some(next))), 0);
        }
        assert_eq!(c.entries(), FILES, "all kept");
        let per_file = c.heap_bytes() as f64 / FILES as f64;
        eprintln!("{per_file:.1} bytes of heap per file");
        assert!(per_file <= 200.0, "{per_file} bytes per file");
        let e = c.find("data", "train-054321-of-100000.parquet", 0).unwrap();
        assert_eq!(e.id.xet_hash(), Some(format!("{:064x}", 54_321 + 7)));
    }
}
