//! Byte-range locks that NFS clients hold on files (NLM), kept by the host per file, with the
//! POSIX rules `fcntl` has: a lock is shared or exclusive over a range of 64-bit offsets, an
//! owner (client, process, owner handle) never conflicts with itself, a new lock of an owner
//! replaces what the same owner held over its range (so a lock can be upgraded, downgraded or
//! split), and an unlock releases any part of what the owner holds. A request that conflicts
//! may wait: waiters are granted in the order they came as soon as nothing conflicts any more,
//! and whoever released the lock is told which waiters it granted, to call them back. Every
//! lock and waiter counts against the table's bounds, so a client that floods it gets a clear
//! refusal and takes nothing from other clients' locks. The table knows nothing of the wire:
//! files are numbers and owners opaque bytes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::client_quota::{ClientQuota, QuotaLimits};

/// Who holds a lock: the client (its name or address), the process id it sends (`svid`), and
/// its opaque owner handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub client: Arc<str>,
    pub svid: u32,
    pub handle: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// Offsets `start..end`; `end` is `u64::MAX` for a lock to the end of the file and beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// The range NLM's (offset, length) names; a length of 0 means to the end of the file.
    pub fn of(offset: u64, len: u64) -> Range {
        let end = if len == 0 {
            u64::MAX
        } else {
            offset.saturating_add(len)
        };
        Range { start: offset, end }
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether the two ranges overlap or touch, so that one lock can cover both.
    fn joins(&self, other: &Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A lock held, or asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub owner: Owner,
    pub range: Range,
    pub mode: Mode,
}

impl Lock {
    fn conflicts_with(&self, other: &Lock) -> bool {
        self.owner != other.owner
            && self.range.overlaps(&other.range)
            && (self.mode == Mode::Exclusive || other.mode == Mode::Exclusive)
    }
}

/// Why a lock was not granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another owner holds this conflicting lock.
    Conflict(Lock),
    /// The table, or the client's share of it, is full.
    Full,
}

/// What [`LockTable::lock`] did with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locked {
    Granted,
    /// The request conflicts and waits; it is granted later (see [`Granted`]).
    Waiting,
}

/// A waiter granted by a release: the file, the lock it now holds, and the caller's token
/// (what it needs to call the client back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted<T> {
    pub file: u64,
    pub lock: Lock,
    pub token: T,
}

/// How many locks and waiters the table holds at most, in all and per client.
pub type LockLimits = QuotaLimits;

struct Waiter<T> {
    lock: Lock,
    token: T,
}

struct FileLocks<T> {
    held: Vec<Lock>,
    waiting: Vec<Waiter<T>>,
}

impl<T> Default for FileLocks<T> {
    fn default() -> Self {
        FileLocks {
            held: Vec::new(),
            waiting: Vec::new(),
        }
    }
}

/// The locks of every file; `T` is what a waiter needs to be called back.
pub struct LockTable<T> {
    files: HashMap<u64, FileLocks<T>>,
    /// Locks and waiters per client, and in all.
    held: ClientQuota,
}

impl<T> LockTable<T> {
    pub fn new(limits: LockLimits) -> LockTable<T> {
        LockTable {
            files: HashMap::new(),
            held: ClientQuota::new(limits),
        }
    }

    /// A lock of another owner that `wanted` would conflict with, if any (NLM TEST).
    pub fn test(&self, file: u64, wanted: &Lock) -> Option<Lock> {
        let locks = self.files.get(&file)?;
        locks
            .held
            .iter()
            .find(|h| wanted.conflicts_with(h))
            .cloned()
    }

    /// Grants `wanted` when nothing conflicts. Otherwise refuses it, or with `wait`, queues it
    /// to be granted later with `token`.
    pub fn lock(&mut self, file: u64, wanted: Lock, wait: Option<T>) -> Result<Locked, Refused> {
        if let Some(conflict) = self.test(file, &wanted) {
            let Some(token) = wait else {
                return Err(Refused::Conflict(conflict));
            };
            // A request already waiting is not queued twice (clients resend blocked requests).
            let queued = self
                .files
                .get(&file)
                .expect("a file with a conflicting lock");
            if queued.waiting.iter().any(|w| w.lock == wanted) {
                return Ok(Locked::Waiting);
            }
            self.take_room(&wanted.owner.client, 1)?;
            let locks = self
                .files
                .get_mut(&file)
                .expect("a file with a conflicting lock");
            locks.waiting.push(Waiter {
                lock: wanted,
                token,
            });
            return Ok(Locked::Waiting);
        }
        self.grant(file, wanted)?;
        Ok(Locked::Granted)
    }

