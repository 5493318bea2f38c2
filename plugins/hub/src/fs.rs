//! How the tree looks to the host: attributes built from listing entries and the mount's
//! owner and modes, and directory pages cut from a whole cached listing by index.

use nfsgw_plugin_sdk::paging::page_by_index;
use nfsgw_plugin_sdk::{Attrs, DirEntry, DirPage, Timestamp};

use crate::clock::Stamp;
use crate::config::Config;
use crate::tree::{Entry, Kind, Listing};

/// Attributes of a file or directory of this mount.
pub fn attrs(cfg: &Config, kind: Kind, size: u64, time: Stamp, change: Option<String>) -> Attrs {
    let time = Timestamp {
        seconds: time.0,
        nanoseconds: time.1,
    };
    match kind {
        Kind::File => cfg.owner.file(size, time, change),
        Kind::Dir => cfg.owner.dir(time, change),
    }
}

/// An entry's attributes; `default_time` when the listing gave it none.
pub fn entry_attrs(cfg: &Config, e: &Entry, default_time: Stamp) -> Attrs {
    attrs(
        cfg,
        e.kind,
        e.size,
        e.mtime.unwrap_or(default_time),
        e.change.clone(),
    )
}

/// The page of `listing` starting at index `cursor` (none: 0), at most `limit` entries.
pub fn page(
    cfg: &Config,
    listing: &Listing,
    cursor: Option<&str>,
    limit: u32,
    default_time: Stamp,
) -> DirPage {
    page_by_index(&listing.entries, cursor, limit, |e| DirEntry {
        name: e.name.clone(),
        attrs: Some(entry_attrs(cfg, e, default_time)),
    })
}
