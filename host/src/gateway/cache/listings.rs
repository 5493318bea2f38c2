//! The listing cache of one mount. A listing is the whole directory, fetched once and then
//! paged to clients by cookie: a listing that started stays usable for its continuation pages
//! even after it went stale, so a client paging through a directory it is changing (`rm -rf`)
//! sees one consistent snapshot, while a new listing (cookie 0) fetches again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Ttl;
use crate::backend::types::Attrs;
use crate::metrics::CacheMetrics;

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
