//! The inode table of one mount: mount-relative paths and the inode numbers handed to clients.
//!
//! Plugins are path-based; NFS clients hold numbers. Numbers are given out on first sight of a
//! path and follow it through renames (a renamed directory carries its whole subtree), so a
//! handle stays valid while its file moves. The names are kept as a tree (`name_tree`), so
//! the directories above a numbered path are numbered too. With a journal (`inode_log`) the
//! table and its generation outlive the process, so clients keep their handles across a
//! restart; without one, `generation` tells this run's numbers from an earlier run's. Changes
//! are journaled in memory as they happen; a caller awaits [`InodeTable::durable`] before it
//! replies with a number or a change, and a journal that cannot be written fails that call
//! with `io`. Once the journal has grown past [`COMPACT_FLOOR`] and [`COMPACT_FACTOR`] times
//! what the live names take, `durable` starts an online compaction in the background, so the
//! journal stays proportional to the live table however many names come and go.
//!
//! A journaled table keeps at most `memory_names` names in memory. Past that, the least
//! recently used names with nothing under them in memory move to the cold tier
//! (`cold_names`), a B-tree file beside the journal, and come back when a lookup or a handle
//! needs them. A call first runs where it is called, on the names in memory; a call that
//! needs the cold tier runs again on the blocking pool, holding the table's lock while it
//! reads the file. While such a call holds or awaits the lock, calls that would wait for it
//! on an async worker go to the blocking pool too, so no async worker waits on the disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::cold_names::{ColdChange, ColdError, ColdNames, ColdRow, ColdView, LazyCold};
use super::handles::MOUNT_ROOT_INO;
#[cfg(test)]
use super::inode_log::RELAXED_BYTES;
use super::inode_log::{name_len, InodeLog, Record, Replayed, HEADER_LEN, RESERVE};
use super::name_tree::{NameTree, Slot, Snapshot, MAX_DEPTH, ROOT};
use crate::backend::types::Error;
use prometheus_client::metrics::gauge::Gauge;

/// A journal is never compacted below this size.
pub const COMPACT_FLOOR: u64 = 4 << 20;
/// A journal is compacted once it is this many times the size of a snapshot of the table.
pub const COMPACT_FACTOR: u64 = 3;
/// Names moved to the cold tier in one write (the table's lock is held meanwhile).
const EVICT_BATCH: usize = 1024;

pub struct InodeTable {
    pub generation: u32,
    inner: Arc<Mutex<Inner>>,
    log: Option<Arc<InodeLog>>,
    /// None for a table without a journal: it keeps every name in memory.
    cold: Option<Arc<LazyCold>>,
    /// Names kept in memory; past this the least recently used go to the cold tier.
    memory_names: usize,
    /// A move to the cold tier is under way.
    evicting: Arc<AtomicBool>,
    /// Calls on the blocking pool that hold, or wait for, the table's lock to reach the cold
    /// tier's file.
    on_disk: Arc<AtomicUsize>,
    /// Where the names in memory and in the cold tier are reported.
    gauges: Option<(Gauge, Gauge)>,
    /// [`COMPACT_FLOOR`], but for tests.
    compact_floor: u64,
}

struct Inner {
    tree: NameTree,
    next: u64,
    /// Numbers below this may have been handed out in an earlier run (journal only).
    reserved: u64,
    /// Some names have been moved to the cold tier.
    has_cold: bool,
    /// Names in the cold tier (those under a forgotten directory included, until they are
    /// met and dropped).
    cold_names: usize,
}

/// Why a call on the names did not complete.
#[derive(Debug)]
enum Miss {
    /// It needs the cold tier, which an async worker may not read: run it on the blocking pool.
    Cold,
    /// The cold tier's file failed.
    Failed(ColdError),
}

/// How a call may reach the cold tier.
enum Cold<'c> {
    /// Not from here: a call that needs it misses with [`Miss::Cold`].
    Away,
    Open(&'c mut ColdChange),
}