    /// Puts `lock` in place of what its owner held over its range, merging it with the owner's
    /// locks of the same mode that it touches. Refused, changing nothing, when the locks this
    /// leaves the owner need room the table does not have.
    fn grant(&mut self, file: u64, lock: Lock) -> Result<(), Refused> {
        let held: Vec<Lock> = self.files.get(&file).map_or_else(Vec::new, |f| {
            f.held
                .iter()
                .filter(|h| h.owner == lock.owner)
                .cloned()
                .collect()
        });
        let before = held.len();
        let mut mine = carve(held, &lock.range);
        let mut merged = lock;
        mine.retain(|h| {
            let joins = h.mode == merged.mode && h.range.joins(&merged.range);
            if joins {
                merged.range.start = merged.range.start.min(h.range.start);
                merged.range.end = merged.range.end.max(h.range.end);
            }
            !joins
        });
        let client = merged.owner.client.clone();
        let owner = merged.owner.clone();
        mine.push(merged);
        let after = mine.len();
        if after > before {
            self.take_room(&client, after - before)?;
        } else {
            self.held.give_back(&client, before - after);
        }
        let entry = self.files.entry(file).or_default();
        entry.held.retain(|h| h.owner != owner);
        entry.held.extend(mine);
        Ok(())
    }

    /// Releases what `owner` holds over `range` of `file` (NLM UNLOCK, and CANCEL of a
    /// granted lock), and grants the waiters it unblocks.
    pub fn unlock(&mut self, file: u64, owner: &Owner, range: Range) -> Vec<Granted<T>> {
        let Some(locks) = self.files.get_mut(&file) else {
            return Vec::new();
        };
        let before = locks.held.iter().filter(|h| &h.owner == owner).count();
        let (mine, others): (Vec<Lock>, Vec<Lock>) =
            locks.held.drain(..).partition(|h| &h.owner == owner);
        let mine = carve(mine, &range);
        let after = mine.len();
        locks.held = others;
        locks.held.extend(mine);
        if after > before {
            // Splitting a lock in two takes room; a full table still lets the owner unlock.
            self.held.force(&owner.client, after - before);
        } else {
            self.held.give_back(&owner.client, before - after);
        }
        self.wake(file)
    }

    /// Drops a waiting request (NLM CANCEL); true when it was waiting.
    pub fn cancel(&mut self, file: u64, wanted: &Lock) -> bool {
        let Some(locks) = self.files.get_mut(&file) else {
            return false;
        };
        let before = locks.waiting.len();
        locks.waiting.retain(|w| &w.lock != wanted);
        let dropped = before - locks.waiting.len();
        self.held.give_back(&wanted.owner.client, dropped);
        self.forget_if_empty(file);
        dropped > 0
    }

    /// Drops every lock and waiter of a client (NLM FREE_ALL, or its reboot), and grants the
    /// waiters of other clients that this unblocks.
    pub fn free_all(&mut self, client: &str) -> Vec<Granted<T>> {
        let files: Vec<u64> = self.files.keys().copied().collect();
        let mut granted = Vec::new();
        for file in files {
            let Some(locks) = self.files.get_mut(&file) else {
                continue;
            };
            let before = locks.held.len() + locks.waiting.len();
            locks.held.retain(|h| &*h.owner.client != client);
            locks.waiting.retain(|w| &*w.lock.owner.client != client);
            if before != locks.held.len() + locks.waiting.len() {
                granted.extend(self.wake(file));
            }
        }
        self.held.forget(client);
        granted
    }

    /// The clients that hold locks or wait for them.
    pub fn clients(&self) -> Vec<Arc<str>> {
        self.held.clients()
    }

    /// Locks and waiters held in all.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Grants, in order, the waiters of `file` that nothing blocks any more.
    fn wake(&mut self, file: u64) -> Vec<Granted<T>> {
        let mut granted = Vec::new();
        while let Some(locks) = self.files.get_mut(&file) {
            let ready = locks
                .waiting
                .iter()
                .position(|w| !locks.held.iter().any(|h| w.lock.conflicts_with(h)));
            let Some(at) = ready else { break };
            let waiter = locks.waiting.remove(at);
            // The waiter's room passes to its lock. A waiter that then finds the table full is
            // dropped, and its client's next try (clients retry blocked locks) is refused.
            self.held.give_back(&waiter.lock.owner.client, 1);
            if self.grant(file, waiter.lock.clone()).is_ok() {
                granted.push(Granted {
                    file,
                    lock: waiter.lock,
                    token: waiter.token,
                });
            }
        }
        self.forget_if_empty(file);
        granted
    }

