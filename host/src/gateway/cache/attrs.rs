//! The attribute cache of one mount: attributes per inode for the mount's TTL (forever for an
//! immutable mount). The gateway refreshes them from every reply that carries attributes and
//! drops them when its own change makes them wrong; each put has a stamp, so a listing can tell
//! which of its entries were put again or dropped since it was made.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::listings::Listed;
use super::Ttl;
use crate::backend::types::Attrs;
use crate::gateway::handles::split;
use crate::metrics::CacheMetrics;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::types::{Device, FileKind, Timestamp};
    use crate::gateway::cache::Ttl;
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
