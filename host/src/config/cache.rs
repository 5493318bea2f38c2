//! The `[server.cache]` table: how much of each mount's metadata nfsgw keeps in memory, and how
//! many host files it keeps open for reads. Each key has a default and a least value; a value
//! below it stops startup naming the key and its line. The bounds become a plain
//! [`CacheLimits`] that the gateway and the host-file capability are built with.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// `[server.cache]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Attributes cached per mount (entries).
    pub attr_entries: Option<Spanned<u64>>,
    /// Directory entries all cached listings of a mount hold together.
    pub listing_entries: Option<Spanned<u64>>,
    /// Host files kept open for reads, all mounts together.
    pub open_files: Option<Spanned<u64>>,
    /// A host file kept open for reads is closed after this long unused.
    pub open_file_idle_ms: Option<Spanned<u64>>,
    /// Names each mount's inode table keeps in memory; the rest wait in its cold tier.
    pub inode_entries: Option<Spanned<u64>>,
}

/// The `[server.cache]` keys: (key, default, least value).
pub const CACHE_KEYS: [(&str, u64, u64); 5] = [
    ("attr_entries", 200_000, 16),
    ("listing_entries", 200_000, 16),
    ("open_files", 512, 0),
    ("open_file_idle_ms", 10_000, 1),
    ("inode_entries", 500_000, 16),
];

/// The bounds in force, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub attr_entries: usize,
    pub listing_entries: usize,
    /// 0: every read opens its file.
    pub open_files: usize,
    pub open_file_idle: Duration,
    pub inode_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheConfig::default().limits()
    }
}

impl CacheConfig {
    /// Every key with what was written, in the order of [`CACHE_KEYS`].
    pub(super) fn keys(&self) -> [(&'static str, Option<&Spanned<u64>>); 5] {
        [
            ("attr_entries", self.attr_entries.as_ref()),
            ("listing_entries", self.listing_entries.as_ref()),
            ("open_files", self.open_files.as_ref()),
            ("open_file_idle_ms", self.open_file_idle_ms.as_ref()),
            ("inode_entries", self.inode_entries.as_ref()),
        ]
    }

    fn value(&self, key: &str) -> u64 {
        let written = self.keys().into_iter().find(|(k, _)| *k == key);
        let default = CACHE_KEYS.iter().find(|(k, ..)| *k == key).map(|d| d.1);
        written
            .and_then(|(_, v)| v.map(|v| *v.get_ref()))
            .or(default)
            .expect("a cache key")
    }

    pub fn limits(&self) -> CacheLimits {
        let count = |key| usize::try_from(self.value(key)).unwrap_or(usize::MAX);
        CacheLimits {
            attr_entries: count("attr_entries"),
            listing_entries: count("listing_entries"),
            open_files: count("open_files"),
            open_file_idle: Duration::from_millis(self.value("open_file_idle_ms")),
            inode_entries: count("inode_entries"),
        }
    }
}
