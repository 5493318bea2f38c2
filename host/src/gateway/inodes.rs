//! The inode table of one mount: mount-relative paths and the inode numbers handed to clients.
//!
//! Plugins are path-based; NFS clients hold numbers. Numbers are given out on first sight of a
//! path and follow it through renames (a renamed directory carries its whole subtree), so a
//! handle stays valid while its file moves. The table lives in memory for now: `generation`
//! distinguishes its numbers from an earlier run's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::handles::MOUNT_ROOT_INO;

pub struct InodeTable {
    pub generation: u32,
    inner: Mutex<Inner>,
}

struct Inner {
    paths: HashMap<u64, Arc<str>>,
    inos: HashMap<Arc<str>, u64>,
    next: u64,
}

impl InodeTable {
    pub fn new(generation: u32) -> InodeTable {
        let root: Arc<str> = "".into();
        let inner = Inner {
            paths: HashMap::from([(MOUNT_ROOT_INO, root.clone())]),
            inos: HashMap::from([(root, MOUNT_ROOT_INO)]),
            next: MOUNT_ROOT_INO + 1,
        };
        InodeTable {
            generation,
            inner: Mutex::new(inner),
        }
    }

    /// The path of an inode, if it is known.
    pub fn path(&self, ino: u64) -> Option<Arc<str>> {
        self.inner.lock().unwrap().paths.get(&ino).cloned()
    }

    /// The inode of a path, if it has one.
    pub fn find(&self, path: &str) -> Option<u64> {
        self.inner.lock().unwrap().inos.get(path).copied()
    }

    /// The inode of a path, given a new number on first sight.
    pub fn ino(&self, path: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        if let Some(&ino) = inner.inos.get(path) {
            return ino;
        }
        let ino = inner.next;
        inner.next += 1;
        let path: Arc<str> = path.into();
        inner.paths.insert(ino, path.clone());
        inner.inos.insert(path, ino);
        ino
    }

    /// Forgets a path that no longer exists (and everything under it).
    pub fn forget(&self, path: &str) {
        let mut inner = self.inner.lock().unwrap();
        for (_, ino) in inner.take_subtree(path) {
            inner.paths.remove(&ino);
        }
    }

    /// Moves a path and its subtree to a new name; whatever was at `to` is forgotten.
    pub fn rename(&self, from: &str, to: &str) {
        let mut inner = self.inner.lock().unwrap();
        for (_, ino) in inner.take_subtree(to) {
            inner.paths.remove(&ino);
        }
        for (old, ino) in inner.take_subtree(from) {
            let new: Arc<str> = format!("{to}{}", &old[from.len()..]).into();
            inner.paths.insert(ino, new.clone());
            inner.inos.insert(new, ino);
        }
    }
}

impl Inner {
    /// Removes `path` and every path under it from the path index, returning them.
    fn take_subtree(&mut self, path: &str) -> Vec<(Arc<str>, u64)> {
        let prefix = format!("{path}/");
        let keys: Vec<Arc<str>> = self
            .inos
            .keys()
            .filter(|p| &***p == path || p.starts_with(&prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.inos.remove_entry(&k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_per_path_and_unique() {
        let t = InodeTable::new(1);
        let a = t.ino("a");
        assert_eq!(t.ino("a"), a);
        assert_ne!(t.ino("b"), a);
        assert_eq!(t.ino(""), MOUNT_ROOT_INO);
        assert_eq!(t.path(a).as_deref(), Some("a"));
    }

    #[test]
    fn renaming_a_directory_carries_its_subtree() {
        let t = InodeTable::new(1);
        let (d, f, other) = (t.ino("d"), t.ino("d/x/f"), t.ino("dd"));
        t.rename("d", "e");
        assert_eq!(t.path(d).as_deref(), Some("e"));
        assert_eq!(t.path(f).as_deref(), Some("e/x/f"));
        assert_eq!(
            t.path(other).as_deref(),
            Some("dd"),
            "a sibling sharing a prefix stays"
        );
        assert_eq!(t.ino("e/x/f"), f);
        assert_ne!(t.ino("d"), d, "the old name is free for a new file");
    }

    #[test]
    fn rename_over_an_existing_name_forgets_the_old_file() {
        let t = InodeTable::new(1);
        let (a, b) = (t.ino("a"), t.ino("b"));
        t.rename("a", "b");
        assert_eq!(t.path(a).as_deref(), Some("b"));
        assert_eq!(t.path(b), None);
        assert_eq!(t.ino("b"), a);
    }

    #[test]
    fn forget_drops_the_subtree() {
        let t = InodeTable::new(1);
        let (d, f) = (t.ino("d"), t.ino("d/f"));
        t.forget("d");
        assert_eq!((t.path(d), t.path(f)), (None, None));
    }
}
