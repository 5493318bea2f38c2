//! The inode table of one mount: mount-relative paths and the inode numbers handed to clients.
//!
//! Plugins are path-based; NFS clients hold numbers. Numbers are given out on first sight of a
//! path and follow it through renames (a renamed directory carries its whole subtree), so a
//! handle stays valid while its file moves. The names are kept as a tree (`name_tree`), so
//! the directories above a numbered path are numbered too. With a journal (`inode_log`) the
//! table and its generation outlive the process, so clients keep their handles across a restart; without
//! one, `generation` tells this run's numbers from an earlier run's. Changes are journaled in
//! memory as they happen; a caller awaits [`InodeTable::durable`] before it replies with a
//! number or a change, and a journal that cannot be written fails that call with `io`. Once
//! the journal has grown past [`COMPACT_FLOOR`] and [`COMPACT_FACTOR`] times what the live
//! names take, `durable` starts an online compaction in the background, so the journal stays
//! proportional to the live table however many names come and go.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::handles::MOUNT_ROOT_INO;
use super::inode_log::{name_len, InodeLog, Record, HEADER_LEN, RESERVE};
use super::name_tree::{NameTree, Slot, ROOT};
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
    tree: NameTree,
    next: u64,
    /// Numbers below this may have been handed out in an earlier run (journal only).
    reserved: u64,
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
                // Directories a record names without a record of their own are numbered
                // past every number in the journal.
                for record in &replayed.records {
                    match record {
                        Record::Name { ino, .. } => inner.next = inner.next.max(ino + 1),
                        Record::Reserve { next } => inner.reserved = inner.reserved.max(*next),
                        _ => {}
                    }
                }
                inner.next = inner.next.max(inner.reserved);
                for record in replayed.records {
                    inner.apply(record);
                }
                replayed.generation
            }
            None => generation,
        };
        // Start every run from a compact journal: a reservation, then one record per name.
        inner.tree.sweep();
        inner.reserved = inner.next + RESERVE;
        let mut snapshot = vec![Record::Reserve {
            next: inner.reserved,
        }];
        inner.tree.snapshot().each(|ino, path| {
            snapshot.push(Record::Name {
                ino,
                path: path.to_string(),
            })
        });
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
    /// started it. The nodes are copied under the table's lock, the paths are spelled out and
    /// written outside it. The live names' size is estimated from their components, and
    /// never below the last snapshot's size, so a snapshot never starts another at once.
    fn compact_if_grown(&self, log: &Arc<InodeLog>) -> bool {
        if log.len() <= self.compact_floor {
            return false;
        }
        let inner = self.inner.lock().unwrap();
        let threshold = self
            .compact_floor
            .max(COMPACT_FACTOR * (HEADER_LEN + inner.live_bytes()).max(log.snapshot_len()));
        if log.len() <= threshold {
            return false;
        }
        let Some(compaction) = log.begin_compaction() else {
            return log.len() > 2 * threshold;
        };
        let snapshot = inner.tree.snapshot();
        let reserved = inner.reserved;
        drop(inner);
        let (log, generation) = (log.clone(), self.generation);
        tokio::spawn(async move {
            log.compact(compaction, generation, reserved, snapshot)
                .await;
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
        let inner = self.inner.lock().unwrap();
        let path = inner.tree.paths(ino).next();
        path.map(Arc::from)
    }

    /// How many names of an inode `matching` accepts.
    pub fn count_names(&self, ino: u64, matching: impl Fn(&str) -> bool) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.tree.paths(ino).filter(|name| matching(name)).count()
    }

    /// The inode of a path, if it has one.
    pub fn find(&self, path: &str) -> Option<u64> {
        self.inner.lock().unwrap().tree.find(path)
    }

    /// The inode of a path, given a new number on first sight (as are the directories above
    /// it that have none yet).
    pub fn ino(&self, path: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let slot = inner.numbered(path, self.log.as_deref());
        inner.tree.ino_of(slot)
    }

    /// The inodes of the entries `names` of the directory `dir`, each numbered on first
    /// sight, as [`InodeTable::ino`] would: the directory is found once for them all.
    pub fn ino_entries<'n>(&self, dir: &str, names: impl IntoIterator<Item = &'n str>) -> Vec<u64> {
        let log = self.log.as_deref();
        let mut inner = self.inner.lock().unwrap();
        let parent = inner.numbered(dir, log);
        let mut inos = Vec::new();
        for name in names {
            let ino = match inner.tree.child(parent, name) {
                Some(slot) => inner.tree.ino_of(slot),
                None => {
                    let path = if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    };
                    let ino = inner.number(&path, log);
                    inner.tree.add(parent, name, ino);
                    ino
                }
            };
            inos.push(ino);
        }
        inos
    }

    /// A new number for an object just made at `path`. A name created anew never inherits an
    /// inode: whatever the table still knows at or under it (names an earlier run left, of
    /// files gone from a backend changed meanwhile) is forgotten first. A LOOKUP that raced
    /// the making and numbered the new object already sees its number go stale.
    pub fn fresh(&self, path: &str) -> u64 {
        {
            let mut inner = self.inner.lock().unwrap();
            if let Some(slot) = inner.tree.slot(path).filter(|&s| s != ROOT) {
                inner.tree.kill(slot);
                inner.tree.sweep_if_due();
                self.record(Record::Forget {
                    path: path.to_string(),
                });
            }
        }
        self.ino(path)
    }

    /// Records `new` as another name (a hard link) of the inode of `existing`; whatever was
    /// at `new` is forgotten.
    pub fn link(&self, existing: &str, new: &str) {
        let ino = self.ino(existing);
        let mut inner = self.inner.lock().unwrap();
        if let Some(slot) = inner.tree.slot(new) {
            if inner.tree.ino_of(slot) == ino || slot == ROOT {
                return;
            }
            inner.tree.kill(slot);
            self.record(Record::Forget {
                path: new.to_string(),
            });
        }
        let (parent, name) = inner.parent_of(new, self.log.as_deref());
        inner.tree.add(parent, name, ino);
        inner.tree.sweep_if_due();
        self.record(Record::Name {
            ino,
            path: new.to_string(),
        });
    }

    /// Forgets a path that no longer exists (and everything under it). An inode stays known
    /// while it has another name.
    pub fn forget(&self, path: &str) {
        let mut inner = self.inner.lock().unwrap();
        let Some(slot) = inner.tree.slot(path).filter(|&s| s != ROOT) else {
            return;
        };
        inner.tree.kill(slot);
        inner.tree.sweep_if_due();
        // A name just given by a lookup that found nothing is simply taken back (nothing can
        // have been named under it since: that would have been journaled after it).
        if self
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
        let moving = inner.tree.slot(from).filter(|&s| s != ROOT);
        let target = moving.map(|_| inner.parent_of(to, self.log.as_deref()));
        inner.rename(moving, to, target);
        inner.tree.sweep_if_due();
        self.record(Record::Rename {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
}

impl Inner {
    fn new() -> Inner {
        Inner {
            tree: NameTree::new(MOUNT_ROOT_INO),
            next: MOUNT_ROOT_INO + 1,
            reserved: 0,
        }
    }

    /// The bytes the names' records would take in a snapshot, estimated from their last
    /// components.
    fn live_bytes(&self) -> u64 {
        self.tree.len() as u64 * name_len("") + self.tree.text_len() as u64
    }

    /// Replays one journal record; directories it needs that have no number get new ones.
    fn apply(&mut self, record: Record) {
        match record {
            Record::Name { ino, path } => match self.tree.slot(&path) {
                Some(slot) => self.tree.set_ino(slot, ino),
                None => {
                    let (parent, name) = self.parent_of(&path, None);
                    self.tree.add(parent, name, ino);
                }
            },
            Record::Forget { path } => {
                if let Some(slot) = self.tree.slot(&path).filter(|&s| s != ROOT) {
                    self.tree.kill(slot);
                }
            }
            Record::Rename { from, to } => {
                let moving = self.tree.slot(&from).filter(|&s| s != ROOT);
                let target = moving.map(|_| self.parent_of(&to, None));
                self.rename(moving, &to, target);
            }
            Record::Reserve { next } => self.reserved = self.reserved.max(next),
        }
        self.tree.sweep_if_due();
    }

    /// The node of `path`, numbering it and the directories above it that have no number
    /// yet; each new number is journaled in `log` (none while the journal is replayed).
    fn numbered(&mut self, path: &str, log: Option<&InodeLog>) -> Slot {
        if let Some(slot) = self.tree.slot(path) {
            return slot;
        }
        let (parent, name) = self.parent_of(path, log);
        let ino = self.number(path, log);
        self.tree.add(parent, name, ino)
    }

    /// The node of the directory above `path` (numbered if it had no number) and the last
    /// component of `path`.
    fn parent_of<'p>(&mut self, path: &'p str, log: Option<&InodeLog>) -> (Slot, &'p str) {
        match path.rsplit_once('/') {
            None => (ROOT, path),
            Some((dir, name)) => (self.numbered(dir, log), name),
        }
    }

    /// A new number for `path`, journaled in `log`; the watermark goes first, so that it is
    /// durable before any reply carries the number.
    fn number(&mut self, path: &str, log: Option<&InodeLog>) -> u64 {
        let ino = self.next;
        self.next += 1;
        if let Some(log) = log {
            if self.next > self.reserved {
                self.reserved += RESERVE;
                log.append(&Record::Reserve {
                    next: self.reserved,
                });
            }
            log.append(&Record::Name {
                ino,
                path: path.to_string(),
            });
        }
        ino
    }

    /// Moves the node `moving` to `target` (the directory and name of `to`), forgetting what
    /// was at `to`. A directory moved under itself cannot be reached any more: it is
    /// forgotten.
    fn rename(&mut self, moving: Option<Slot>, to: &str, target: Option<(Slot, &str)>) {
        let replaced = self.tree.slot(to).filter(|&s| s != ROOT);
        if replaced.is_some() && replaced == moving {
            return;
        }
        if let Some(slot) = replaced {
            self.tree.kill(slot);
        }
        let (Some(slot), Some((parent, name))) = (moving, target) else {
            return;
        };
        if self.tree.is_within(parent, slot) {
            self.tree.kill(slot);
        } else {
            self.tree.move_to(slot, parent, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

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
        let mut inner = t.inner.lock().unwrap();
        inner.tree.sweep();
        assert_eq!((inner.tree.len(), inner.live_bytes()), (0, 0));
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
        // What a snapshot of the live names takes (a reservation record is a few bytes more).
        let mut live = HEADER_LEN + 32;
        let snapshot = t.inner.lock().unwrap().tree.snapshot();
        snapshot.each(|_, path| live += name_len(path));
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
        let mut inner = t.inner.lock().unwrap();
        inner.tree.sweep();
        assert_eq!(
            inner.tree.len(),
            2 + 1000 + 1,
            "kept, churn and their names"
        );
        drop(inner);
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

    /// A change to the table, over paths of at most three components from {a, b, c}.
    #[derive(Clone, Debug)]
    enum Step {
        Ino(String),
        /// A directory's entries numbered together, as a listing does.
        Entries(String, Vec<&'static str>),
        Fresh(String),
        Link(String, String),
        Forget(String),
        Rename(String, String),
        /// Close the table and open it again from its journal.
        Reopen,
    }

    fn a_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(vec!["a", "b", "c"]), 1..=3)
            .prop_map(|parts| parts.join("/"))
    }

    fn a_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => a_path().prop_map(Step::Ino),
            1 => (
                prop_oneof![Just(String::new()), a_path()],
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "c"]), 0..4)
            )
                .prop_map(|(dir, names)| Step::Entries(dir, names)),
            1 => a_path().prop_map(Step::Fresh),
            1 => (a_path(), a_path()).prop_map(|(a, b)| Step::Link(a, b)),
            2 => a_path().prop_map(Step::Forget),
            2 => (a_path(), a_path()).prop_map(|(a, b)| Step::Rename(a, b)),
            1 => Just(Step::Reopen),
        ]
    }

    fn every_path() -> Vec<String> {
        let names = ["a", "b", "c"];
        let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        for depth in 0..2 {
            let last: Vec<String> = all
                .iter()
                .filter(|p| p.matches('/').count() == depth)
                .cloned()
                .collect();
            for p in last {
                all.extend(names.iter().map(|n| format!("{p}/{n}")));
            }
        }
        all
    }

    /// The reference: every known path and its number, spelled out, changed by scanning.
    #[derive(Default)]
    struct Reference {
        names: BTreeMap<String, u64>,
        /// Every number ever seen, so that a new one is known to be new.
        seen: HashSet<u64>,
    }

    impl Reference {
        fn under(path: &str, of: &str) -> bool {
            path == of || path.starts_with(&format!("{of}/"))
        }

        fn remove_subtree(&mut self, of: &str) {
            self.names.retain(|p, _| !Self::under(p, of));
        }

        /// Takes the table's number for a path the reference did not know: it must be new.
        fn adopt(&mut self, t: &InodeTable, path: &str) -> Result<(), TestCaseError> {
            let ino = t
                .find(path)
                .ok_or_else(|| TestCaseError::fail(format!("{path} unnumbered")))?;
            prop_assert!(self.seen.insert(ino), "{path} got the old number {ino}");
            self.names.insert(path.to_string(), ino);
            Ok(())
        }

        /// Numbers the directories above `path` that the reference does not know.
        fn ancestors(&mut self, t: &InodeTable, path: &str) -> Result<(), TestCaseError> {
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                let dir = &path[..at + i];
                if !self.names.contains_key(dir) {
                    self.adopt(t, dir)?;
                }
                at += i + 1;
            }
            Ok(())
        }

        fn ino(&mut self, t: &InodeTable, path: &str) -> Result<u64, TestCaseError> {
            let ino = t.ino(path);
            self.numbered(t, path, ino)?;
            Ok(ino)
        }

        /// Checks the number the table gave `path` (and the directories above it).
        fn numbered(&mut self, t: &InodeTable, path: &str, ino: u64) -> Result<(), TestCaseError> {
            match self.names.get(path) {
                Some(&known) => prop_assert_eq!(ino, known, "{}", path),
                None => {
                    self.ancestors(t, path)?;
                    self.adopt(t, path)?;
                    prop_assert_eq!(self.names[path], ino);
                }
            }
            Ok(())
        }
    }

    fn play(
        t: &mut InodeTable,
        model: &mut Reference,
        step: Step,
        journal: &Path,
    ) -> Result<(), TestCaseError> {
        match step {
            Step::Ino(p) => {
                model.ino(t, &p)?;
            }
            Step::Entries(dir, names) => {
                let inos = t.ino_entries(&dir, names.iter().copied());
                prop_assert_eq!(inos.len(), names.len());
                if !dir.is_empty() && !model.names.contains_key(&dir) {
                    model.ancestors(t, &dir)?;
                    model.adopt(t, &dir)?;
                }
                for (name, ino) in names.iter().zip(inos) {
                    let path = if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    };
                    model.numbered(t, &path, ino)?;
                }
            }
            Step::Fresh(p) => {
                model.remove_subtree(&p);
                let ino = t.fresh(&p);
                model.ancestors(t, &p)?;
                model.adopt(t, &p)?;
                prop_assert_eq!(model.names[&p], ino);
            }
            Step::Link(a, b) => {
                let ino = model.ino(t, &a)?;
                t.link(&a, &b);
                if model.names.get(&b) != Some(&ino) {
                    model.remove_subtree(&b);
                    model.ancestors(t, &b)?;
                    model.names.insert(b, ino);
                }
            }
            Step::Forget(p) => {
                t.forget(&p);
                model.remove_subtree(&p);
            }
            Step::Rename(a, b) => {
                t.rename(&a, &b);
                if a == b && model.names.contains_key(&a) {
                    return Ok(());
                }
                let moved: Vec<(String, u64)> = model
                    .names
                    .iter()
                    .filter(|(p, _)| Reference::under(p, &a))
                    .map(|(p, &i)| (p.clone(), i))
                    .collect();
                model.remove_subtree(&b);
                model.remove_subtree(&a);
                // A directory moved under itself is forgotten.
                if !moved.is_empty() && !Reference::under(&b, &a) {
                    model.ancestors(t, &b)?;
                    for (p, ino) in moved {
                        model.names.insert(format!("{b}{}", &p[a.len()..]), ino);
                    }
                }
            }
            Step::Reopen => {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(t.durable())
                    .unwrap();
                *t = InodeTable::open(journal, 1).unwrap();
            }
        }
        Ok(())
    }

    proptest! {
        /// The table agrees with a reference that keeps every path spelled out: after every
        /// step, each path has the number the reference has (or none), and each number's
        /// names are the reference's. Numbers are never given twice, across reopening too.
        #[test]
        fn agrees_with_a_table_of_whole_paths(
            steps in proptest::collection::vec(a_step(), 1..60),
            floor in proptest::sample::select(vec![0usize, 3, 1024]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let journal = dir.path().join("m.inodes");
            let mut t = InodeTable::open(&journal, 1).unwrap();
            t.inner.lock().unwrap().tree.set_floors(floor, floor);
            let mut model = Reference::default();
            let all = every_path();
            for step in steps {
                play(&mut t, &mut model, step.clone(), &journal)?;
                t.inner.lock().unwrap().tree.set_floors(floor, floor);
                for p in &all {
                    prop_assert_eq!(t.find(p), model.names.get(p).copied(), "{} after {:?}", p, step);
                }
                let mut by_ino: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
                for (p, ino) in &model.names {
                    by_ino.entry(*ino).or_default().push(p);
                }
                for (ino, names) in by_ino {
                    let path = t.path(ino).map(|p| p.to_string());
                    prop_assert!(path.as_ref().is_some_and(|p| names.contains(&p)), "{ino}: {path:?}, not one of {names:?}");
                    prop_assert_eq!(t.count_names(ino, |_| true), names.len());
                }
            }
        }
    }
}
