//! The sorted names of the directories plugins page through (`read-dir`), so that a page after
//! the first is a binary search in a snapshot, not another read and sort of the whole
//! directory. A snapshot is taken by every first page and used by the continuation pages while
//! the directory's identity and times (path, inode, mtime, ctime) are unchanged; at most
//! [`SNAPSHOTS`] directories are held per set of grants, the least recently used dropped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::super::bindings::types::{Attrs, Error};
use super::sorted_names::{NameList, SortedNames};

/// Directories whose snapshots are held at once.
pub const SNAPSHOTS: usize = 8;

/// What names one state of one directory: its path in the grant and its own attributes'
/// times and change token (which holds the inode on Unix).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    rel: PathBuf,
    mtime: (i64, u32),
    ctime: (i64, u32),
    change: Option<String>,
}

impl Key {
    pub fn new(rel: &Path, dir: &Attrs) -> Key {
        Key {
            rel: rel.to_path_buf(),
            mtime: (dir.mtime.seconds, dir.mtime.nanoseconds),
            ctime: (dir.ctime.seconds, dir.ctime.nanoseconds),
            change: dir.change.clone(),
        }
    }
}

#[derive(Default)]
pub struct Snapshots {
    /// Most recently used last.
    held: Mutex<VecDeque<(Key, Arc<SortedNames>)>>,
    scans: AtomicU64,
}

impl Snapshots {
    /// The sorted names of the directory in state `key`: the held snapshot when `reuse` and one
    /// is held, else what `scan` reads (counted), sorted and then held.
    pub fn names(
        &self,
        key: Key,
        reuse: bool,
        scan: impl FnOnce() -> Result<NameList, Error>,
    ) -> Result<Arc<SortedNames>, Error> {
        {
            let mut held = self.held.lock().unwrap();
            if let Some(at) = held.iter().position(|(k, _)| *k == key) {
                let found = held.remove(at).expect("a held snapshot");
                let names = found.1.clone();
                if reuse {
                    held.push_back(found);
                    return Ok(names);
                }
            }
        }
        self.scans.fetch_add(1, Ordering::Relaxed);
        let names = Arc::new(scan()?.sorted());
        let mut held = self.held.lock().unwrap();
        held.retain(|(k, _)| k.rel != key.rel);
        if held.len() >= SNAPSHOTS {
            held.pop_front();
        }
        held.push_back((key, names.clone()));
        Ok(names)
    }

    /// Directory reads made so far (each a whole directory).
    pub fn scans(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &str, mtime: i64) -> Key {
        Key {
            rel: PathBuf::from(dir),
            mtime: (mtime, 0),
            ctime: (mtime, 0),
            change: None,
        }
    }

    fn names(list: &[&str]) -> Result<NameList, Error> {
        Ok(NameList::of(list))
    }

    fn all(names: &SortedNames) -> Vec<&str> {
        names.range(0, names.len()).collect()
    }

    #[test]
    fn a_snapshot_is_reused_until_its_directory_changes_and_held_for_few_directories() {
        let s = Snapshots::default();
        let first = s.names(key("d", 1), true, || names(&["b", "a"])).unwrap();
        assert_eq!(all(&first), ["a", "b"]);
        let again = s.names(key("d", 1), true, || names(&["c"])).unwrap();
        assert_eq!(all(&again), ["a", "b"]);
        assert_eq!(s.scans(), 1);
        // Not reused when asked for a new read, nor after the directory changed.
        s.names(key("d", 1), false, || names(&["a"])).unwrap();
        let changed = s.names(key("d", 2), true, || names(&["x"])).unwrap();
        assert_eq!(all(&changed), ["x"]);
        assert_eq!(s.scans(), 3);
        // One snapshot per directory, and SNAPSHOTS directories at most.
        for d in 0..SNAPSHOTS {
            s.names(key(&format!("o{d}"), 1), true, || names(&["n"]))
                .unwrap();
        }
        assert_eq!(s.held.lock().unwrap().len(), SNAPSHOTS);
        s.names(key("d", 2), true, || names(&["y"])).unwrap();
        assert_eq!(s.scans(), 4 + SNAPSHOTS as u64);
    }
}