/// A call on the names, given the table, the cold tier and the journal.
trait Call<R>: FnOnce(&mut Inner, &mut Cold<'_>, Option<&InodeLog>) -> Result<R, Miss> {}
impl<R, F: FnOnce(&mut Inner, &mut Cold<'_>, Option<&InodeLog>) -> Result<R, Miss>> Call<R> for F {}

impl InodeTable {
    /// A table that lives as long as the process, all in memory.
    pub fn in_memory(generation: u32) -> InodeTable {
        InodeTable {
            generation,
            inner: Arc::new(Mutex::new(Inner::new())),
            log: None,
            cold: None,
            memory_names: usize::MAX,
            evicting: Arc::new(AtomicBool::new(false)),
            on_disk: Arc::new(AtomicUsize::new(0)),
            gauges: None,
            compact_floor: COMPACT_FLOOR,
        }
    }

    /// The table kept in the journal at `journal`, or a new one with `generation`, holding at
    /// most `memory_names` names in memory (the rest in a cold tier made anew beside it). The
    /// bound holds while the journal is replayed too (`replay_into`).
    pub fn open(
        journal: &Path,
        generation: u32,
        memory_names: usize,
    ) -> std::io::Result<InodeTable> {
        let cold = LazyCold::new(journal.with_extension("cold"));
        let inner = Arc::new(Mutex::new(Inner::new()));
        let generation = match Replayed::open(journal)? {
            Some(replayed) => {
                replay_into(&replayed, &inner, &cold, memory_names, journal)?;
                replayed.generation
            }
            None => generation,
        };
        let log = {
            let mut table = inner.lock().unwrap();
            // Start every run from a compact journal: a reservation, then one record per name.
            table.tree.sweep();
            table.reserved = table.next + RESERVE;
            let reserve = [Record::Reserve {
                next: table.reserved,
            }];
            match cold.get().filter(|_| table.has_cold) {
                Some(tier) => {
                    let names = LiveNames {
                        tree: table.tree.snapshot(),
                        cold: Some(tier.view().map_err(cold_io)?),
                    };
                    InodeLog::create(journal, generation, &reserve, |f| names.each(f))?
                }
                None => InodeLog::create(journal, generation, &reserve, |name| {
                    table.tree.each(name);
                    Ok(())
                })?,
            }
        };
        // The replay moves names in batches: the last batch's overflow goes now.
        if inner.lock().unwrap().tree.len() > memory_names {
            if let Some(made) = cold.make() {
                evict(&inner, &made, memory_names).map_err(cold_io)?;
            }
        }
        Ok(InodeTable {
            generation,
            inner,
            log: Some(Arc::new(log)),
            cold: Some(Arc::new(cold)),
            memory_names,
            evicting: Arc::new(AtomicBool::new(false)),
            on_disk: Arc::new(AtomicUsize::new(0)),
            gauges: None,
            compact_floor: COMPACT_FLOOR,
        })
    }

    /// Reports the names the table holds in memory and in its cold tier as `mount`'s.
    pub fn reporting_as(mut self, mount: &str) -> InodeTable {
        self.gauges = Some(crate::metrics::inode_names(mount));
        self.take_stock();
        self
    }

    /// Sets the gauges and tells whether memory holds more names than its bound, in one hold
    /// of the table's lock; nothing, and `false`, while the disk holds it (the call that holds
    /// it takes stock when it is done).
    fn take_stock(&self) -> bool {
        let Some(inner) = self.memory() else {
            return false;
        };
        if let Some((memory, cold)) = &self.gauges {
            memory.set(inner.tree.len() as i64);
            cold.set(inner.cold_names as i64);
        }
        inner.tree.len() > self.memory_names
    }

    /// Makes every change durable, the relaxed forgets included (before the process exits).
    pub async fn flush(&self) -> Result<(), Error> {
        match &self.log {
            Some(log) => log.flush().await.map_err(|_| Error::Io),
            None => Ok(()),
        }
    }

    /// Moves names to the cold tier if memory holds too many, and reports the new counts.
    async fn keep_bound(&self) {
        if self.take_stock() {
            self.move_to_cold().await;
            self.take_stock();
        }
    }

    /// Makes every change recorded so far durable (one sync shared with concurrent callers);
    /// `io` if the journal cannot be written. Then moves names to the cold tier if memory
    /// holds too many.
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
        self.keep_bound().await;
        Ok(())
    }

    /// Starts compacting the journal in the background once it has outgrown the live names;
    /// true if a compaction is under way and the journal has grown to twice the size that
    /// started it. The nodes are copied, and a view of the cold tier taken, under the table's
    /// lock; the paths are spelled out and written outside it. The live names' size is
    /// estimated from their components, and never below the last snapshot's size, so a
    /// snapshot never starts another at once.
    fn compact_if_grown(&self, log: &Arc<InodeLog>) -> bool {
        if log.len() <= self.compact_floor {
            return false;
        }
        let Some(inner) = self.memory() else {
            // Tried again at the next change.
            return false;
        };
        let threshold = self
            .compact_floor
            .max(COMPACT_FACTOR * (HEADER_LEN + inner.live_bytes()).max(log.snapshot_len()));
        if log.len() <= threshold {
            return false;
        }
        let cold = match self
            .cold
            .as_ref()
            .and_then(|c| c.get())
            .filter(|_| inner.has_cold)
        {
            Some(cold) => match cold.view() {
                Ok(view) => Some(view),
                Err(e) => {
                    tracing::warn!(
                        "the inode journal was not compacted: its cold tier failed: {e}"
                    );
                    return false;
                }
            },
            None => None,
        };
        let Some(compaction) = log.begin_compaction() else {
            return log.len() > 2 * threshold;
        };
        let names = LiveNames {
            tree: inner.tree.snapshot(),
            cold,
        };
        let reserved = inner.reserved;
        drop(inner);
        let (log, generation) = (log.clone(), self.generation);
        tokio::spawn(async move {
            log.compact(compaction, generation, reserved, move |f| names.each(f))
                .await;
        });
        false
    }

    /// Moves names to the cold tier, on the blocking pool, until memory holds its bound (one
    /// move at a time; a caller that finds one under way goes on).
    async fn move_to_cold(&self) {
        let Some(cold) = &self.cold else {
            return;
        };
        if self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (inner, cold, evicting) = (self.inner.clone(), cold.clone(), self.evicting.clone());
        let (keep, on_disk) = (self.memory_names, self.on_disk.clone());
        let moved = crate::blocking::run(crate::blocking::DEADLINE, move || {
            let _turn = DiskTurn::take(&on_disk);
            let moved = match cold.make() {
                Some(made) => evict(&inner, &made, keep),
                None => Ok(()),
            };
            evicting.store(false, Ordering::Release);
            // The names that went, and the B-tree's pages, were freed across the blocking
            // threads' arenas.
            crate::memory::give_back();
            moved
        })
        .await;
        if let Ok(Err(e)) = moved {
            tracing::warn!("names could not be moved to the inode table's cold tier: {e}");
        }
    }

    /// The table, unless a call on the blocking pool holds or awaits it to reach the disk.
    fn memory(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        if self.on_disk.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.inner.lock().unwrap())
    }

    /// Runs `call` here if it needs nothing from the cold tier and the table is not held for
    /// the disk.
    fn here<R>(&self, call: impl Call<R>) -> Option<R> {
        let mut inner = self.memory()?;
        call(&mut inner, &mut Cold::Away, self.log.as_deref()).ok()
    }

    /// Runs `call` on the blocking pool, with the cold tier open if it was made; `io` if its
    /// file fails.
    async fn with_cold<R: Send + 'static>(
        &self,
        call: impl Call<R> + Send + 'static,
    ) -> Result<R, Error> {
        let (inner, log, on_disk) = (self.inner.clone(), self.log.clone(), self.on_disk.clone());
        let cold = self.cold.clone();
        let result = crate::blocking::run(crate::blocking::DEADLINE, move || {
            let _turn = cold.is_some().then(|| DiskTurn::take(&on_disk));
            let mut inner = inner.lock().unwrap();
            // Looked at under the lock: a name goes cold only once the tier is made.
            let Some(cold) = cold.and_then(|c| c.get()) else {
                return call(&mut inner, &mut Cold::Away, log.as_deref());
            };
            let mut change = cold.change().map_err(Miss::Failed)?;
            let result = call(&mut inner, &mut Cold::Open(&mut change), log.as_deref())?;
            change.commit().map_err(Miss::Failed)?;
            Ok(result)
        })
        .await;
        self.keep_bound().await;
        match result {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(Miss::Failed(e))) => {
                tracing::warn!("the inode table's cold tier failed: {e}");
                Err(Error::Io)
            }
            Ok(Err(Miss::Cold)) => unreachable!("the cold tier is open whenever a name is in it"),
            Err(_overdue) => Err(Error::Io),
        }
    }

    /// A path of an inode (its first name still in use), if it is known.
    pub async fn path(&self, ino: u64) -> Result<Option<Arc<str>>, Error> {
        if let Some(path) = self.here(move |i, c, _| i.path(ino, c)) {
            return Ok(path);
        }
        self.with_cold(move |i, c, _| i.path(ino, c)).await
    }

    /// How many of an inode's names `matching` accepts. An inode with more than one name is
    /// never moved out of memory, so this counts every name the table knows of it. While a
    /// call holds the table to reach the disk, the count waits for it on the blocking pool;
    /// one that does not come in time counts none.
    pub async fn count_names(&self, ino: u64, matching: fn(&str) -> bool) -> usize {
        let count =
            move |inner: &Inner| inner.tree.paths(ino).filter(|name| matching(name)).count();
        let here = self.memory().map(|inner| count(&inner));
        if let Some(counted) = here {
            return counted;
        }
        let inner = self.inner.clone();
        crate::blocking::run(crate::blocking::DEADLINE, move || {
            count(&inner.lock().unwrap())
        })
        .await
        .unwrap_or(0)
    }

    /// The inode of a path, if it has one.
    pub async fn find(&self, path: &str) -> Result<Option<u64>, Error> {
        if let Some(ino) = self.here(|i, c, _| i.find(path, c)) {
            return Ok(ino);
        }
        let path = path.to_string();
        self.with_cold(move |i, c, _| i.find(&path, c)).await
    }

    /// The inode of a path, given a new number on first sight (as are the directories above
    /// it that have none yet).
    pub async fn ino(&self, path: &str) -> Result<u64, Error> {
        if let Some(ino) = self.here(|i, c, log| i.ino(path, c, log)) {
            return Ok(ino);
        }
        let path = path.to_string();
        self.with_cold(move |i, c, log| i.ino(&path, c, log)).await
    }

    /// The inodes of the entries `names` of the directory `dir`, each numbered on first
    /// sight, as [`InodeTable::ino`] would: the directory is found once for them all.
    pub async fn ino_entries(&self, dir: &str, names: &[&str]) -> Result<Vec<u64>, Error> {
        if let Some(inos) = self.here(|i, c, log| i.ino_entries(dir, names.iter().copied(), c, log))
        {
            return Ok(inos);
        }
        let dir = dir.to_string();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.with_cold(move |i, c, log| {
            i.ino_entries(&dir, names.iter().map(String::as_str), c, log)
        })
        .await
    }

    /// A new number for an object just made at `path`. A name created anew never inherits an
    /// inode: whatever the table still knows at or under it (names an earlier run left, of
    /// files gone from a backend changed meanwhile) is forgotten first. A LOOKUP that raced
    /// the making and numbered the new object already sees its number go stale.
    pub async fn fresh(&self, path: &str) -> Result<u64, Error> {
        if let Some(ino) = self.here(|i, c, log| i.fresh(path, c, log)) {
            return Ok(ino);
        }
        let path = path.to_string();
        self.with_cold(move |i, c, log| i.fresh(&path, c, log))
            .await
    }

    /// Records `new` as another name (a hard link) of the inode of `existing`; whatever was
    /// at `new` is forgotten.
    pub async fn link(&self, existing: &str, new: &str) -> Result<(), Error> {
        if let Some(()) = self.here(|i, c, log| i.link(existing, new, c, log)) {
            return Ok(());
        }
        let (existing, new) = (existing.to_string(), new.to_string());
        self.with_cold(move |i, c, log| i.link(&existing, &new, c, log))
            .await
    }

    /// Forgets a path that no longer exists (and everything under it). An inode stays known
    /// while it has another name.
    ///
    /// The forget of a file's only name, with nothing under it and no cold tier in use that
    /// could hold another of its names, is journaled relaxed: [`InodeTable::durable`] does
    /// not wait for it. Were it lost in a crash, the next run would know a path that no longer
    /// exists, by its old number: a handle to that number finds nothing at the path and is
    /// STALE, as it is once the forget is kept; a lookup finds nothing and forgets it again;
    /// a file made there anew through NFS gets a fresh number (`fresh`). An inode with
    /// another name is forgotten strictly: a lost forget could leave the gone name first in
    /// its chain and make a handle of a file that still exists STALE.
    pub async fn forget(&self, path: &str) -> Result<(), Error> {
        if let Some(()) = self.here(|i, c, log| i.forget(path, c, log)) {
            return Ok(());
        }
        let path = path.to_string();
        self.with_cold(move |i, c, log| i.forget(&path, c, log))
            .await
    }

    /// Moves a path and its subtree to a new name; whatever was at `to` is forgotten.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        if let Some(()) = self.here(|i, c, log| i.rename(from, to, c, log)) {
            return Ok(());
        }
        let (from, to) = (from.to_string(), to.to_string());
        self.with_cold(move |i, c, log| i.rename(&from, &to, c, log))
            .await
    }
}

