//! The attribute cache of one mount: attributes per inode for the mount's TTL (forever for an
//! immutable mount). The gateway refreshes them from every reply that carries attributes and
//! drops them when its own change makes them wrong; each put has a stamp, so a listing can tell
//! which of its entries were put again or dropped since it was made. It holds at most a bound
//! of entries (`[server.cache] attr_entries`): a put beyond it evicts the least recently used
//! (a hit of `fresh` or `last_known` counts as a use, and so does a put); a listing reads an
//! evicted entry as dropped, and its caller stats that file again.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

use lru::LruCache;

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

/// Cached attributes, least recently used first out, each with when it was put and a stamp
/// that no other put had.
struct Stamped {
    by_ino: LruCache<u64, Cached>,
    last_stamp: u64,
}

struct Cached {
    attrs: Attrs,
    at: Instant,
    stamp: u64,
}

impl AttrCache {
    /// A cache of at most `bound` entries (at least one).
    pub fn new(ttl: Ttl, bound: usize, metrics: CacheMetrics) -> AttrCache {
        let stamped = Stamped {
            by_ino: LruCache::sparse(at_least_one(bound)),
            last_stamp: 0,
        };
        AttrCache {
            ttl,
            entries: Mutex::new(stamped),
            metrics,
        }
    }

    /// Holds at most `bound` entries from now on, the least recently used evicted first.
    pub fn resize(&self, bound: usize) {
        let mut entries = self.entries.lock().unwrap();
        entries.by_ino.resize(at_least_one(bound));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().by_ino.len()
    }

    /// Attributes still within the TTL (a hit or a miss in the metrics).
    pub fn fresh(&self, ino: u64) -> Option<Attrs> {
        let mut entries = self.entries.lock().unwrap();
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
        entries.by_ino.put(ino, cached);
        stamp
    }

    pub fn invalidate(&self, ino: u64) {
        self.entries.lock().unwrap().by_ino.pop(&ino);
    }

    /// Of listed entries, by index in `listed`: those whose attributes were put again since
    /// the listing put them (a change through nfsgw, a later GETATTR), with those attributes,
    /// and those whose attributes are gone from the cache (dropped by a change, or evicted),
    /// whose listed copy may be stale. One lock for all of them; looking is not a use, so it
    /// leaves the order of eviction as it was.
    pub fn changed_since(&self, listed: &[Listed]) -> ChangedSince {
        let entries = self.entries.lock().unwrap();
        let mut changed = ChangedSince::default();
        for (i, e) in listed.iter().enumerate() {
            match entries.by_ino.peek(&split(e.id).1) {
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

fn at_least_one(bound: usize) -> NonZeroUsize {
    NonZeroUsize::new(bound).unwrap_or(NonZeroUsize::MIN)
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

    /// A listing of the files `inos`, each put in the cache as it is listed.
    fn listed(cache: &AttrCache, inos: std::ops::RangeInclusive<u64>) -> Vec<Listed> {
        inos.map(|ino| Listed {
            id: file_id(1, ino),
            name: format!("f{ino}"),
            attrs: attrs(1),
            stamp: cache.put(ino, attrs(1)),
        })
        .collect()
    }

    #[test]
    fn a_listing_sees_attributes_put_after_its_own_and_those_dropped() {
        let cache = AttrCache::new(Ttl::Forever, 16, CacheMetrics::new("cache-test", "attr"));
        let listed = listed(&cache, 1..=3);
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

    #[test]
    fn it_keeps_at_most_its_bound_and_evicts_the_least_recently_used() {
        let cache = AttrCache::new(Ttl::Forever, 100, CacheMetrics::new("cache-test", "attr"));
        for ino in 1..=100 {
            cache.put(ino, attrs(ino));
        }
        // Used since their put: a fresh hit, a last-known hit, a put again.
        assert!(cache.fresh(1).is_some());
        assert!(cache.last_known(2).is_some());
        cache.put(3, attrs(3));
        for ino in 101..=197 {
            cache.put(ino, attrs(ino));
        }
        assert_eq!(cache.len(), 100);
        let kept: Vec<u64> = (1..=197)
            .filter(|&ino| cache.last_known(ino).is_some())
            .collect();
        let expected: Vec<u64> = [1, 2, 3].into_iter().chain(101..=197).collect();
        assert_eq!(kept, expected);
        cache.resize(16);
        assert_eq!(cache.len(), 16);
        assert!(cache.last_known(197).is_some() && cache.last_known(101).is_none());
    }

    #[test]
    fn a_listing_reads_an_evicted_entry_as_dropped() {
        let cache = AttrCache::new(Ttl::Forever, 16, CacheMetrics::new("cache-test", "attr"));
        let listed = listed(&cache, 1..=17);
        let changed = cache.changed_since(&listed);
        assert!(changed.updated.is_empty());
        assert_eq!(
            changed.dropped,
            vec![0],
            "the first put was evicted by the 17th"
        );
    }
}
