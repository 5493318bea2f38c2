//! Pages of a directory whose whole listing the plugin holds: the cursor is the index of the
//! page's first entry, as a decimal string.

use crate::{DirEntry, DirPage};

/// The page of `items` starting at index `cursor` (none, or not a number: 0), at most `limit`
/// entries (at least one), each made by `entry`.
pub fn page_by_index<T>(
    items: &[T],
    cursor: Option<&str>,
    limit: u32,
    entry: impl Fn(&T) -> DirEntry,
) -> DirPage {
    let start = cursor
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let end = start.saturating_add(limit.max(1) as usize).min(items.len());
    DirPage {
        entries: items[start..end].iter().map(entry).collect(),
        next: (end < items.len()).then(|| end.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(page: &DirPage) -> Vec<&str> {
        page.entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn entry(name: &&str) -> DirEntry {
        DirEntry {
            name: name.to_string(),
            attrs: None,
        }
    }

    #[test]
    fn pages_follow_each_other_to_the_end() {
        let items = ["a", "b", "c"];
        let first = page_by_index(&items, None, 2, entry);
        assert_eq!(
            (names(&first), first.next.as_deref()),
            (vec!["a", "b"], Some("2"))
        );
        let last = page_by_index(&items, first.next.as_deref(), 2, entry);
        assert_eq!((names(&last), last.next.as_deref()), (vec!["c"], None));
    }

    #[test]
    fn a_zero_limit_still_moves_and_a_cursor_past_the_end_is_empty() {
        let items = ["a", "b"];
        assert_eq!(names(&page_by_index(&items, None, 0, entry)), vec!["a"]);
        let past = page_by_index(&items, Some("9"), 5, entry);
        assert!(past.entries.is_empty() && past.next.is_none());
    }
}
