//! Per-mount caches of attributes and directory listings.
//!
//! Attributes are kept per inode for the mount's TTL (forever for an immutable mount); the
//! gateway refreshes them from every reply that carries attributes and drops them when its own
//! change makes them wrong. A listing is the whole directory, fetched once and then paged to
//! clients by cookie: a listing that started stays usable for its continuation pages even after
//! it went stale, so a client paging through a directory it is changing (`rm -rf`) sees one
//! consistent snapshot, while a new listing (cookie 0) fetches again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::handles::split;
use crate::backend::types::Attrs;
use crate::metrics::CacheMetrics;

/// How long cached data stays valid.
#[derive(Clone, Copy, Debug)]
pub enum Ttl {
    For(Duration),
    Forever,
}

impl Ttl {
    fn fresh(&self, since: Instant) -> bool {
        match self {
            Ttl::Forever => true,
            Ttl::For(d) => since.elapsed() < *d,
        }
    }
}

pub struct AttrCache {
    ttl: Ttl,
    entries: Mutex<Stamped>,
    metrics: CacheMetrics,
}

/// Cached attributes, each with when it was put and a stamp that no other put had.
#[derive(Default)]
struct Stamped {
    by_ino: HashMap<u64, Cached>,
    last_stamp: u64,
}

struct Cached {
    attrs: Attrs,
    at: Instant,
    stamp: u64,
}

impl AttrCache {
    pub fn new(ttl: Ttl, metrics: CacheMetrics) -> AttrCache {
        AttrCache {
            ttl,
            entries: Mutex::default(),
            metrics,
        }
    }

    /// Attributes still within the TTL (a hit or a miss in the metrics).
    pub fn fresh(&self, ino: u64) -> Option<Attrs> {
        let entries = self.entries.lock().unwrap();
        let found = entries
            .by_ino
            .get(&ino)
            .filter(|cached| self.ttl.fresh(cached.at))
            .map(|cached| cached.attrs.clone());
        self.metrics.record(found.is_some());
        found
    }

    /// The last known attributes, however old.
    pub fn last_known(&self, ino: u64) -> Option<Attrs> {
        self.entries
            .lock()
            .unwrap()
            .by_ino
            .get(&ino)
            .map(|cached| cached.attrs.clone())
    }

    /// Caches attributes; returns the stamp of this put.
    pub fn put(&self, ino: u64, attrs: Attrs) -> u64 {
        let mut entries = self.entries.lock().unwrap();
        entries.last_stamp += 1;
        let stamp = entries.last_stamp;
        let cached = Cached {
            attrs,
            at: Instant::now(),
            stamp,
        };
        entries.by_ino.insert(ino, cached);
        stamp
    }

    pub fn invalidate(&self, ino: u64) {
        self.entries.lock().unwrap().by_ino.remove(&ino);
    }

    /// Of listed entries, by index in `listed`: those whose attributes were put again since
    /// the listing put them (a change through nfsgw, a later GETATTR), with those attributes,
    /// and those whose attributes are gone from the cache (dropped by a change), whose listed
    /// copy may be stale. One lock for all of them.
    pub fn changed_since(&self, listed: &[Listed]) -> ChangedSince {
        let entries = self.entries.lock().unwrap();
        let mut changed = ChangedSince::default();
        for (i, e) in listed.iter().enumerate() {
            match entries.by_ino.get(&split(e.id).1) {
                Some(cached) if cached.stamp != e.stamp => {
                    changed.updated.push((i, cached.attrs.clone()))
                }
                Some(_) => {}
                None => changed.dropped.push(i),
            }
        }
        changed
    }
}

/// What [`AttrCache::changed_since`] found of a listing's entries, by index, in order.
#[derive(Default)]
pub struct ChangedSince {
    pub updated: Vec<(usize, Attrs)>,
    pub dropped: Vec<usize>,
}

/// One entry of a listing: file id, name, its attributes when listed, and the stamp of the
/// attribute cache's put of them (0: never put).
pub struct Listed {
    pub id: u64,
    pub name: String,
    pub attrs: Attrs,
    pub stamp: u64,
}