    fn take_room(&mut self, client: &Arc<str>, n: usize) -> Result<(), Refused> {
        match self.held.take(client, n) {
            true => Ok(()),
            false => Err(Refused::Full),
        }
    }

    fn forget_if_empty(&mut self, file: u64) {
        if self
            .files
            .get(&file)
            .is_some_and(|f| f.held.is_empty() && f.waiting.is_empty())
        {
            self.files.remove(&file);
        }
    }
}

/// The parts of `locks` outside `range`: a lock across it is split in two.
fn carve(locks: Vec<Lock>, range: &Range) -> Vec<Lock> {
    let mut out = Vec::with_capacity(locks.len() + 1);
    for lock in locks {
        if !lock.range.overlaps(range) {
            out.push(lock);
            continue;
        }
        if lock.range.start < range.start {
            let mut left = lock.clone();
            left.range.end = range.start;
            out.push(left);
        }
        if lock.range.end > range.end {
            let mut right = lock;
            right.range.start = range.end;
            out.push(right);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOMY: LockLimits = LockLimits {
        total: 1000,
        per_client: 1000,
    };

    fn owner(client: &str, svid: u32) -> Owner {
        Owner {
            client: client.into(),
            svid,
            handle: vec![svid as u8],
        }
    }

    fn lock(o: &Owner, start: u64, end: u64, mode: Mode) -> Lock {
        Lock {
            owner: o.clone(),
            range: Range { start, end },
            mode,
        }
    }

    #[test]
    fn conflicts_are_between_owners_and_need_an_exclusive_lock() {
        let (a, b) = (owner("a", 1), owner("b", 1));
        let mut t = LockTable::<()>::new(ROOMY);
        assert_eq!(
            t.lock(1, lock(&a, 0, 10, Mode::Shared), None),
            Ok(Locked::Granted)
        );
        assert_eq!(
            t.lock(1, lock(&b, 5, 20, Mode::Shared), None),
            Ok(Locked::Granted)
        );
        let refused = t.lock(1, lock(&b, 8, 9, Mode::Exclusive), None);
        assert_eq!(
            refused,
            Err(Refused::Conflict(lock(&a, 0, 10, Mode::Shared)))
        );
        assert_eq!(t.test(1, &lock(&b, 10, 30, Mode::Exclusive)), None);
        assert_eq!(
            t.test(2, &lock(&b, 0, 10, Mode::Exclusive)),
            None,
            "another file"
        );
        // The owner's own shared lock upgrades in place.
        t.unlock(1, &b, Range::of(0, 0));
        assert_eq!(
            t.lock(1, lock(&a, 0, 10, Mode::Exclusive), None),
            Ok(Locked::Granted)
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn an_unlock_in_the_middle_splits_a_lock_and_the_owner_merges_touching_locks() {
        let a = owner("a", 1);
        let mut t = LockTable::<()>::new(ROOMY);
        t.lock(1, lock(&a, 0, 100, Mode::Exclusive), None).unwrap();
        t.unlock(1, &a, Range::of(40, 20));
        assert_eq!(t.len(), 2);
        let b = owner("b", 2);
        assert!(t.test(1, &lock(&b, 40, 60, Mode::Exclusive)).is_none());
        assert!(t.test(1, &lock(&b, 39, 41, Mode::Shared)).is_some());
        t.lock(1, lock(&a, 40, 60, Mode::Exclusive), None).unwrap();
        assert_eq!(t.len(), 1, "merged back into one lock");
    }

    #[test]
    fn waiters_are_granted_in_order_when_the_holder_unlocks_or_goes_away() {
        let (a, b, c) = (owner("a", 1), owner("b", 1), owner("c", 1));
        let mut t = LockTable::new(ROOMY);
        t.lock(7, lock(&a, 0, u64::MAX, Mode::Exclusive), None)
            .unwrap();
        assert_eq!(
            t.lock(7, lock(&b, 0, 1, Mode::Exclusive), Some("b")),
            Ok(Locked::Waiting)
        );
        assert_eq!(
            t.lock(7, lock(&b, 0, 1, Mode::Exclusive), Some("b")),
            Ok(Locked::Waiting)
        );
        assert_eq!(
            t.lock(7, lock(&c, 0, 1, Mode::Exclusive), Some("c")),
            Ok(Locked::Waiting)
        );
        assert_eq!(t.len(), 3, "a resent request waits once");
        assert!(
            t.unlock(7, &a, Range::of(5, 0)).is_empty(),
            "still held over 0..5"
        );
        let granted = t.free_all("a");
        assert_eq!(granted.len(), 1);
        assert_eq!((granted[0].file, granted[0].token), (7, "b"));
        let granted = t.unlock(7, &b, Range::of(0, 0));
        assert_eq!(granted.iter().map(|g| g.token).collect::<Vec<_>>(), ["c"]);
        assert!(!t.cancel(7, &lock(&c, 0, 1, Mode::Exclusive)));
        t.unlock(7, &c, Range::of(0, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_client_that_floods_the_table_is_refused_and_others_keep_their_room() {
        let limits = LockLimits {
            total: 10,
            per_client: 4,
        };
        let (a, b) = (owner("a", 1), owner("b", 1));
        let mut t = LockTable::<()>::new(limits);
        for i in 0..4 {
            t.lock(i, lock(&a, 0, 1, Mode::Shared), None).unwrap();
        }
        assert_eq!(
            t.lock(9, lock(&a, 0, 1, Mode::Shared), None),
            Err(Refused::Full)
        );
        // Splitting its own lock needs room too; unlocking never does.
        assert_eq!(
            t.lock(0, lock(&a, 5, 6, Mode::Shared), None),
            Err(Refused::Full)
        );
        t.unlock(0, &a, Range::of(0, 0));
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.lock(0, lock(&b, 0, 1, Mode::Shared), None),
            Ok(Locked::Granted)
        );
        t.free_all("a");
        t.free_all("b");
        assert!(t.is_empty());
    }

    /// One step of a property test: (owner, start, len, exclusive, unlock).
    fn step() -> impl Strategy<Value = (u32, u64, u64, bool, bool)> {
        (0u32..3, 0u64..12, 0u64..6, any::<bool>(), any::<bool>())
    }

    proptest! {
        /// The table agrees with a model that keeps, per byte of a small file, who holds it
        /// and how: every TEST answers as the model does, and every lock or unlock changes
        /// what the model says it changes.
        #[test]
        fn agrees_with_a_per_byte_model(steps in proptest::collection::vec(step(), 1..40)) {
            const SIZE: usize = 20; // "to the end" covers bytes up to SIZE in the model
            let owners: Vec<Owner> = (0..3).map(|i| owner(&format!("c{i}"), i)).collect();
            let mut t = LockTable::<()>::new(ROOMY);
            // Per byte: per owner, None or Some(exclusive).
            let mut model = [[None::<bool>; 3]; SIZE];
            let bytes = |start: u64, len: u64| {
                let end = if len == 0 { SIZE } else { (start + len) as usize };
                start as usize..end.min(SIZE)
            };
            for (o, start, len, exclusive, unlock) in steps {
                let who = &owners[o as usize];
                let range = Range::of(start, len);
                if unlock {
                    t.unlock(0, who, range);
                    for b in bytes(start, len) {
                        model[b][o as usize] = None;
                    }
                    continue;
                }
                let mode = if exclusive { Mode::Exclusive } else { Mode::Shared };
                let wanted = Lock { owner: who.clone(), range, mode };
                let conflict = bytes(start, len).any(|b| {
                    (0..3).any(|other| other != o as usize && match model[b][other] {
                        Some(theirs) => theirs || exclusive,
                        None => false,
                    })
                });
                prop_assert_eq!(t.test(0, &wanted).is_some(), conflict);
                let result = t.lock(0, wanted, None);
                prop_assert_eq!(result.is_ok(), !conflict);
                if !conflict {
                    for b in bytes(start, len) {
                        model[b][o as usize] = Some(exclusive);
                    }
                }
            }
            // Finally every byte and owner: a one-byte exclusive TEST by a fourth owner
            // conflicts exactly where the model holds something.
            let probe = owner("probe", 9);
            for (b, holders) in model.iter().enumerate() {
                let wanted = Lock { owner: probe.clone(), range: Range::of(b as u64, 1), mode: Mode::Exclusive };
                prop_assert_eq!(t.test(0, &wanted).is_some(), holders.iter().any(Option::is_some));
            }
        }
    }
}