/// One call's hold on the table for the disk, counted while it lives.
struct DiskTurn<'a>(&'a AtomicUsize);

impl DiskTurn<'_> {
    fn take(on_disk: &AtomicUsize) -> DiskTurn<'_> {
        on_disk.fetch_add(1, Ordering::AcqRel);
        DiskTurn(on_disk)
    }
}

impl Drop for DiskTurn<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Replays `journal` into the table. Once memory holds a sixteenth more than `memory_names`
/// names, the least recently used go to the cold tier, as the records come, so a start holds
/// about as many names as a run does; the records between two moves reach the tier through
/// one write transaction. A tier that fails fails the start, as it would have failed the move
/// after it.
fn replay_into(
    replayed: &Replayed,
    inner: &Mutex<Inner>,
    cold: &LazyCold,
    memory_names: usize,
    journal: &Path,
) -> std::io::Result<()> {
    // Directories a record names without a record of their own are numbered past every
    // number in the journal: a first walk finds the largest.
    let skipped = {
        let mut table = inner.lock().unwrap();
        let skipped = replayed.each(|record| match record {
            Record::Name { ino, .. } => table.next = table.next.max(ino + 1),
            Record::Reserve { next } => table.reserved = table.reserved.max(next),
            _ => {}
        })?;
        table.next = table.next.max(table.reserved);
        skipped
    };
    for skipped in &skipped {
        tracing::warn!(
            journal = %journal.display(),
            offset = skipped.offset,
            bytes = skipped.bytes,
            "skipped a damaged stretch of the inode journal; the records after it are kept"
        );
    }
    // A move takes memory a sixteenth under the bound: the next comes an eighth later.
    let replay_limit = memory_names.saturating_add(memory_names / 16 + 16);
    let mut tier: Option<ColdChange> = None;
    let mut failed = None;
    replayed.each(|record| {
        if failed.is_some() {
            return;
        }
        let mut table = inner.lock().unwrap();
        let applied = match &mut tier {
            Some(change) => table.apply(record, &mut Cold::Open(change)),
            None => table.apply(record, &mut Cold::Away),
        };
        let over = table.tree.len() > replay_limit;
        drop(table);
        failed = match applied {
            Err(Miss::Failed(e)) => Some(e),
            Err(Miss::Cold) => unreachable!("the tier is open once a name is in it"),
            Ok(()) if over => move_while_replaying(inner, cold, &mut tier, memory_names).err(),
            Ok(()) => None,
        };
    })?;
    let committed = match tier {
        Some(change) if failed.is_none() => change.commit(),
        _ => Ok(()),
    };
    match failed {
        Some(e) => Err(cold_io(e)),
        None => committed.map_err(cold_io),
    }
}

/// Moves names to the cold tier in the middle of a replay: commits the replay's open change
/// (one write at a time), moves names, and opens the next change. Without a tier (it could
/// not be made) the names stay in memory.
fn move_while_replaying(
    inner: &Mutex<Inner>,
    cold: &LazyCold,
    tier: &mut Option<ColdChange>,
    memory_names: usize,
) -> Result<(), ColdError> {
    if let Some(change) = tier.take() {
        change.commit()?;
    }
    let Some(made) = cold.make() else {
        return Ok(());
    };
    evict(inner, &made, memory_names)?;
    *tier = Some(made.change()?);
    Ok(())
}

fn cold_io(e: ColdError) -> std::io::Error {
    std::io::Error::other(format!("the inode table's cold tier: {e}"))
}

/// Moves the least recently used names that can go to the cold tier until at most `keep`
/// (less a sixteenth, so that moves come in batches) are in memory, or none can go. The
/// table's lock is let go between batches.
fn evict(inner: &Mutex<Inner>, cold: &ColdNames, keep: usize) -> Result<(), ColdError> {
    let target = keep - keep / 16;
    loop {
        let mut inner = inner.lock().unwrap();
        let over = inner.tree.len().saturating_sub(target);
        if over == 0 {
            return Ok(());
        }
        let chosen = inner.tree.choose(over.min(EVICT_BATCH));
        if chosen.is_empty() {
            return Ok(());
        }
        let rows: Vec<ColdRow> = chosen
            .iter()
            .map(|&slot| {
                let (ino, parent, name, cold_children) = inner.tree.row(slot);
                ColdRow {
                    ino,
                    parent,
                    name: name.to_string(),
                    cold_children,
                }
            })
            .collect();
        let written = cold.change().and_then(|mut change| {
            change.put(&rows)?;
            change.commit()
        });
        if let Err(e) = written {
            for slot in chosen {
                inner.tree.unchoose(slot);
            }
            return Err(e);
        }
        for slot in chosen {
            inner.tree.evict(slot);
        }
        inner.has_cold = true;
        inner.cold_names += rows.len();
    }
}

/// The live names at one moment, for a compaction: the tree's nodes and the cold tier's rows.
struct LiveNames {
    tree: Snapshot,
    cold: Option<ColdView>,
}

