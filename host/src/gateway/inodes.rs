//! The inode table of one mount: mount-relative paths and the inode numbers handed to clients.
//!
//! Plugins are path-based; NFS clients hold numbers. Numbers are given out on first sight of a
//! path and follow it through renames (a renamed directory carries its whole subtree), so a
//! handle stays valid while its file moves. With a journal (`inode_log`) the table and its
//! generation outlive the process, so clients keep their handles across a restart; without
//! one, `generation` tells this run's numbers from an earlier run's. Changes are journaled in
//! memory as they happen; a caller awaits [`InodeTable::durable`] before it replies with a
//! number or a change, and a journal that cannot be written fails that call with `io`. Once
//! the journal has grown past [`COMPACT_FLOOR`] and [`COMPACT_FACTOR`] times what the live
//! names take, `durable` starts an online compaction in the background, so the journal stays
//! proportional to the live table however many names come and go.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::handles::MOUNT_ROOT_INO;
use super::inode_log::{name_len, InodeLog, Record, HEADER_LEN, RESERVE};
use crate::backend::types::Error;

/// A journal is never compacted below this size.
pub const COMPACT_FLOOR: u64 = 4 << 20;
/// A journal is compacted once it is this many times the size of a snapshot of the table.
pub const COMPACT_FACTOR: u64 = 3;

pub struct InodeTable {
    pub generation: u32,
    inner: Mutex<Inner>,
    log: Option<Arc<InodeLog>>,
    /// [`COMPACT_FLOOR`], but for tests.
    compact_floor: u64,
}

struct Inner {
    /// Every name of an inode: more than one for hard links made through nfsgw.
    paths: HashMap<u64, Names>,
    /// Ordered, so that a subtree is one range: "d/" up to "d0" ('0' follows '/').
    inos: BTreeMap<Arc<str>, u64>,
    next: u64,
    /// Numbers below this may have been handed out in an earlier run (journal only).
    reserved: u64,
    /// The bytes the names' records take in a snapshot.
    live_bytes: u64,
}

impl InodeTable {
    /// A table that lives as long as the process.
    pub fn in_memory(generation: u32) -> InodeTable {
        InodeTable {
            generation,
            inner: Mutex::new(Inner::new()),
            log: None,
            compact_floor: COMPACT_FLOOR,
        }
    }

    /// The table kept in the journal at `journal`, or a new one with `generation`.
    pub fn open(journal: &Path, generation: u32) -> std::io::Result<InodeTable> {
        let mut inner = Inner::new();
        let generation = match InodeLog::replay(journal)? {
            Some(replayed) => {
                for skipped in &replayed.skipped {
                    tracing::warn!(
                        journal = %journal.display(),
                        offset = skipped.offset,
                        bytes = skipped.bytes,
                        "skipped a damaged stretch of the inode journal; the records after it are kept"
                    );
                }
                for record in replayed.records {
                    inner.apply(record);
                }
                inner.next = inner.next.max(inner.reserved);
                replayed.generation
            }
            None => generation,
        };
        // Start every run from a compact journal: a reservation, then one record per name.
        inner.reserved = inner.next + RESERVE;
        let mut snapshot = vec![Record::Reserve {
            next: inner.reserved,
        }];
        for (path, &ino) in &inner.inos {
            if ino != MOUNT_ROOT_INO {
                snapshot.push(Record::Name {
                    ino,
                    path: path.to_string(),
                });
            }
        }
        let log = InodeLog::create(journal, generation, &snapshot)?;
        Ok(InodeTable {
            generation,
            inner: Mutex::new(inner),
            log: Some(Arc::new(log)),
            compact_floor: COMPACT_FLOOR,
        })
    }

