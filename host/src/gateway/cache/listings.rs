//! The listing cache of one mount. A listing is one enumeration of a directory, named by a
//! verifier unique in the mount (READDIR's cookieverf); a cookie is a position in it (the
//! entry's index + 1), so every entry has its own. Its pages are fetched from the plugin as
//! clients reach them, each remembered with the plugin cursor it starts at. A listing that
//! started stays usable for its continuation pages even after it went stale, so a client paging
//! through a directory it is changing (`rm -rf`) sees one consistent enumeration, while a new
//! listing (cookie 0) fetches again. All listings together hold at most `bound` entries: past
//! it the pages of the least recently used listings go first, those a client has passed before
//! those ahead; a client that comes back to an evicted page gets it fetched again from its
//! cursor. At most [`LISTINGS`] listings are known at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::Ttl;
use crate::backend::types::Attrs;
use crate::metrics::CacheMetrics;

/// Listings known at once (their pages' cursors); the least recently used beyond go whole.
pub const LISTINGS: usize = 1024;

/// One entry of a listing: file id, name, its attributes when listed, and the stamp of the
/// attribute cache's put of them (0: never put).
pub struct Listed {
    pub id: u64,
    pub name: String,
    pub attrs: Attrs,
    pub stamp: u64,
}

/// The entries of one fetched page, shared with the replies that page through it.
pub type Entries = Arc<Vec<Listed>>;

/// A page of a listing to fetch from the plugin: from `cursor` (`None`: the directory's
/// start), to fill the page at `index` (one past the last: the next page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub cursor: Option<String>,
    index: usize,
}

/// What a position of a listing holds.
pub enum At {
    /// A held page: its entries, the position of its first entry, and whether it is the
    /// listing's last.
    Held {
        entries: Entries,
        first: u64,
        last: bool,
    },
    /// The end of the listing.
    End,
    /// A page to fetch before the position can be answered.
    Fetch(Fetch),
    /// A position past the listing's end, or a listing no longer known.
    Unknown,
}

struct Page {
    first: u64,
    /// Entries as first fetched; a page fetched again keeps at most as many.
    len: u64,
    cursor: Option<String>,
    /// `None` once evicted.
    entries: Option<Entries>,
}

struct Listing {
    ino: u64,
    started: Instant,
    used: u64,
    pages: Vec<Page>,
    /// The cursor of the page after the fetched ones; `None` once the plugin said the
    /// directory ends.
    more: Option<Option<String>>,
}

impl Listing {
    fn end(&self) -> u64 {
        self.pages.last().map_or(0, |p| p.first + p.len)
    }

    fn held(&self) -> usize {
        self.pages
            .iter()
            .filter_map(|p| p.entries.as_ref())
            .map(|e| e.len())
            .sum()
    }
}

#[derive(Clone, Copy)]
struct Current {
    verf: u64,
    /// False once a change through nfsgw made the listing stale.
    valid: bool,
}

struct State {
    listings: HashMap<u64, Listing>,
    /// Each directory's newest listing.
    current: HashMap<u64, Current>,
    /// Entries held by all pages.
    held: usize,
    clock: u64,
    next_verf: u64,
}

pub struct DirCache {
    ttl: Ttl,
    bound: usize,
    state: Mutex<State>,
    metrics: CacheMetrics,
}

impl DirCache {
    /// A cache of at most `bound` entries. Verifiers start from the clock, so that those of an
    /// earlier run of nfsgw name no listing of this one.
    pub fn new(ttl: Ttl, bound: usize, metrics: CacheMetrics) -> DirCache {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        DirCache {
            ttl,
            bound: bound.max(2),
            state: Mutex::new(State {
                listings: HashMap::new(),
                current: HashMap::new(),
                held: 0,
                clock: 0,
                next_verf: now.as_nanos() as u64,
            }),
            metrics,
        }
    }

    /// The same cache holding at most `bound` entries (it holds none yet).
    pub fn with_bound(self, bound: usize) -> DirCache {
        DirCache {
            bound: bound.max(2),
            ..self
        }
    }

    /// The most entries to ask the plugin for in one page: `most`, or less, so that two pages
    /// fit in the bound.
    pub fn page_size(&self, most: u32) -> u32 {
        u32::try_from(self.bound / 2).unwrap_or(u32::MAX).min(most)
    }