impl LiveNames {
    /// Every live name with its inode, the root left out; fails if the cold tier cannot be
    /// read (a compaction must not lose the names it holds). A cold name is spelled by walking
    /// up through the cold tier to a directory in memory.
    fn each(&self, f: &mut dyn FnMut(u64, &str)) -> std::io::Result<()> {
        self.tree.each(&mut *f);
        let Some(cold) = &self.cold else {
            return Ok(());
        };
        let in_memory: HashMap<u64, Slot> = self.tree.named().collect();
        cold.each(|ino, parent, name| {
            let mut parts = vec![name.to_string()];
            let mut at = parent;
            let prefix = loop {
                if let Some(&slot) = in_memory.get(&at) {
                    break self.tree.path_of(slot);
                }
                match cold.get(at)? {
                    Some((up, name)) if parts.len() < MAX_DEPTH => {
                        parts.push(name);
                        at = up;
                    }
                    // Under a directory that was forgotten: not a live name.
                    _ => break None,
                }
            };
            if let Some(prefix) = prefix {
                parts.extend((!prefix.is_empty()).then_some(prefix));
                parts.reverse();
                f(ino, &parts.join("/"));
            }
            Ok(())
        })
        .map_err(cold_io)
    }
}

impl Inner {
    fn new() -> Inner {
        Inner {
            tree: NameTree::new(MOUNT_ROOT_INO),
            next: MOUNT_ROOT_INO + 1,
            reserved: 0,
            has_cold: false,
            cold_names: 0,
        }
    }

    /// The bytes the names' records would take in a snapshot, estimated from their last
    /// components.
    fn live_bytes(&self) -> u64 {
        self.tree.len() as u64 * name_len("") + self.tree.text_len() as u64
    }

    /// Brings back to memory the names the cold tier holds in the directory `slot`. They are
    /// keyed by the directory's inode, so they come back before that inode gets a second name
    /// (or the node another inode): a directory of two names keeps its names in memory, and
    /// rows keyed by an inode exist only while it has one name. Once that name is forgotten,
    /// nothing can name the inode again, so its rows can never be adopted under another.
    fn warm_children(&mut self, slot: Slot, cold: &mut Cold<'_>) -> Result<(), Miss> {
        if !self.tree.has_cold_children(slot) {
            return Ok(());
        }
        let Cold::Open(change) = cold else {
            return Err(Miss::Cold);
        };
        let ino = self.tree.ino_of(slot);
        for row in change.take_children(ino).map_err(Miss::Failed)? {
            self.cold_names -= 1;
            self.adopt(slot, row);
        }
        self.tree.clear_cold_children(slot);
        Ok(())
    }

    /// Replays one journal record; directories it needs that have no number get new ones. A
    /// name given to an inode that has one already is a link, and is replayed as `link` runs:
    /// the inode's name comes back from the cold tier, and so do the names under it.
    fn apply(&mut self, record: Record, cold: &mut Cold<'_>) -> Result<(), Miss> {
        match record {
            Record::Name { ino, path } => {
                if let Some(first) = self.named(ino, cold)? {
                    self.warm_children(first, cold)?;
                }
                match self.slot(&path, cold)? {
                    Some(slot) => {
                        self.warm_children(slot, cold)?;
                        self.tree.set_ino(slot, ino);
                    }
                    None => {
                        let (parent, name) = self.parent_of(&path, cold, None)?;
                        self.tree.add(parent, name, ino);
                    }
                }
                Ok(())
            }
            Record::Forget { path } => self.forget(&path, cold, None),
            Record::Rename { from, to } => self.rename(&from, &to, cold, None),
            Record::Reserve { next } => {
                self.reserved = self.reserved.max(next);
                Ok(())
            }
        }
    }

    /// The node named `name` in the directory `parent`, brought back from the cold tier if it
    /// is there.
    fn child(
        &mut self,
        parent: Slot,
        name: &str,
        cold: &mut Cold<'_>,
    ) -> Result<Option<Slot>, Miss> {
        if let Some(slot) = self.tree.child(parent, name) {
            self.tree.touch(slot);
            return Ok(Some(slot));
        }
        if !self.tree.has_cold_children(parent) {
            return Ok(None);
        }
        let Cold::Open(change) = cold else {
            return Err(Miss::Cold);
        };
        let row = change
            .take_child(self.tree.ino_of(parent), name)
            .map_err(Miss::Failed)?;
        self.cold_names -= usize::from(row.is_some());
        Ok(row.and_then(|row| self.adopt(parent, row)))
    }

    /// Puts a name taken from the cold tier back in memory, under `parent`. A row whose
    /// inode or name memory holds already is out of date: it is dropped.
    fn adopt(&mut self, parent: Slot, row: ColdRow) -> Option<Slot> {
        if self.tree.first_name(row.ino).is_some() || self.tree.child(parent, &row.name).is_some() {
            return None;
        }
        let slot = self.tree.add(parent, &row.name, row.ino);
        if row.cold_children {
            self.tree.mark_cold_children(slot);
        }
        Some(slot)
    }

    /// The node of a path.
    fn slot(&mut self, path: &str, cold: &mut Cold<'_>) -> Result<Option<Slot>, Miss> {
        let mut at = ROOT;
        if path.is_empty() {
            return Ok(Some(at));
        }
        for name in path.split('/') {
            match self.child(at, name, cold)? {
                Some(slot) => at = slot,
                None => return Ok(None),
            }
        }
        Ok(Some(at))
    }

    /// The node of an inode's first name. A name in the cold tier comes back with the
    /// directories above it that are there too; one whose directory was forgotten is gone.
    fn named(&mut self, ino: u64, cold: &mut Cold<'_>) -> Result<Option<Slot>, Miss> {
        if let Some(slot) = self.tree.first_name(ino) {
            self.tree.touch(slot);
            return Ok(Some(slot));
        }
        if !self.has_cold {
            return Ok(None);
        }
        let Cold::Open(change) = cold else {
            return Err(Miss::Cold);
        };
        let mut chain = Vec::new();
        let mut at = ino;
        let top = loop {
            let Some(row) = change.take_ino(at).map_err(Miss::Failed)? else {
                // The rows taken so far lay under a forgotten directory: they go.
                return Ok(None);
            };
            self.cold_names -= 1;
            at = row.parent;
            chain.push(row);
            if let Some(slot) = self.tree.live_name(at) {
                break slot;
            }
            if chain.len() >= MAX_DEPTH {
                return Ok(None);
            }
        };
        let mut slot = top;
        for row in chain.into_iter().rev() {
            match self.adopt(slot, row) {
                Some(adopted) => slot = adopted,
                None => return Ok(None),
            }
        }
        Ok(Some(slot))
    }

    fn path(&mut self, ino: u64, cold: &mut Cold<'_>) -> Result<Option<Arc<str>>, Miss> {
        if self.named(ino, cold)?.is_none() {
            return Ok(None);
        }
        Ok(self.tree.paths(ino).next().map(Arc::from))
    }

    fn find(&mut self, path: &str, cold: &mut Cold<'_>) -> Result<Option<u64>, Miss> {
        Ok(self.slot(path, cold)?.map(|slot| self.tree.ino_of(slot)))
    }

    fn ino(
        &mut self,
        path: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<u64, Miss> {
        let slot = self.numbered(path, cold, log)?;
        Ok(self.tree.ino_of(slot))
    }

    /// The entries' inodes. A name in the cold tier is read there and stays there: a
    /// listing of a directory larger than memory would otherwise bring back each name in
    /// turn and send another away for it.
    fn ino_entries<'n>(
        &mut self,
        dir: &str,
        names: impl IntoIterator<Item = &'n str>,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<Vec<u64>, Miss> {
        let parent = self.numbered(dir, cold, log)?;
        let names: Vec<&str> = names.into_iter().collect();
        let in_cold = self.cold_entries(parent, &names, cold)?;
        let mut inos = Vec::with_capacity(names.len());
        for name in names {
            // A name twice in one call is numbered once: the first adds it to memory.
            let ino = match self.tree.child(parent, name) {
                Some(slot) => {
                    self.tree.touch(slot);
                    self.tree.ino_of(slot)
                }
                None => match in_cold.get(name) {
                    Some(&ino) => ino,
                    None => {
                        let path = if dir.is_empty() {
                            name.to_string()
                        } else {
                            format!("{dir}/{name}")
                        };
                        let ino = self.number(&path, log);
                        self.tree.add(parent, name, ino);
                        ino
                    }
                },
            };
            inos.push(ino);
        }
        Ok(inos)
    }