    /// Makes every change recorded so far durable (one sync shared with concurrent callers);
    /// `io` if the journal cannot be written.
    pub async fn durable(&self) -> Result<(), Error> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        log.durable().await.map_err(|_| Error::Io)?;
        if self.compact_if_grown(log) {
            // Changes outrun the compaction under way: wait for it, so that the journal's size
            // keeps its bound whatever the pace (a stuck one is waited for no longer than a
            // blocking call).
            let done = log.compaction_done();
            let _ = tokio::time::timeout(crate::blocking::DEADLINE, done).await;
        }
        Ok(())
    }

    /// Starts compacting the journal in the background once it has outgrown the live names;
    /// true if a compaction is under way and the journal has grown to twice the size that
    /// started it. The snapshot is taken under the table's lock (cheap: shared paths), the
    /// file work is done outside it.
    fn compact_if_grown(&self, log: &Arc<InodeLog>) -> bool {
        if log.len() <= self.compact_floor {
            return false;
        }
        let inner = self.inner.lock().unwrap();
        let threshold = self
            .compact_floor
            .max(COMPACT_FACTOR * (HEADER_LEN + inner.live_bytes));
        if log.len() <= threshold {
            return false;
        }
        let Some(compaction) = log.begin_compaction() else {
            return log.len() > 2 * threshold;
        };
        let names: Vec<(Arc<str>, u64)> = inner
            .inos
            .iter()
            .filter(|(_, &ino)| ino != MOUNT_ROOT_INO)
            .map(|(path, &ino)| (path.clone(), ino))
            .collect();
        let reserved = inner.reserved;
        drop(inner);
        let (log, generation) = (log.clone(), self.generation);
        tokio::spawn(async move {
            log.compact(compaction, generation, reserved, names).await;
        });
        false
    }

    fn record(&self, record: Record) {
        if let Some(log) = &self.log {
            log.append(&record);
        }
    }

    /// A path of an inode (its first name still in use), if it is known.
    pub fn path(&self, ino: u64) -> Option<Arc<str>> {
        self.inner
            .lock()
            .unwrap()
            .paths
            .get(&ino)
            .map(|names| names.first().clone())
    }

    /// How many names of an inode `matching` accepts.
    pub fn count_names(&self, ino: u64, matching: impl Fn(&str) -> bool) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.paths.get(&ino).map_or(0, |names| {
            names.iter().filter(|name| matching(name)).count()
        })
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
        // The watermark goes first: it is durable before any reply carries the number.
        if self.log.is_some() && inner.next > inner.reserved {
            inner.reserved += RESERVE;
            self.record(Record::Reserve {
                next: inner.reserved,
            });
        }
        inner.add(ino, path.into());
        self.record(Record::Name {
            ino,
            path: path.to_string(),
        });
        ino
    }

    /// A new number for an object just made at `path`. A name created anew never inherits an
    /// inode: whatever the table still knows at or under it (names an earlier run left, of
    /// files gone from a backend changed meanwhile) is forgotten first. A LOOKUP that raced
    /// the making and numbered the new object already sees its number go stale.
    pub fn fresh(&self, path: &str) -> u64 {
        {
            let mut inner = self.inner.lock().unwrap();
            let stale = inner.take_subtree(path);
            if !stale.is_empty() {
                inner.unname(stale);
                self.record(Record::Forget {
                    path: path.to_string(),
                });
            }
        }
        self.ino(path)
    }

    /// Records `new` as another name (a hard link) of the inode of `existing`.
    pub fn link(&self, existing: &str, new: &str) {
        let ino = self.ino(existing);
        let mut inner = self.inner.lock().unwrap();
        inner.forget_subtree(new);
        inner.add(ino, new.into());
        self.record(Record::Name {
            ino,
            path: new.to_string(),
        });
    }

    /// Forgets a path that no longer exists (and everything under it). An inode stays known
    /// while it has another name.
    pub fn forget(&self, path: &str) {
        let mut inner = self.inner.lock().unwrap();
        let gone = inner.take_subtree(path);
        let alone = gone.len() == 1;
        inner.unname(gone);
        // A name just given by a lookup that found nothing is simply taken back.
        if alone
            && self
                .log
                .as_ref()
                .is_some_and(|log| log.take_back_name(path))
        {
            return;
        }
        self.record(Record::Forget {
            path: path.to_string(),
        });
    }

    /// Moves a path and its subtree to a new name; whatever was at `to` is forgotten.
    pub fn rename(&self, from: &str, to: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.rename_subtree(from, to);
        self.record(Record::Rename {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
}

impl Inner {
    fn new() -> Inner {
        let root: Arc<str> = "".into();
        Inner {
            paths: HashMap::from([(MOUNT_ROOT_INO, Names::One(root.clone()))]),
            inos: BTreeMap::from([(root, MOUNT_ROOT_INO)]),
            next: MOUNT_ROOT_INO + 1,
            reserved: 0,
            live_bytes: name_len(""),
        }
    }

    /// Replays one journal record.
    fn apply(&mut self, record: Record) {
        match record {
            Record::Name { ino, path } => {
                self.forget_subtree_only(&path);
                self.add(ino, path.into());
                self.next = self.next.max(ino + 1);
            }
            Record::Forget { path } => self.forget_subtree(&path),
            Record::Rename { from, to } => self.rename_subtree(&from, &to),
            Record::Reserve { next } => self.reserved = self.reserved.max(next),
        }
    }

    fn add(&mut self, ino: u64, path: Arc<str>) {
        self.live_bytes += name_len(&path);
        match self.paths.entry(ino) {
            Entry::Occupied(names) => names.into_mut().push(path.clone()),
            Entry::Vacant(slot) => {
                slot.insert(Names::One(path.clone()));
            }
        }
        self.inos.insert(path, ino);
    }

    /// Removes `path` and every path under it from the path index, returning them.
    fn take_subtree(&mut self, path: &str) -> Vec<(Arc<str>, u64)> {
        let (from, to) = (format!("{path}/"), format!("{path}0"));
        let range = (Bound::Included(from.as_str()), Bound::Excluded(to.as_str()));
        let mut keys: Vec<Arc<str>> = self
            .inos
            .range::<str, _>(range)
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(self.inos.get_key_value(path).map(|(k, _)| k.clone()));
        keys.into_iter()
            .filter_map(|k| self.inos.remove_entry(&k))
            .collect()
    }

    /// Drops names taken out of the path index from their inodes.
    fn unname(&mut self, names: Vec<(Arc<str>, u64)>) {
        for (name, ino) in names {
            if let Some(names) = self.paths.get_mut(&ino) {
                let (dropped, none_left) = names.remove(&name);
                self.live_bytes -= dropped as u64 * name_len(&name);
                if none_left {
                    self.paths.remove(&ino);
                }
            }
        }
    }

    fn forget_subtree(&mut self, path: &str) {
        let gone = self.take_subtree(path);
        self.unname(gone);
    }

    /// Frees one exact name before it is given again (the subtree keeps its own names).
    fn forget_subtree_only(&mut self, path: &str) {
        if let Some((name, ino)) = self.inos.remove_entry(path) {
            self.unname(vec![(name, ino)]);
        }
    }

    fn rename_subtree(&mut self, from: &str, to: &str) {
        self.forget_subtree(to);
        let moved = self.take_subtree(from);
        self.unname(moved.clone());
        for (old, ino) in moved {
            self.add(ino, format!("{to}{}", &old[from.len()..]).into());
        }
    }
}

/// The names of one inode. Nearly every inode has one, which then costs no allocation beside
/// the name itself; hard links made through nfsgw make it a list, never an empty one.
enum Names {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Names {
    fn first(&self) -> &Arc<str> {
        match self {
            Names::One(name) => name,
            Names::Many(names) => &names[0],
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, Arc<str>> {
        match self {
            Names::One(name) => std::slice::from_ref(name).iter(),
            Names::Many(names) => names.iter(),
        }
    }

    fn push(&mut self, name: Arc<str>) {
        match self {
            Names::One(first) => *self = Names::Many(vec![first.clone(), name]),
            Names::Many(names) => names.push(name),
        }
    }

    /// Drops every copy of `name`: how many were dropped, and whether no name is left.
    fn remove(&mut self, name: &str) -> (usize, bool) {
        match self {
            Names::One(only) if &**only == name => (1, true),
            Names::One(_) => (0, false),
            Names::Many(names) => {
                let before = names.len();
                names.retain(|n| &**n != name);
                let left = names.len();
                if left == 1 {
                    *self = Names::One(names.pop().expect("one name"));
                }
                (before - left, left == 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_per_path_and_unique() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a");
        assert_eq!(t.ino("a"), a);
        assert_ne!(t.ino("b"), a);
        assert_eq!(t.ino(""), MOUNT_ROOT_INO);
        assert_eq!(t.path(a).as_deref(), Some("a"));
    }

    #[test]
    fn renaming_a_directory_carries_its_subtree() {
        let t = InodeTable::in_memory(1);
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
        let t = InodeTable::in_memory(1);
        let (a, b) = (t.ino("a"), t.ino("b"));
        t.rename("a", "b");
        assert_eq!(t.path(a).as_deref(), Some("b"));
        assert_eq!(t.path(b), None);
        assert_eq!(t.ino("b"), a);
    }

    #[test]
    fn hard_links_share_an_inode_until_the_last_name_goes() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a");
        t.link("a", "d/b");
        assert_eq!(t.ino("d/b"), a);
        t.forget("a");
        assert_eq!(t.path(a).as_deref(), Some("d/b"));
        t.rename("d", "e");
        assert_eq!(t.path(a).as_deref(), Some("e/b"));
        t.forget("e");
        assert_eq!(t.path(a), None);
    }

    #[test]
    fn an_inode_with_three_names_keeps_the_rest_as_each_goes() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a");
        t.link("a", "b");
        t.link("a", "c");
        assert_eq!(t.count_names(a, |_| true), 3);
        t.forget("b");
        assert_eq!(t.count_names(a, |_| true), 2);
        t.forget("a");
        assert_eq!(t.path(a).as_deref(), Some("c"));
        assert_eq!(t.count_names(a, |n| n == "c"), 1);
        t.link("c", "d");
        t.forget("d");
        t.forget("c");
        assert_eq!(t.path(a), None);
        assert_eq!(t.inner.lock().unwrap().live_bytes, name_len(""));
        // One name costs no allocation beside the name: no bigger than a list's header.
        assert!(std::mem::size_of::<Names>() <= std::mem::size_of::<Vec<Arc<str>>>());
    }

    #[tokio::test]
    async fn a_journaled_table_survives_reopening_and_never_reuses_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 42).unwrap();
        let (a, f) = (t.ino("a"), t.ino("d/f"));
        t.link("a", "hard");
        t.rename("d", "e");
        let gone = t.ino("gone");
        t.durable().await.unwrap();
        t.forget("gone");
        let missing = t.ino("looked up, not there");
        t.forget("looked up, not there");
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 99).unwrap();
        assert_eq!(t.generation, 42, "the generation is the journal's");
        assert_eq!(t.path(f).as_deref(), Some("e/f"));
        assert_eq!(t.ino("hard"), a);
        assert_eq!(t.path(gone), None);
        assert_eq!(t.path(missing), None);
        let fresh = t.ino("new");
        assert!(
            fresh > gone && fresh > f,
            "numbers handed out before are not reused"
        );
        t.durable().await.unwrap();
        drop(t);
        // Reopening again (from the compacted journal) keeps everything.
        let t = InodeTable::open(&journal, 1).unwrap();
        assert_eq!(t.ino("new"), fresh);
        assert_eq!(t.ino("e/f"), f);
    }

    /// Creates and removes `pairs` names, `batch` at a time, each step made durable; returns
    /// the largest journal seen after a step and the last number given.
    async fn churn(t: &InodeTable, journal: &Path, pairs: usize, batch: usize) -> (u64, u64) {
        let (mut largest, mut last) = (0, 0);
        for start in (0..pairs).step_by(batch) {
            for i in start..start + batch {
                last = t.ino(&format!("churn/{i}"));
            }
            t.durable().await.unwrap();
            largest = largest.max(std::fs::metadata(journal).unwrap().len());
            for i in start..start + batch {
                t.forget(&format!("churn/{i}"));
            }
            t.durable().await.unwrap();
            largest = largest.max(std::fs::metadata(journal).unwrap().len());
        }
        (largest, last)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn churn_keeps_the_journal_proportional_to_the_live_names() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let mut t = InodeTable::open(&journal, 5).unwrap();
        t.compact_floor = 64 << 10;
        let kept: Vec<u64> = (0..1000).map(|i| t.ino(&format!("kept/{i}"))).collect();
        t.link("kept/0", "kept/hard");
        t.rename("kept/1", "kept/moved");
        t.durable().await.unwrap();
        let live = HEADER_LEN + t.inner.lock().unwrap().live_bytes;
        let batch = 500;
        let (largest, last) = churn(&t, &journal, 200_000, batch).await;
        let log = t.log.clone().unwrap();
        log.compaction_done().await;
        let compactions = log.compactions();
        // Without compaction the journal would hold every record of the churn: 400k of them.
        // With it, at most twice the size that starts one, and a step more.
        let batch_bytes = 2 * batch as u64 * name_len("churn/200000");
        let threshold = t.compact_floor.max(COMPACT_FACTOR * (live + batch_bytes));
        let bound = 2 * threshold + batch_bytes;
        assert!(compactions >= 20, "{compactions} compactions");
        assert!(
            largest <= bound,
            "journal of {largest} bytes, bound {bound}"
        );
        assert!(std::fs::metadata(&journal).unwrap().len() <= bound);
        drop((t, log));
        let t = InodeTable::open(&journal, 1).unwrap();
        assert_eq!(t.generation, 5);
        assert_eq!(t.find("kept/hard"), Some(kept[0]));
        assert_eq!(t.path(kept[1]).as_deref(), Some("kept/moved"));
        for (i, &ino) in kept.iter().enumerate().skip(2) {
            assert_eq!(t.find(&format!("kept/{i}")), Some(ino));
        }
        assert_eq!(t.path(last), None);
        assert_eq!(t.inner.lock().unwrap().inos.len(), 1 + 1000 + 1);
        assert!(
            t.ino("new") > last,
            "numbers handed out before are not reused"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_in_the_middle_of_a_compaction_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let mut t = InodeTable::open(&journal, 5).unwrap();
        t.compact_floor = 16 << 10;
        let kept = t.ino("kept");
        let (_, last) = churn(&t, &journal, 20_000, 100).await;
        let log = t.log.clone().unwrap();
        log.compaction_done().await;
        assert!(log.compactions() > 0);
        // The crash: a compaction had written half its snapshot, then the process died.
        let data = std::fs::read(&journal).unwrap();
        std::fs::write(journal.with_extension("tmp"), &data[..data.len() / 2]).unwrap();
        let after = t.ino("after");
        t.durable().await.unwrap();
        drop((t, log));
        let t = InodeTable::open(&journal, 1).unwrap();
        assert_eq!((t.find("kept"), t.find("after")), (Some(kept), Some(after)));
        assert_eq!(t.path(last), None);
        assert!(t.ino("new") > after.max(last));
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 1).unwrap();
        assert_eq!(t.find("after"), Some(after));
    }

    #[tokio::test]
    async fn a_name_made_anew_gets_a_new_number_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 1).unwrap();
        let (a, old) = (t.ino("a"), t.ino("d/old"));
        t.link("a", "d");
        t.durable().await.unwrap();
        drop(t);
        // The backend lost "a" and "d" while nfsgw was down; a new object is made at "d".
        let t = InodeTable::open(&journal, 1).unwrap();
        let made = t.fresh("d");
        assert!(made != a && made != old);
        assert_eq!(t.path(made).as_deref(), Some("d"));
        assert_eq!(
            t.path(a).as_deref(),
            Some("a"),
            "the old file keeps its other name"
        );
        assert_eq!(t.path(old), None, "nothing is under a name made anew");
        assert_eq!(t.fresh("new"), t.ino("new"));
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 1).unwrap();
        assert_eq!((t.find("d"), t.find("d/old")), (Some(made), None));
    }

    #[test]
    fn forget_drops_the_subtree() {
        let t = InodeTable::in_memory(1);
        let (d, f) = (t.ino("d"), t.ino("d/f"));
        t.forget("d");
        assert_eq!((t.path(d), t.path(f)), (None, None));
    }
}
