//! Per-mount caches of attributes (`attrs`) and directory listings (`listings`), and how long
//! what they hold stays valid (`Ttl`).

mod attrs;
mod listings;

use std::time::{Duration, Instant};

pub use attrs::AttrCache;
pub use listings::{At, DirCache, Entries, Listed};

/// How long cached data stays valid.
#[derive(Clone, Copy, Debug)]
pub enum Ttl {
    For(Duration),
    Forever,
}

impl Ttl {
    pub(super) fn fresh(&self, since: Instant) -> bool {
        match self {
            Ttl::Forever => true,
            Ttl::For(d) => since.elapsed() < *d,
        }
    }
}