    /// The inodes of those of `names` in the directory `parent` that are in the cold tier and
    /// not in memory, read there and left there; none unless the directory has cold names.
    fn cold_entries<'n>(
        &self,
        parent: Slot,
        names: &[&'n str],
        cold: &mut Cold<'_>,
    ) -> Result<HashMap<&'n str, u64>, Miss> {
        if !self.tree.has_cold_children(parent) {
            return Ok(HashMap::new());
        }
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| self.tree.child(parent, name).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(HashMap::new());
        }
        let Cold::Open(change) = cold else {
            return Err(Miss::Cold);
        };
        let found = change
            .child_inos(self.tree.ino_of(parent), missing.iter().copied())
            .map_err(Miss::Failed)?;
        Ok(missing
            .into_iter()
            .zip(found)
            .filter_map(|(name, ino)| Some((name, ino?)))
            .collect())
    }

    fn fresh(
        &mut self,
        path: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<u64, Miss> {
        let found = self.slot(path, cold)?;
        if found == Some(ROOT) {
            return Ok(MOUNT_ROOT_INO);
        }
        if let Some(slot) = found {
            self.tree.kill(slot);
            self.tree.sweep_if_due();
            record(
                log,
                Record::Forget {
                    path: path.to_string(),
                },
            );
        }
        // The name is free now, in memory and in the cold tier.
        let (parent, name) = self.parent_of(path, cold, log)?;
        let ino = self.number(path, log);
        self.tree.add(parent, name, ino);
        Ok(ino)
    }

    fn link(
        &mut self,
        existing: &str,
        new: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<(), Miss> {
        let existing_slot = self.numbered(existing, cold, log)?;
        let ino = self.tree.ino_of(existing_slot);
        self.warm_children(existing_slot, cold)?;
        if let Some(slot) = self.slot(new, cold)? {
            if self.tree.ino_of(slot) == ino || slot == ROOT {
                return Ok(());
            }
            self.tree.kill(slot);
            record(
                log,
                Record::Forget {
                    path: new.to_string(),
                },
            );
        }
        let (parent, name) = self.parent_of(new, cold, log)?;
        self.tree.add(parent, name, ino);
        self.tree.sweep_if_due();
        record(
            log,
            Record::Name {
                ino,
                path: new.to_string(),
            },
        );
        Ok(())
    }

    fn forget(
        &mut self,
        path: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<(), Miss> {
        let Some(slot) = self.slot(path, cold)?.filter(|&s| s != ROOT) else {
            return Ok(());
        };
        let alone = !self.has_cold && self.tree.is_alone(slot);
        self.tree.kill(slot);
        self.tree.sweep_if_due();
        // A name just given by a lookup that found nothing is simply taken back (nothing can
        // have been named under it since: that would have been journaled after it).
        if let Some(log) = log {
            if !log.take_back_name(path) {
                let forget = Record::Forget {
                    path: path.to_string(),
                };
                if alone {
                    log.append_relaxed(&forget);
                } else {
                    log.append(&forget);
                }
            }
        }
        Ok(())
    }

    /// Moves the node at `from` to `to`, forgetting what was at `to`. A directory moved under
    /// itself cannot be reached any more: it is forgotten.
    fn rename(
        &mut self,
        from: &str,
        to: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<(), Miss> {
        let moving = self.slot(from, cold)?.filter(|&s| s != ROOT);
        let replaced = self.slot(to, cold)?.filter(|&s| s != ROOT);
        let target = match moving {
            Some(_) => Some(self.parent_of(to, cold, log)?),
            None => None,
        };
        record(
            log,
            Record::Rename {
                from: from.to_string(),
                to: to.to_string(),
            },
        );
        if replaced.is_some() && replaced == moving {
            return Ok(());
        }
        if let Some(slot) = replaced {
            self.tree.kill(slot);
        }
        if let (Some(slot), Some((parent, name))) = (moving, target) {
            if self.tree.is_within(parent, slot) {
                self.tree.kill(slot);
            } else {
                self.tree.move_to(slot, parent, name);
            }
        }
        self.tree.sweep_if_due();
        Ok(())
    }

    /// The node of `path`, numbering it and the directories above it that have no number
    /// yet; each new number is journaled in `log` (none while the journal is replayed).
    fn numbered(
        &mut self,
        path: &str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<Slot, Miss> {
        if let Some(slot) = self.slot(path, cold)? {
            return Ok(slot);
        }
        let (parent, name) = self.parent_of(path, cold, log)?;
        let ino = self.number(path, log);
        Ok(self.tree.add(parent, name, ino))
    }

    /// The node of the directory above `path` (numbered if it had no number) and the last
    /// component of `path`.
    fn parent_of<'p>(
        &mut self,
        path: &'p str,
        cold: &mut Cold<'_>,
        log: Option<&InodeLog>,
    ) -> Result<(Slot, &'p str), Miss> {
        Ok(match path.rsplit_once('/') {
            None => (ROOT, path),
            Some((dir, name)) => (self.numbered(dir, cold, log)?, name),
        })
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
}

fn record(log: Option<&InodeLog>, record: Record) {
    if let Some(log) = log {
        log.append(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

    /// No bound on the names in memory.
    const ALL: usize = usize::MAX;

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }

    /// Runs a call on the table to completion, for the property test's steps.
    fn run<F: std::future::Future>(call: F) -> F::Output {
        RUNTIME.with(|runtime| runtime.block_on(call))
    }

    #[tokio::test]
    async fn numbers_are_stable_per_path_and_unique() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a").await.unwrap();
        assert_eq!(t.ino("a").await.unwrap(), a);
        assert_ne!(t.ino("b").await.unwrap(), a);
        assert_eq!(t.ino("").await.unwrap(), MOUNT_ROOT_INO);
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn renaming_a_directory_carries_its_subtree() {
        let t = InodeTable::in_memory(1);
        let (d, f, other) = (
            t.ino("d").await.unwrap(),
            t.ino("d/x/f").await.unwrap(),
            t.ino("dd").await.unwrap(),
        );
        t.rename("d", "e").await.unwrap();
        assert_eq!(t.path(d).await.unwrap().as_deref(), Some("e"));
        assert_eq!(t.path(f).await.unwrap().as_deref(), Some("e/x/f"));
        assert_eq!(
            t.path(other).await.unwrap().as_deref(),
            Some("dd"),
            "a sibling sharing a prefix stays"
        );
        assert_eq!(t.ino("e/x/f").await.unwrap(), f);
        assert_ne!(
            t.ino("d").await.unwrap(),
            d,
            "the old name is free for a new file"
        );
    }

    #[tokio::test]
    async fn rename_over_an_existing_name_forgets_the_old_file() {
        let t = InodeTable::in_memory(1);
        let (a, b) = (t.ino("a").await.unwrap(), t.ino("b").await.unwrap());
        t.rename("a", "b").await.unwrap();
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("b"));
        assert_eq!(t.path(b).await.unwrap(), None);
        assert_eq!(t.ino("b").await.unwrap(), a);
    }

    #[tokio::test]
    async fn hard_links_share_an_inode_until_the_last_name_goes() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a").await.unwrap();
        t.link("a", "d/b").await.unwrap();
        assert_eq!(t.ino("d/b").await.unwrap(), a);
        t.forget("a").await.unwrap();
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("d/b"));
        t.rename("d", "e").await.unwrap();
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("e/b"));
        t.forget("e").await.unwrap();
        assert_eq!(t.path(a).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_inode_with_three_names_keeps_the_rest_as_each_goes() {
        let t = InodeTable::in_memory(1);
        let a = t.ino("a").await.unwrap();
        t.link("a", "b").await.unwrap();
        t.link("a", "c").await.unwrap();
        assert_eq!(t.count_names(a, |_| true).await, 3);
        t.forget("b").await.unwrap();
        assert_eq!(t.count_names(a, |_| true).await, 2);
        t.forget("a").await.unwrap();
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("c"));
        assert_eq!(t.count_names(a, |n| n == "c").await, 1);
        t.link("c", "d").await.unwrap();
        t.forget("d").await.unwrap();
        t.forget("c").await.unwrap();
        assert_eq!(t.path(a).await.unwrap(), None);
        let mut inner = t.inner.lock().unwrap();
        inner.tree.sweep();
        assert_eq!((inner.tree.len(), inner.live_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn a_journaled_table_survives_reopening_and_never_reuses_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 42, ALL).unwrap();
        let (a, f) = (t.ino("a").await.unwrap(), t.ino("d/f").await.unwrap());
        t.link("a", "hard").await.unwrap();
        t.rename("d", "e").await.unwrap();
        let gone = t.ino("gone").await.unwrap();
        t.durable().await.unwrap();
        t.forget("gone").await.unwrap();
        let missing = t.ino("looked up, not there").await.unwrap();
        t.forget("looked up, not there").await.unwrap();
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 99, ALL).unwrap();
        assert_eq!(t.generation, 42, "the generation is the journal's");
        assert_eq!(t.path(f).await.unwrap().as_deref(), Some("e/f"));
        assert_eq!(t.ino("hard").await.unwrap(), a);
        assert_eq!(t.path(gone).await.unwrap(), None);
        assert_eq!(t.path(missing).await.unwrap(), None);
        let fresh = t.ino("new").await.unwrap();
        assert!(
            fresh > gone && fresh > f,
            "numbers handed out before are not reused"
        );
        t.durable().await.unwrap();
        drop(t);
        // Reopening again (from the compacted journal) keeps everything.
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(t.ino("new").await.unwrap(), fresh);
        assert_eq!(t.ino("e/f").await.unwrap(), f);
    }

    /// Creates and removes `pairs` names, `batch` at a time, each step made durable; returns
    /// the largest journal seen after a step and the last number given.
    async fn churn(t: &InodeTable, journal: &Path, pairs: usize, batch: usize) -> (u64, u64) {
        let (mut largest, mut last) = (0, 0);
        for start in (0..pairs).step_by(batch) {
            for i in start..start + batch {
                last = t.ino(&format!("churn/{i}")).await.unwrap();
            }
            t.durable().await.unwrap();
            largest = largest.max(std::fs::metadata(journal).unwrap().len());
            for i in start..start + batch {
                t.forget(&format!("churn/{i}")).await.unwrap();
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
        let mut t = InodeTable::open(&journal, 5, ALL).unwrap();
        t.compact_floor = 64 << 10;
        let mut kept = Vec::new();
        for i in 0..1000 {
            kept.push(t.ino(&format!("kept/{i}")).await.unwrap());
        }
        t.link("kept/0", "kept/hard").await.unwrap();
        t.rename("kept/1", "kept/moved").await.unwrap();
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
        // A clean stop: the forgets no reply waited for are written too.
        t.flush().await.unwrap();
        drop((t, log));
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(t.generation, 5);
        assert_eq!(t.find("kept/hard").await.unwrap(), Some(kept[0]));
        assert_eq!(
            t.path(kept[1]).await.unwrap().as_deref(),
            Some("kept/moved")
        );
        for (i, &ino) in kept.iter().enumerate().skip(2) {
            assert_eq!(t.find(&format!("kept/{i}")).await.unwrap(), Some(ino));
        }
        assert_eq!(t.path(last).await.unwrap(), None);
        let names = {
            let mut inner = t.inner.lock().unwrap();
            inner.tree.sweep();
            inner.tree.len()
        };
        assert_eq!(names, 2 + 1000 + 1, "kept, churn and their names");
        assert!(
            t.ino("new").await.unwrap() > last,
            "numbers handed out before are not reused"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_in_the_middle_of_a_compaction_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let mut t = InodeTable::open(&journal, 5, ALL).unwrap();
        t.compact_floor = 16 << 10;
        let kept = t.ino("kept").await.unwrap();
        let (_, last) = churn(&t, &journal, 20_000, 100).await;
        let log = t.log.clone().unwrap();
        log.compaction_done().await;
        assert!(log.compactions() > 0);
        // The crash: a compaction had written half its snapshot, then the process died.
        let data = std::fs::read(&journal).unwrap();
        std::fs::write(journal.with_extension("tmp"), &data[..data.len() / 2]).unwrap();
        let after = t.ino("after").await.unwrap();
        t.durable().await.unwrap();
        drop((t, log));
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(
            (
                t.find("kept").await.unwrap(),
                t.find("after").await.unwrap()
            ),
            (Some(kept), Some(after))
        );
        assert_eq!(t.path(last).await.unwrap(), None);
        assert!(t.ino("new").await.unwrap() > after.max(last));
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(t.find("after").await.unwrap(), Some(after));
    }

    /// A start walks the old journal and writes the new one a record at a time: at its peak
    /// it holds the table it builds and the old journal's bytes, not the journal as records,
    /// a copy of the table, or the new journal whole.
    #[test]
    fn a_start_holds_at_most_the_table_and_the_old_journal() {
        use crate::heap_meter::{held_by_this_thread, peak_of_this_thread, reset_peak};
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 5, ALL).unwrap();
        run(async {
            for d in 0..20 {
                for f in 0..1000 {
                    t.ino(&format!("dir{d}/file-{f:05}")).await.unwrap();
                }
            }
            t.durable().await.unwrap();
        });
        drop(t);
        let journal_len = std::fs::metadata(&journal).unwrap().len() as isize;

        let before = held_by_this_thread();
        reset_peak();
        let t = InodeTable::open(&journal, 5, ALL).unwrap();
        let (table, peak) = (
            held_by_this_thread() - before,
            peak_of_this_thread() - before,
        );
        assert_eq!(t.inner.lock().unwrap().tree.len(), 20_020);
        assert!(
            peak <= table + journal_len + (256 << 10),
            "a start peaked at {peak} bytes for a table of {table} and a journal of {journal_len}"
        );
    }

    /// A journal of `dirs` directories of 1000 files each, and every file's number.
    fn a_journal_of(journal: &Path, dirs: usize) -> Vec<u64> {
        let t = InodeTable::open(journal, 5, ALL).unwrap();
        run(async {
            let mut numbers = Vec::new();
            for d in 0..dirs {
                for f in 0..1000 {
                    numbers.push(t.ino(&numbered_file(d * 1000 + f)).await.unwrap());
                }
            }
            t.flush().await.unwrap();
            numbers
        })
    }

    fn numbered_file(i: usize) -> String {
        format!("directory-{:03}/file-{:04}", i / 1000, i % 1000)
    }

    /// A table opened from `journal` with a bound, and the most its start held on the heap.
    fn started(journal: &Path, bound: usize) -> (InodeTable, isize) {
        use crate::heap_meter::{held_by_this_thread, peak_of_this_thread, reset_peak};
        let before = held_by_this_thread();
        reset_peak();
        let t = InodeTable::open(journal, 5, bound).unwrap();
        (t, peak_of_this_thread() - before)
    }

    /// A start with a bound moves names to the cold tier as it replays, so it never holds
    /// every name: from a journal of four times the names, its peak grows by less than a
    /// quarter of an unbounded start's growth (the names in memory stay at the bound; what
    /// still grows, about 14 bytes a name here, is outside the name tree). Every name is kept.
    #[test]
    fn a_bounded_start_holds_about_its_bound_whatever_the_journal() {
        const BOUND: usize = 4096;
        let dir = tempfile::tempdir().unwrap();
        let (small, large) = (
            dir.path().join("small.inodes"),
            dir.path().join("large.inodes"),
        );
        a_journal_of(&small, 100);
        let numbers = a_journal_of(&large, 400);
        let (_, small_unbounded) = started(&small, ALL);
        let (t, large_unbounded) = started(&large, ALL);
        assert_eq!(t.inner.lock().unwrap().tree.len(), 400 * 1001);
        drop(t);
        let (_, small_bounded) = started(&small, BOUND);
        let (t, large_bounded) = started(&large, BOUND);
        let peaks = format!(
            "bounded {small_bounded} and {large_bounded} bytes, unbounded {small_unbounded} and {large_unbounded}"
        );
        // Per name past the first 100k: under a quarter of what an unbounded start takes.
        assert!(
            4 * (large_bounded - small_bounded) < large_unbounded - small_unbounded,
            "{peaks}"
        );
        assert!(t.inner.lock().unwrap().tree.len() <= BOUND);
        run(async {
            for (i, &ino) in numbers.iter().enumerate().step_by(997) {
                assert_eq!(t.find(&numbered_file(i)).await.unwrap(), Some(ino));
            }
        });
        drop(t);
        // The journal the bounded start wrote holds the cold names too.
        let (t, _) = started(&large, ALL);
        assert_eq!(t.inner.lock().unwrap().tree.len(), 400 * 1001);
        println!("{peaks}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bounded_table_keeps_its_cold_names_through_compactions_and_reopening() {
        const BOUND: usize = 50;
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let mut t = InodeTable::open(&journal, 5, BOUND).unwrap();
        t.compact_floor = 16 << 10;
        let mut kept = Vec::new();
        for d in 0..5 {
            for f in 0..100 {
                let path = format!("d{d}/f{f}");
                kept.push((path.clone(), t.ino(&path).await.unwrap()));
            }
        }
        t.durable().await.unwrap();
        let (in_memory, cold) = {
            let inner = t.inner.lock().unwrap();
            (inner.tree.len(), inner.cold_names)
        };
        assert!(in_memory <= BOUND, "{in_memory} names in memory");
        assert_eq!(in_memory + cold, 505, "every name is in one tier");
        // A directory whose names are cold moves; then churn makes the journal compact
        // (online, with most names in the cold tier) again and again.
        t.rename("d3", "moved").await.unwrap();
        let (_, last) = churn(&t, &journal, 10_000, 100).await;
        let log = t.log.clone().unwrap();
        log.compaction_done().await;
        assert!(log.compactions() > 0);
        assert!(t.inner.lock().unwrap().tree.len() <= BOUND);
        drop((t, log));
        for memory_names in [ALL, BOUND] {
            let t = InodeTable::open(&journal, 1, memory_names).unwrap();
            for (path, ino) in &kept {
                let path = path.replace("d3/", "moved/");
                assert_eq!(t.find(&path).await.unwrap(), Some(*ino), "{path}");
                assert_eq!(t.path(*ino).await.unwrap().as_deref(), Some(path.as_str()));
            }
            assert_eq!(t.find("d3").await.unwrap(), None);
            assert_eq!(t.path(last).await.unwrap(), None);
        }
    }

    /// A listing reads the numbers of cold names where they are: bringing each back would
    /// send another away for it, all through a directory larger than memory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_leaves_cold_names_in_the_cold_tier() {
        let dir = tempfile::tempdir().unwrap();
        let t = InodeTable::open(&dir.path().join("m.inodes"), 1, 16).unwrap();
        let names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let listed = t.ino_entries("d", &names).await.unwrap();
        t.durable().await.unwrap();
        let cold = t.cold.as_ref().unwrap().get().unwrap();
        let mut change = cold.change().unwrap();
        let mut inner = t.inner.lock().unwrap();
        let tiers = (inner.tree.len(), inner.cold_names);
        assert!(tiers.1 > 150, "{tiers:?}");
        let again = inner
            .ino_entries(
                "d",
                names.iter().copied(),
                &mut Cold::Open(&mut change),
                None,
            )
            .unwrap();
        assert_eq!(again, listed);
        assert_eq!((inner.tree.len(), inner.cold_names), tiers);
    }

    /// While a blocking thread holds the table for the disk, a call made on an async worker
    /// goes to the blocking pool instead of waiting for the lock: the one worker of this
    /// runtime stays free to run the task that lets the lock go.
    #[test]
    fn an_async_worker_never_waits_for_a_table_held_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(InodeTable::open(&dir.path().join("m.inodes"), 1, 16).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let known = runtime.block_on(t.ino("a")).unwrap();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn({
            let t = t.clone();
            move || {
                let _turn = DiskTurn::take(&t.on_disk);
                let _held = t.inner.lock().unwrap();
                locked_tx.send(()).unwrap();
                // Let go at the task's word; a worker stuck on the lock never gives it.
                released
                    .recv_timeout(std::time::Duration::from_secs(60))
                    .is_ok()
            }
        });
        locked.recv().unwrap();
        let (found, counted, ()) = runtime.block_on(async {
            tokio::join!(t.find("a"), t.count_names(known, |_| true), async {
                let _ = release.send(());
            })
        });
        assert!(
            holder.join().unwrap(),
            "the async worker waited for the lock"
        );
        assert_eq!((found.unwrap(), counted), (Some(known), 1));
    }

    #[tokio::test]
    async fn a_name_made_anew_gets_a_new_number_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let (a, old) = (t.ino("a").await.unwrap(), t.ino("d/old").await.unwrap());
        t.link("a", "d").await.unwrap();
        t.durable().await.unwrap();
        drop(t);
        // The backend lost "a" and "d" while nfsgw was down; a new object is made at "d".
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let made = t.fresh("d").await.unwrap();
        assert!(made != a && made != old);
        assert_eq!(t.path(made).await.unwrap().as_deref(), Some("d"));
        assert_eq!(
            t.path(a).await.unwrap().as_deref(),
            Some("a"),
            "the old file keeps its other name"
        );
        assert_eq!(
            t.path(old).await.unwrap(),
            None,
            "nothing is under a name made anew"
        );
        assert_eq!(t.fresh("new").await.unwrap(), t.ino("new").await.unwrap());
        t.durable().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(
            (t.find("d").await.unwrap(), t.find("d/old").await.unwrap()),
            (Some(made), None)
        );
    }

    /// The syncs the table's journal has made.
    fn syncs(t: &InodeTable) -> u64 {
        t.log.as_ref().unwrap().syncs()
    }

    /// A removed file's only name is forgotten without a sync of its own. A crash that loses
    /// the forget brings back a name of a number no other name has: the gateway finds nothing
    /// there (STALE), and a file made anew there gets a fresh number.
    #[tokio::test]
    async fn the_forget_of_a_lone_name_waits_for_no_sync() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let f = t.ino("d/f").await.unwrap();
        t.durable().await.unwrap();
        let before = syncs(&t);
        t.forget("d/f").await.unwrap();
        t.durable().await.unwrap();
        assert_eq!(syncs(&t), before, "no sync for a lone name's forget");
        assert_eq!(t.path(f).await.unwrap(), None);
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(
            t.find("d/f").await.unwrap(),
            Some(f),
            "the crash lost the forget"
        );
        let made = t.fresh("d/f").await.unwrap();
        assert_ne!(made, f);
        t.durable().await.unwrap();
        t.forget("d/f").await.unwrap();
        t.flush().await.unwrap();
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(
            t.find("d/f").await.unwrap(),
            None,
            "a flush keeps the forget"
        );
    }

    /// A forget that leaves the inode another name, or takes a directory with names under it,
    /// is synced before the reply: losing it could hide a file that still exists.
    #[tokio::test]
    async fn a_forget_that_leaves_other_names_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let a = t.ino("a").await.unwrap();
        t.link("a", "b").await.unwrap();
        t.ino("d/f").await.unwrap();
        t.durable().await.unwrap();
        let before = syncs(&t);
        t.forget("a").await.unwrap();
        t.durable().await.unwrap();
        assert_eq!(syncs(&t), before + 1);
        t.forget("d").await.unwrap();
        t.durable().await.unwrap();
        assert_eq!(syncs(&t), before + 2);
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        assert_eq!(t.path(a).await.unwrap().as_deref(), Some("b"));
        assert_eq!(t.find("d/f").await.unwrap(), None);
    }

    /// Forgets no reply waits for are synced once they pile up past [`RELAXED_BYTES`], so a
    /// crash loses a bounded tail of them.
    #[tokio::test]
    async fn relaxed_forgets_are_synced_once_they_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("m.inodes");
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let count = 10_000;
        for i in 0..count {
            t.ino(&format!("file number {i}")).await.unwrap();
        }
        t.durable().await.unwrap();
        let before = syncs(&t);
        for i in 0..count {
            t.forget(&format!("file number {i}")).await.unwrap();
            t.durable().await.unwrap();
        }
        // A forget's record is a name's without the number's 8 bytes.
        let (smallest, largest) = (
            name_len("file number 0") - 8,
            name_len("file number 9999") - 8,
        );
        let most = (count as u64 * largest).div_ceil(RELAXED_BYTES as u64);
        let synced = syncs(&t) - before;
        assert!(
            (1..=most).contains(&synced),
            "{synced} syncs, at most {most}"
        );
        drop(t);
        let t = InodeTable::open(&journal, 1, ALL).unwrap();
        let back = t.inner.lock().unwrap().tree.len() as u64;
        assert!(
            back * smallest < RELAXED_BYTES as u64,
            "{back} names came back"
        );
    }

    #[tokio::test]
    async fn forget_drops_the_subtree() {
        let t = InodeTable::in_memory(1);
        let (d, f) = (t.ino("d").await.unwrap(), t.ino("d/f").await.unwrap());
        t.forget("d").await.unwrap();
        assert_eq!(
            (t.path(d).await.unwrap(), t.path(f).await.unwrap()),
            (None, None)
        );
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
        /// Drop the table without flushing what no reply waited for, and open it again.
        Crash,
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
            1 => Just(Step::Crash),
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
            let ino = run(t.find(path))
                .unwrap()
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
            let ino = run(t.ino(path)).unwrap();
            self.numbered(t, path, ino)?;
            Ok(ino)
        }

        /// After a crash, every name the reference knows has kept its number. A name it had
        /// forgotten may be back, its forget relaxed and lost, but never one of an inode that
        /// still has another name; the reference takes such names back.
        fn after_crash(&mut self, t: &InodeTable) -> Result<(), TestCaseError> {
            let live: HashSet<u64> = self.names.values().copied().collect();
            for p in every_path() {
                match (run(t.find(&p)).unwrap(), self.names.get(&p)) {
                    (found, Some(&known)) => {
                        prop_assert_eq!(found, Some(known), "{} lost in a crash", p)
                    }
                    (Some(back), None) => {
                        prop_assert!(
                            !live.contains(&back),
                            "{p} came back naming {back}, which has another name"
                        );
                        self.names.insert(p, back);
                    }
                    (None, None) => {}
                }
            }
            Ok(())
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
        memory_names: usize,
    ) -> Result<(), TestCaseError> {
        match step {
            Step::Ino(p) => {
                model.ino(t, &p)?;
            }
            Step::Entries(dir, names) => {
                let inos = run(t.ino_entries(&dir, &names)).unwrap();
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
                let ino = run(t.fresh(&p)).unwrap();
                model.ancestors(t, &p)?;
                model.adopt(t, &p)?;
                prop_assert_eq!(model.names[&p], ino);
            }
            Step::Link(a, b) => {
                let ino = model.ino(t, &a)?;
                run(t.link(&a, &b)).unwrap();
                if model.names.get(&b) != Some(&ino) {
                    model.remove_subtree(&b);
                    model.ancestors(t, &b)?;
                    model.names.insert(b, ino);
                }
            }
            Step::Forget(p) => {
                run(t.forget(&p)).unwrap();
                model.remove_subtree(&p);
            }
            Step::Rename(a, b) => {
                run(t.rename(&a, &b)).unwrap();
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
                run(t.flush()).unwrap();
                *t = InodeTable::open(journal, 1, memory_names).unwrap();
            }
            Step::Crash => {
                *t = InodeTable::open(journal, 1, memory_names).unwrap();
                model.after_crash(t)?;
            }
        }
        Ok(())
    }

    proptest! {
        /// The table agrees with a reference that keeps every path spelled out: after every
        /// step, each path has the number the reference has (or none), and each number's
        /// names are the reference's. Numbers are never given twice, across reopening too.
        /// With a bound of one or four names in memory, nearly every call goes through the
        /// cold tier.
        #[test]
        fn agrees_with_a_table_of_whole_paths(
            steps in proptest::collection::vec(a_step(), 1..60),
            floor in proptest::sample::select(vec![0usize, 3, 1024]),
            memory_names in proptest::sample::select(vec![ALL, 1, 4]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let journal = dir.path().join("m.inodes");
            let mut t = InodeTable::open(&journal, 1, memory_names).unwrap();
            t.inner.lock().unwrap().tree.set_floors(floor, floor);
            let mut model = Reference::default();
            let all = every_path();
            for step in steps {
                play(&mut t, &mut model, step.clone(), &journal, memory_names)?;
                t.inner.lock().unwrap().tree.set_floors(floor, floor);
                // As the gateway does after every call: this moves names to the cold tier.
                run(t.durable()).unwrap();
                prop_assert!(t.inner.lock().unwrap().tree.len() <= memory_names.max(every_path().len()));
                for p in &all {
                    prop_assert_eq!(run(t.find(p)).unwrap(), model.names.get(p).copied(), "{} after {:?}", p, step);
                }
                let mut by_ino: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
                for (p, ino) in &model.names {
                    by_ino.entry(*ino).or_default().push(p);
                }
                for (ino, names) in by_ino {
                    let path = run(t.path(ino)).unwrap().map(|p| p.to_string());
                    prop_assert!(path.as_ref().is_some_and(|p| names.contains(&p)), "{ino}: {path:?}, not one of {names:?}");
                    // An inode of one name may have gone back to the cold tier already.
                    let counted = run(t.count_names(ino, |_| true));
                    if names.len() > 1 {
                        prop_assert_eq!(counted, names.len());
                    } else {
                        prop_assert!(counted <= 1);
                    }
                }
                let mut cold_rows = 0;
                if let Some(cold) = t.cold.as_ref().and_then(|c| c.get()) {
                    cold.view()
                        .unwrap()
                        .each(|_, _, _| {
                            cold_rows += 1;
                            Ok(())
                        })
                        .unwrap();
                }
                prop_assert_eq!(cold_rows, t.inner.lock().unwrap().cold_names);
            }
        }
    }
}
