//! How the tree looks to the host: attributes built from listing entries and the mount's
//! owner and modes, and directory pages cut from a whole cached listing by index.

use crate::clock::Stamp;
use crate::config::Config;
use crate::exports::nfsgw::backend::backend::{Attrs, Device, FileKind};
use crate::nfsgw::backend::types::{DirEntry, DirPage, Timestamp};
use crate::tree::{Entry, Kind, Listing};

/// Attributes of a file or directory of this mount.
pub fn attrs(cfg: &Config, kind: Kind, size: u64, time: Stamp, change: Option<String>) -> Attrs {
    let time = Timestamp {
        seconds: time.0,
        nanoseconds: time.1,
    };
    let (kind, mode, nlink, size) = match kind {
        Kind::File => (FileKind::Regular, cfg.file_mode, 1, size),
        Kind::Dir => (FileKind::Directory, cfg.dir_mode, 2, 4096),
    };
    Attrs {
        kind,
        size,
        mode,
        uid: cfg.uid,
        gid: cfg.gid,
        nlink,
        atime: time,
        mtime: time,
        ctime: time,
        rdev: Device { major: 0, minor: 0 },
        change,
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
    let start = cursor
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0)
        .min(listing.entries.len());
    let end = start
        .saturating_add(limit.max(1) as usize)
        .min(listing.entries.len());
    DirPage {
        entries: listing.entries[start..end]
            .iter()
            .map(|e| DirEntry {
                name: e.name.clone(),
                attrs: Some(entry_attrs(cfg, e, default_time)),
            })
            .collect(),
        next: (end < listing.entries.len()).then(|| end.to_string()),
    }
}