/// A whole directory as fetched from the plugin.
pub struct Listing {
    pub entries: Vec<Listed>,
    position: HashMap<u64, usize>,
    fetched: Instant,
}

impl Listing {
    pub fn new(entries: Vec<Listed>) -> Listing {
        let position = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        Listing {
            entries,
            position,
            fetched: Instant::now(),
        }
    }

    /// Where the entries after the one with file id `cookie` start; 0 starts at the beginning.
    pub fn resume_after(&self, cookie: u64) -> Option<usize> {
        if cookie == 0 {
            return Some(0);
        }
        self.position.get(&cookie).map(|i| i + 1)
    }
}

pub struct DirCache {
    ttl: Ttl,
    listings: Mutex<HashMap<u64, (Arc<Listing>, bool)>>,
    metrics: CacheMetrics,
}

impl DirCache {
    pub fn new(ttl: Ttl, metrics: CacheMetrics) -> DirCache {
        DirCache {
            ttl,
            listings: Mutex::default(),
            metrics,
        }
    }

    /// A listing to start a new enumeration from: valid and within the TTL (a hit or a miss
    /// in the metrics).
    pub fn fresh(&self, ino: u64) -> Option<Arc<Listing>> {
        let listings = self.listings.lock().unwrap();
        let found = listings
            .get(&ino)
            .filter(|(listing, valid)| *valid && self.ttl.fresh(listing.fetched))
            .map(|(listing, _)| listing.clone());
        self.metrics.record(found.is_some());
        found
    }

    /// The listing a started enumeration continues in, stale or not.
    pub fn current(&self, ino: u64) -> Option<Arc<Listing>> {
        self.listings
            .lock()
            .unwrap()
            .get(&ino)
            .map(|(l, _)| l.clone())
    }

    pub fn put(&self, ino: u64, listing: Arc<Listing>) {
        self.listings.lock().unwrap().insert(ino, (listing, true));
    }

    /// Marks a listing stale after a change in its directory.
    pub fn invalidate(&self, ino: u64) {
        if let Some((_, valid)) = self.listings.lock().unwrap().get_mut(&ino) {
            *valid = false;
        }
    }

    /// Drops the listing of a directory that no longer exists.
    pub fn remove(&self, ino: u64) {
        self.listings.lock().unwrap().remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::types::{Device, FileKind, Timestamp};
    use crate::gateway::handles::file_id;

    fn attrs(size: u64) -> Attrs {
        let t = Timestamp {
            seconds: 0,
            nanoseconds: 0,
        };
        Attrs {
            kind: FileKind::Regular,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            atime: t,
            mtime: t,
            ctime: t,
            rdev: Device { major: 0, minor: 0 },
            change: Some(format!("v{size}")),
        }
    }

    #[test]
    fn a_listing_sees_attributes_put_after_its_own_and_those_dropped() {
        let cache = AttrCache::new(Ttl::Forever, CacheMetrics::new("cache-test", "attr"));
        let listed: Vec<Listed> = (1..=3)
            .map(|ino| Listed {
                id: file_id(1, ino),
                name: format!("f{ino}"),
                attrs: attrs(1),
                stamp: cache.put(ino, attrs(1)),
            })
            .collect();
        let unchanged = cache.changed_since(&listed);
        assert!(unchanged.updated.is_empty() && unchanged.dropped.is_empty());
        cache.put(2, attrs(7)); // changed through nfsgw after the listing
        cache.invalidate(3); // dropped by a change: the caller stats it again
        let changed = cache.changed_since(&listed);
        assert_eq!(changed.updated.len(), 1);
        assert_eq!((changed.updated[0].0, changed.updated[0].1.size), (1, 7));
        assert_eq!(changed.dropped, vec![2]);
        let tail = cache.changed_since(&listed[2..]);
        assert!(tail.updated.is_empty());
        assert_eq!(tail.dropped, vec![0]);
    }
}
