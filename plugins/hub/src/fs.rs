//! How the tree looks to the host: attributes built from listing entries and the mount's
//! owner and modes, and directory pages cut from the Hub's listing pages. A `list_dir` cursor
//! names a Hub page and an index in it: `"{index}:{url}"`, the URL empty for the first page,
//! so a directory is answered a Hub page at a time and a cursor outlives the cache.

use nfsgw_plugin_sdk::{Attrs, DirEntry, DirPage, Error, Timestamp};

use crate::clock::Stamp;
use crate::config::Config;
use crate::tree::{Entry, Kind, Page};

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
        e.id.change(),
    )
}

/// The Hub page URL ("" for the first) and index a cursor names.
pub fn parse_cursor(cursor: &str) -> Result<(&str, usize), Error> {
    let (index, url) = cursor.split_once(':').ok_or(Error::Invalid)?;
    Ok((url, index.parse().map_err(|_| Error::Invalid)?))
}

fn cursor(url: &str, index: usize) -> String {
    format!("{index}:{url}")
}

/// The entries of `page` (the Hub page at `url`) from index `start`, at most `limit` (at least
/// one); the cursor after them goes on in this page or to the next.
pub fn page(
    cfg: &Config,
    page: &Page,
    url: &str,
    start: usize,
    limit: u32,
    default_time: Stamp,
) -> DirPage {
    let start = start.min(page.len());
    let end = start.saturating_add(limit.max(1) as usize).min(page.len());
    let entries = (start..end)
        .map(|i| {
            let e = page.entry(i);
            DirEntry {
                attrs: Some(entry_attrs(cfg, &e, default_time)),
                name: e.name,
            }
        })
        .collect();
    let next = if end < page.len() {
        Some(cursor(url, end))
    } else {
        page.next.as_deref().map(|next| cursor(next, 0))
    };
    DirPage { entries, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn cursors_walk_a_page_then_go_to_the_next() {
        let cfg = crate::config::parse(&[("repo".into(), "a/b".into())]).unwrap();
        let file = |name: &str| Entry {
            name: name.into(),
            kind: Kind::File,
            size: 1,
            id: Id::None,
            mtime: None,
        };
        let hub_page = Page::new(
            vec![file("a"), file("b"), file("c")],
            Some("http://h/tree?cursor=x:y".into()),
        );
        let first = page(&cfg, &hub_page, "", 0, 2, (0, 0));
        assert_eq!(first.entries.len(), 2);
        let (url, at) = parse_cursor(first.next.as_deref().unwrap()).unwrap();
        assert_eq!((url, at), ("", 2));
        let rest = page(&cfg, &hub_page, url, at, 0, (0, 0));
        assert_eq!(rest.entries[0].name, "c");
        let (url, at) = parse_cursor(rest.next.as_deref().unwrap()).unwrap();
        assert_eq!((url, at), ("http://h/tree?cursor=x:y", 0));
        let last = page(&cfg, &Page::new(vec![], None), url, at, 5, (0, 0));
        assert!(last.entries.is_empty() && last.next.is_none());
        assert_eq!(parse_cursor("7").unwrap_err(), Error::Invalid);
        assert_eq!(parse_cursor("x:").unwrap_err(), Error::Invalid);
    }
}