    /// The verifier of a listing to start a new enumeration of `ino` from: the current one
    /// while valid and within the TTL (a hit in the metrics), else a new one (a miss).
    pub fn start(&self, ino: u64) -> u64 {
        let mut state = self.state.lock().unwrap();
        let fresh = state
            .current
            .get(&ino)
            .filter(|c| c.valid)
            .map(|c| c.verf)
            .filter(|verf| {
                state
                    .listings
                    .get(verf)
                    .is_some_and(|l| self.ttl.fresh(l.started))
            });
        self.metrics.record(fresh.is_some());
        fresh.unwrap_or_else(|| state.begin(ino))
    }

    /// The verifier of the listing a continuation of `ino` resumes in: the one `verf` names,
    /// stale or not; for a client that sends 0, the current one (a new one when none is).
    /// `None`: `verf` names no listing of `ino` known now.
    pub fn resume(&self, ino: u64, verf: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap();
        if verf != 0 {
            return state
                .listings
                .get(&verf)
                .filter(|l| l.ino == ino)
                .map(|_| verf);
        }
        match state.current.get(&ino) {
            Some(c) if state.listings.contains_key(&c.verf) => Some(c.verf),
            _ => Some(state.begin(ino)),
        }
    }

    /// What position `pos` of listing `verf` holds (the entries from there on).
    pub fn at(&self, verf: u64, pos: u64) -> At {
        let mut state = self.state.lock().unwrap();
        state.clock += 1;
        let clock = state.clock;
        let Some(listing) = state.listings.get_mut(&verf) else {
            return At::Unknown;
        };
        listing.used = clock;
        let mut pos = pos;
        loop {
            let i = listing.pages.partition_point(|p| p.first <= pos);
            let Some(page) = i.checked_sub(1).map(|i| &listing.pages[i]) else {
                break;
            };
            if pos >= page.first + page.len {
                break;
            }
            match &page.entries {
                None => {
                    return At::Fetch(Fetch {
                        cursor: page.cursor.clone(),
                        index: i - 1,
                    })
                }
                // Fetched again shorter: the rest of its positions are empty.
                Some(e) if pos - page.first >= e.len() as u64 => pos = page.first + page.len,
                Some(e) => {
                    return At::Held {
                        entries: e.clone(),
                        first: page.first,
                        last: i == listing.pages.len() && listing.more.is_none(),
                    }
                }
            }
        }
        match &listing.more {
            Some(cursor) => At::Fetch(Fetch {
                cursor: cursor.clone(),
                index: listing.pages.len(),
            }),
            None if pos == listing.end() => At::End,
            None => At::Unknown,
        }
    }

    /// Puts what the plugin answered to `fetch` into listing `verf`: `entries` and the cursor
    /// of the page after them. Another fetch of the same page that came first is kept.
    pub fn fill(&self, verf: u64, fetch: &Fetch, entries: Vec<Listed>, next: Option<String>) {
        let mut state = self.state.lock().unwrap();
        let Some(listing) = state.listings.get_mut(&verf) else {
            return;
        };
        let page = if fetch.index == listing.pages.len() {
            if listing.more.as_ref() != Some(&fetch.cursor) {
                return;
            }
            // A plugin that answers its own cursor again has nothing more.
            listing.more = Some(next).filter(|n| n.is_some() && *n != fetch.cursor);
            if entries.is_empty() {
                return;
            }
            let first = listing.end();
            listing.pages.push(Page {
                first,
                len: entries.len() as u64,
                cursor: fetch.cursor.clone(),
                entries: None,
            });
            listing.pages.last_mut().expect("a page")
        } else {
            match listing.pages.get_mut(fetch.index) {
                Some(page) if page.entries.is_none() => page,
                _ => return,
            }
        };
        let mut entries = entries;
        entries.truncate(page.len as usize);
        let added = entries.len();
        page.entries = Some(Arc::new(entries));
        state.held += added;
        state.evict(self.bound, (verf, fetch.index));
    }

    /// Marks the current listing of `ino` stale after a change in its directory.
    pub fn invalidate(&self, ino: u64) {
        if let Some(c) = self.state.lock().unwrap().current.get_mut(&ino) {
            c.valid = false;
        }
    }

    /// Drops the listings of a directory that no longer exists.
    pub fn remove(&self, ino: u64) {
        let mut state = self.state.lock().unwrap();
        state.current.remove(&ino);
        let gone: Vec<u64> = state
            .listings
            .iter()
            .filter(|(_, l)| l.ino == ino)
            .map(|(verf, _)| *verf)
            .collect();
        for verf in gone {
            state.drop_listing(verf);
        }
    }
}

impl State {
    /// A new, empty listing of `ino`, made its current one: its verifier.
    fn begin(&mut self, ino: u64) -> u64 {
        if self.listings.len() >= LISTINGS {
            let oldest = self
                .listings
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(verf, _)| *verf);
            if let Some(verf) = oldest {
                self.drop_listing(verf);
            }
        }
        self.next_verf = self.next_verf.wrapping_add(1).max(1);
        let verf = self.next_verf;
        self.clock += 1;
        self.listings.insert(
            verf,
            Listing {
                ino,
                started: Instant::now(),
                used: self.clock,
                pages: Vec::new(),
                more: Some(None),
            },
        );
        self.current.insert(ino, Current { verf, valid: true });
        verf
    }

    fn drop_listing(&mut self, verf: u64) {
        if let Some(listing) = self.listings.remove(&verf) {
            self.held -= listing.held();
            if self
                .current
                .get(&listing.ino)
                .is_some_and(|c| c.verf == verf)
            {
                self.current.remove(&listing.ino);
            }
        }
    }

    /// Drops pages until at most `bound` entries are held, all but page `keep` of a listing:
    /// the least recently used listings' first, and of one listing the lower positions first.
    fn evict(&mut self, bound: usize, keep: (u64, usize)) {
        if self.held <= bound {
            return;
        }
        let mut held: Vec<(u64, u64, u64, usize)> = Vec::new();
        for (verf, listing) in &self.listings {
            for (i, page) in listing.pages.iter().enumerate() {
                if page.entries.is_some() && (*verf, i) != keep {
                    held.push((listing.used, page.first, *verf, i));
                }
            }
        }
        held.sort_unstable();
        for (_, _, verf, i) in held {
            if self.held <= bound {
                break;
            }
            let page = &mut self.listings.get_mut(&verf).expect("a listing").pages[i];
            if let Some(entries) = page.entries.take() {
                self.held -= entries.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::types::{Device, FileKind, Timestamp};
    use std::time::Duration;

    fn entries(names: std::ops::Range<u64>) -> Vec<Listed> {
        let t = Timestamp {
            seconds: 0,
            nanoseconds: 0,
        };
        names
            .map(|i| Listed {
                id: i,
                name: format!("n{i}"),
                attrs: Attrs {
                    kind: FileKind::Regular,
                    size: 0,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    nlink: 1,
                    atime: t,
                    mtime: t,
                    ctime: t,
                    rdev: Device { major: 0, minor: 0 },
                    change: None,
                },
                stamp: 0,
            })
            .collect()
    }

    impl DirCache {
        /// Entries held by all listings' pages, counted again.
        fn held(&self) -> usize {
            let state = self.state.lock().unwrap();
            let counted = state.listings.values().map(Listing::held).sum();
            assert_eq!(state.held, counted, "the running count");
            counted
        }
    }

    fn cache(bound: usize) -> DirCache {
        DirCache::new(
            Ttl::For(Duration::from_secs(3600)),
            bound,
            CacheMetrics::new("listings-test", "dir"),
        )
    }

    /// A directory of `n` entries in plugin pages of `page` (cursor: the last index).
    struct Plugin {
        n: u64,
        page: u64,
        calls: u64,
    }

    impl Plugin {
        fn list(&mut self, cursor: Option<&str>) -> (Vec<Listed>, Option<String>) {
            self.calls += 1;
            let from = cursor.map_or(0, |c| c.parse::<u64>().unwrap() + 1);
            let to = self.n.min(from + self.page);
            let next = (to < self.n).then(|| (to - 1).to_string());
            (entries(from..to), next)
        }
    }

    /// Entries from position `pos` until a page's end: (ids, end of the listing), fetching
    /// what the cache asks for. `None`: the position is unknown.
    fn read(c: &DirCache, p: &mut Plugin, verf: u64, pos: u64) -> Option<(Vec<u64>, bool)> {
        loop {
            match c.at(verf, pos) {
                At::Held {
                    entries,
                    first,
                    last,
                } => {
                    let ids = entries[(pos - first) as usize..].iter().map(|e| e.id);
                    return Some((ids.collect(), last));
                }
                At::End => return Some((Vec::new(), true)),
                At::Fetch(f) => {
                    let (entries, next) = p.list(f.cursor.as_deref());
                    c.fill(verf, &f, entries, next);
                }
                At::Unknown => return None,
            }
        }
    }

    #[test]
    fn pages_are_fetched_as_reached_and_resumed_without_fetching_again() {
        let c = cache(1000);
        let mut p = Plugin {
            n: 250,
            page: 100,
            calls: 0,
        };
        let verf = c.start(7);
        let (first, last) = read(&c, &mut p, verf, 0).unwrap();
        assert_eq!((first.len(), last, p.calls), (100, false, 1));
        // Resuming anywhere in the held pages asks the plugin nothing.
        assert_eq!(read(&c, &mut p, verf, 42).unwrap().0[0], 42);
        let (second, _) = read(&c, &mut p, verf, 100).unwrap();
        assert_eq!((second[0], p.calls), (100, 2));
        assert_eq!(read(&c, &mut p, verf, 57).unwrap().0[0], 57);
        assert_eq!(read(&c, &mut p, verf, 150).unwrap().0[0], 150);
        assert_eq!(p.calls, 2);
        let (third, last) = read(&c, &mut p, verf, 200).unwrap();
        assert_eq!((third.len(), last, p.calls), (50, true, 3));
        // The end, and past it.
        assert_eq!(read(&c, &mut p, verf, 250), Some((Vec::new(), true)));
        assert_eq!(read(&c, &mut p, verf, 251), None);
        assert_eq!(p.calls, 3);
        // A new enumeration while fresh is the same listing.
        assert_eq!(c.start(7), verf);
        assert_eq!(c.resume(7, verf), Some(verf));
        assert_eq!(c.resume(7, 0), Some(verf));
        assert_eq!(c.resume(8, verf), None);
    }

    #[test]
    fn a_stale_listing_serves_its_continuations_and_a_new_one_starts() {
        let c = cache(1000);
        let mut p = Plugin {
            n: 10,
            page: 5,
            calls: 0,
        };
        let old = c.start(7);
        read(&c, &mut p, old, 0).unwrap();
        c.invalidate(7);
        let new = c.start(7);
        assert_ne!(new, old);
        assert_eq!(c.resume(7, 0), Some(new));
        assert_eq!(read(&c, &mut p, old, 3).unwrap().0, [3, 4]);
        assert_eq!(read(&c, &mut p, new, 0).unwrap().0.len(), 5);
        c.remove(7);
        assert_eq!(c.resume(7, old), None);
        assert_eq!(c.resume(7, new), None);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn a_directory_larger_than_the_bound_lists_whole_within_it() {
        let c = cache(100);
        let mut p = Plugin {
            n: 1000,
            page: u64::from(c.page_size(4096)),
            calls: 0,
        };
        assert_eq!(p.page, 50);
        let verf = c.start(7);
        let mut seen = Vec::new();
        let mut pos = 0;
        loop {
            let (ids, last) = read(&c, &mut p, verf, pos).unwrap();
            let ids = &ids[..ids.len().min(7)];
            seen.extend_from_slice(ids);
            pos += ids.len() as u64;
            assert!(c.held() <= 100, "{} entries held", c.held());
            if last && pos == 1000 {
                break;
            }
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(p.calls, 20);
        // Back to an evicted page: fetched again from its cursor, still within the bound.
        assert_eq!(read(&c, &mut p, verf, 120).unwrap().0[0], 120);
        assert_eq!(p.calls, 21);
        assert!(c.held() <= 100);
        // Other directories' listings push the least recently used pages out.
        for ino in 8..20 {
            let v = c.start(ino);
            read(&c, &mut p, v, 0).unwrap();
            assert!(c.held() <= 100);
        }
    }

    #[test]
    fn listings_are_bounded_in_number() {
        let c = cache(100);
        let first = c.start(0);
        for ino in 1..=LISTINGS as u64 {
            c.start(ino);
        }
        assert_eq!(c.resume(0, first), None);
        assert_eq!(c.state.lock().unwrap().listings.len(), LISTINGS);
    }
}
