//! Sequential readahead for the reads a plugin answers with a blob range (object stores).
//!
//! An NFS client reads a file as READs of at most 1 MiB, a few at a time or one by one. Answered
//! one ranged GET each, a reader that keeps one READ in flight waits a whole request for every
//! megabyte. So once a READ of an object starts where an earlier one ended, the host fetches the
//! object ahead in blocks of `BLOCK` bytes, up to `AHEAD` blocks past the furthest READ of that
//! sequence, and answers READs by slicing those blocks. Blocks behind the reader are let go.
//!
//! One object can be read as several sequences at once (a copy tool that reads a file in
//! parallel ranges, readers sharing a file): a session follows up to `SEQUENCES` of them, each
//! read ahead on its own, over one set of blocks. A session belongs to one version of the file:
//! its size, mtime and change token as the gateway knows them, and the ETag of the first block
//! fetched. A block that comes back with another ETag ends the session and its READ is answered
//! by its own GET, so the bytes of two versions never mix. A mount keeps `SESSIONS` sessions,
//! the least recently read dropped first, and holds at most `BUDGET` blocks fetched ahead of
//! READs across them: past that, a READ fetches only the blocks it needs itself.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::OnceCell;

use crate::backend::types::{Attrs, Error};
use crate::objstore::BlobStore;

/// The size of a block fetched ahead.
pub const BLOCK: u64 = 4 << 20;
/// Blocks fetched ahead of the one holding the end of the furthest READ.
const AHEAD: u64 = 4;
/// Objects read ahead at once, per mount.
const SESSIONS: usize = 4;
/// Sequences read ahead at once in one object.
const SEQUENCES: usize = 4;
/// Blocks a mount holds at most before it stops fetching ahead (128 MiB).
const BUDGET: usize = 32;
/// A session not read for this long is dropped, with its blocks.
const IDLE: Duration = Duration::from_secs(10);

/// The version of a file a session reads: its size, mtime and change token as the gateway
/// knows them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Version {
    pub size: u64,
    pub mtime: (i64, u32),
    pub change: Option<String>,
}

impl Version {
    pub fn of(attrs: &Attrs) -> Version {
        Version {
            size: attrs.size,
            mtime: (attrs.mtime.seconds, attrs.mtime.nanoseconds),
            change: attrs.change.clone(),
        }
    }
}

type Block = Arc<OnceCell<Result<Bytes, Error>>>;

struct Session {
    version: Version,
    /// The ETag of the first block that arrived.
    etag: OnceLock<Option<String>>,
    state: Mutex<Reads>,
}

struct Reads {
    /// The sequences being read ahead, the most recently read last.
    sequences: Vec<Sequence>,
    /// Where recent READs of no sequence ended, the latest last: a READ starting at one of
    /// them starts a sequence.
    ends: VecDeque<u64>,
    /// Blocks fetched or being fetched.
    blocks: Blocks,
    /// When a READ last used the session.
    last_used: Instant,
}

impl Reads {
    /// Places a READ of `[offset, end)` in the sequence it continues, or in a new one when it
    /// starts where a recent READ ended, and answers that sequence's furthest end; `None` when
    /// it belongs to no sequence (its end is then remembered).
    fn follow(&mut self, offset: u64, end: u64) -> Option<u64> {
        let near = self
            .sequences
            .iter()
            .position(|s| offset.abs_diff(s.furthest) <= BLOCK);
        let furthest = match near {
            Some(i) => self.sequences.remove(i).furthest.max(end),
            None => {
                let Some(i) = self.ends.iter().position(|&e| e == offset) else {
                    if self.ends.len() == 2 * SEQUENCES {
                        self.ends.pop_front();
                    }
                    self.ends.push_back(end);
                    return None;
                };
                self.ends.remove(i);
                if self.sequences.len() == SEQUENCES {
                    self.sequences.remove(0);
                }
                end
            }
        };
        let behind = (offset / BLOCK).saturating_sub(1);
        self.sequences.push(Sequence { furthest, behind });
        Some(furthest)
    }

    /// Lets go of the blocks that no sequence needs any more.
    fn prune(&mut self) {
        let sequences = &self.sequences;
        self.blocks.retain(|b| sequences.iter().any(|s| s.keeps(b)));
    }
}

/// One sequence of READs that follow each other.
struct Sequence {
    /// The furthest end of its READs; a READ within a block of it belongs to the sequence
    /// (READs in flight arrive in any order).
    furthest: u64,
    /// The first block it still needs: the one before its latest READ's first block.
    behind: u64,
}

impl Sequence {
    /// Whether it still needs block `b`: from the one behind it to `AHEAD` past its furthest.
    fn keeps(&self, b: u64) -> bool {
        b >= self.behind && b <= (self.furthest - 1) / BLOCK + AHEAD
    }
}

/// A session's blocks by index, counted against the mount's budget while held.
struct Blocks {
    map: BTreeMap<u64, Block>,
    held: Arc<AtomicUsize>,
}

impl Blocks {
    fn insert_with(&mut self, b: u64, fetch: impl FnOnce() -> Block) {
        self.map.entry(b).or_insert_with(|| {
            self.held.fetch_add(1, Ordering::Relaxed);
            fetch()
        });
    }

    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let before = self.map.len();
        self.map.retain(|&b, _| keep(b));
        self.held
            .fetch_sub(before - self.map.len(), Ordering::Relaxed);
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        self.held.fetch_sub(self.map.len(), Ordering::Relaxed);
    }
}

type Sessions = Arc<Mutex<HashMap<String, Arc<Session>>>>;

/// The readahead sessions of one mount.
pub struct Readahead {
    sessions: Sessions,
    /// Blocks held by all sessions.
    held: Arc<AtomicUsize>,
    /// True while a task drops the sessions that went idle.
    sweeping: Arc<AtomicBool>,
    /// How long a session may go unread before it is dropped, with its blocks.
    idle: Duration,
}

impl Default for Readahead {
    fn default() -> Readahead {
        Readahead::with_idle(IDLE)
    }
}

impl Readahead {
    fn with_idle(idle: Duration) -> Readahead {
        Readahead {
            sessions: Arc::default(),
            held: Arc::default(),
            sweeping: Arc::default(),
            idle,
        }
    }

    /// `len` bytes at `offset` of `key` (less at its end) from blocks read ahead; `None` when
    /// the READ does not continue a sequence (the caller GETs it itself) or the session had to
    /// end because the object changed.
    pub async fn read(
        &self,
        store: &Arc<BlobStore>,
        key: &str,
        version: Version,
        offset: u64,
        len: u64,
    ) -> Option<Bytes> {
        let end = (offset + len).min(version.size);
        if offset >= end {
            return None;
        }
        let session = self.session(key, &version);
        let wanted = {
            let mut guard = session.state.lock().unwrap();
            let reads = &mut *guard;
            reads.last_used = Instant::now();
            let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
            match reads.follow(offset, end) {
                Some(furthest) => {
                    // The READ's own blocks always; those ahead while the mount's budget allows.
                    let ahead = (furthest - 1) / BLOCK + AHEAD;
                    let ahead = ahead.min(version.size.div_ceil(BLOCK) - 1).max(last);
                    for b in first..=ahead {
                        if b > last && self.held.load(Ordering::Relaxed) >= BUDGET {
                            break;
                        }
                        reads.blocks.insert_with(b, || {
                            let block: Block = Arc::default();
                            fetch_in_background(&session, &block, store, key, b);
                            block
                        });
                    }
                    reads.prune();
                }
                None if (first..=last).all(|b| reads.blocks.map.contains_key(&b)) => {}
                None => return None,
            }
            (first..=last)
                .map(|b| (b, reads.blocks.map[&b].clone()))
                .collect::<Vec<_>>()
        };
        let mut parts = Vec::with_capacity(wanted.len());
        for (b, block) in wanted {
            let data = block
                .get_or_init(|| fetch(&session, store, key, b))
                .await
                .clone();
            match data {
                Ok(data) => parts.push((b, data)),
                Err(_) => {
                    self.end(key, &session);
                    return None;
                }
            }
        }
        Some(slice(&parts, offset, end))
    }

    /// The session for `key` at `version`, a new one if it has none or one for another
    /// version.
    fn session(&self, key: &str, version: &Version) -> Arc<Session> {
        let mut sessions = self.sessions.lock().unwrap();
        if let Some(s) = sessions.get(key).filter(|s| s.version == *version) {
            return s.clone();
        }
        if !sessions.contains_key(key) && sessions.len() >= SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.state.lock().unwrap().last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let session = Arc::new(Session {
            version: version.clone(),
            etag: OnceLock::new(),
            state: Mutex::new(Reads {
                sequences: Vec::new(),
                ends: VecDeque::new(),
                blocks: Blocks {
                    map: BTreeMap::new(),
                    held: self.held.clone(),
                },
                last_used: Instant::now(),
            }),
        });
        sessions.insert(key.to_string(), session.clone());
        self.sweep_while_any(&sessions);
        session
    }

    /// Starts a task that drops sessions once they go idle, unless one runs; it ends when
    /// no session is left. Called with the sessions locked, as the task checks them.
    fn sweep_while_any(&self, _locked: &HashMap<String, Arc<Session>>) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let sessions = Arc::downgrade(&self.sessions);
        let (sweeping, idle) = (self.sweeping.clone(), self.idle);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(idle / 2).await;
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                let mut sessions = sessions.lock().unwrap();
                sessions.retain(|_, s| s.state.lock().unwrap().last_used.elapsed() < idle);
                if sessions.is_empty() {
                    sweeping.store(false, Ordering::SeqCst);
                    return;
                }
            }
        });
    }

    fn end(&self, key: &str, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.get(key).is_some_and(|s| Arc::ptr_eq(s, session)) {
            sessions.remove(key);
        }
    }
}

fn fetch_in_background(
    session: &Arc<Session>,
    block: &Block,
    store: &Arc<BlobStore>,
    key: &str,
    b: u64,
) {
    let (session, block, store, key) = (
        session.clone(),
        block.clone(),
        store.clone(),
        key.to_string(),
    );
    tokio::spawn(async move {
        block.get_or_init(|| fetch(&session, &store, &key, b)).await;
    });
}

/// GETs block `b` of `key`; an error when it comes back from another version of the object.
async fn fetch(session: &Session, store: &BlobStore, key: &str, b: u64) -> Result<Bytes, Error> {
    let (data, meta) = store.get_range(key, b * BLOCK, BLOCK, Vec::new()).await?;
    let etag = session.etag.get_or_init(|| meta.etag.clone());
    if *etag != meta.etag || meta.size != session.version.size {
        tracing::debug!(
            key,
            "the object changed during a readahead; reading it afresh"
        );
        return Err(Error::Stale);
    }
    Ok(Bytes::from(data))
}

/// Bytes `[offset, end)` out of consecutive blocks: a slice of one, or a copy across two.
fn slice(parts: &[(u64, Bytes)], offset: u64, end: u64) -> Bytes {
    let at = |b: u64, pos: u64| (pos - b * BLOCK) as usize;
    if let [(b, data)] = parts {
        let to = at(*b, end).min(data.len());
        return data.slice(at(*b, offset).min(to)..to);
    }
    let mut out = BytesMut::with_capacity((end - offset) as usize);
    for (b, data) in parts {
        let from = at(*b, offset.max(b * BLOCK)).min(data.len());
        let to = at(*b, end.min((b + 1) * BLOCK)).min(data.len());
        out.extend_from_slice(&data[from..to]);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_left_unread_are_dropped() {
        let readahead = Readahead::with_idle(Duration::from_millis(100));
        let version = Version {
            size: 1,
            mtime: (0, 0),
            change: None,
        };
        let first = readahead.session("a", &version);
        assert!(Arc::ptr_eq(&first, &readahead.session("a", &version)));
        assert_eq!(readahead.sessions.lock().unwrap().len(), 1);
        assert!(readahead.sweeping.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(readahead.sessions.lock().unwrap().is_empty());
        assert!(
            !readahead.sweeping.load(Ordering::SeqCst),
            "the sweeper ended"
        );

        readahead.session("b", &version);
        assert!(
            readahead.sweeping.load(Ordering::SeqCst),
            "and starts again"
        );
    }

    fn reads(held: &Arc<AtomicUsize>) -> Reads {
        Reads {
            sequences: Vec::new(),
            ends: VecDeque::new(),
            blocks: Blocks {
                map: BTreeMap::new(),
                held: held.clone(),
            },
            last_used: Instant::now(),
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn readers_of_parallel_ranges_each_become_a_sequence() {
        let mut reads = reads(&Arc::default());
        let starts = [0, 100 * MIB, 300 * MIB];
        // Each reader's first READ only marks where a sequence would start.
        for at in starts {
            assert_eq!(reads.follow(at, at + MIB), None);
        }
        // Interleaved, each next READ continues its own reader's sequence.
        for step in 1..10 {
            for at in starts {
                let end = at + (step + 1) * MIB;
                assert_eq!(reads.follow(end - MIB, end), Some(end), "reader at {at}");
            }
        }
        assert_eq!(reads.sequences.len(), starts.len());
        // READs in flight arrive out of order within a block of the furthest.
        assert_eq!(reads.follow(7 * MIB, 8 * MIB), Some(10 * MIB));
    }

    #[test]
    fn random_reads_start_no_sequence_and_are_not_remembered_without_bound() {
        let mut reads = reads(&Arc::default());
        let mut at = 12_345u64;
        for _ in 0..100 {
            at = (at * 7_919 + 104_729) % (1 << 34);
            assert_eq!(reads.follow(at, at + 4096), None);
        }
        assert!(reads.sequences.is_empty());
        assert_eq!(reads.ends.len(), 2 * SEQUENCES);
    }

    #[test]
    fn the_least_recently_read_sequence_gives_way() {
        let mut reads = reads(&Arc::default());
        let start = |reads: &mut Reads, at: u64| {
            reads.follow(at, at + MIB);
            reads.follow(at + MIB, at + 2 * MIB).expect("a sequence")
        };
        for r in 0..SEQUENCES as u64 {
            start(&mut reads, r * 100 * MIB);
        }
        // The first reader reads on, so the second is the least recently read one.
        assert!(reads.follow(2 * MIB, 3 * MIB).is_some());
        start(&mut reads, 900 * MIB);
        assert_eq!(reads.sequences.len(), SEQUENCES);
        assert!(reads.follow(3 * MIB, 4 * MIB).is_some(), "the first stays");
        assert_eq!(reads.follow(102 * MIB, 103 * MIB), None, "the second went");
    }

    #[test]
    fn blocks_no_sequence_needs_are_let_go_and_uncounted() {
        let held = Arc::new(AtomicUsize::new(0));
        let mut reads = reads(&held);
        for b in 0..20 {
            reads.blocks.insert_with(b, Block::default);
            reads
                .blocks
                .insert_with(b, || unreachable!("a block is fetched once"));
        }
        assert_eq!(held.load(Ordering::Relaxed), 20);
        // A sequence whose latest READ is in block 5: it needs blocks 4 to 5 + AHEAD.
        reads.follow(5 * BLOCK - MIB, 5 * BLOCK);
        reads.follow(5 * BLOCK, 5 * BLOCK + MIB);
        reads.prune();
        let kept: Vec<u64> = reads.blocks.map.keys().copied().collect();
        assert_eq!(kept, (4..=5 + AHEAD).collect::<Vec<_>>());
        assert_eq!(held.load(Ordering::Relaxed), kept.len());
        drop(reads);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    fn block(b: u64) -> (u64, Bytes) {
        let data: Vec<u8> = (0..BLOCK).map(|i| ((b * BLOCK + i) % 251) as u8).collect();
        (b, Bytes::from(data))
    }

    fn expected(offset: u64, end: u64) -> Vec<u8> {
        (offset..end).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_are_cut_from_one_block_or_joined_across_two() {
        let one = [block(2)];
        let (offset, end) = (2 * BLOCK + 10, 2 * BLOCK + 5000);
        let got = slice(&one, offset, end);
        assert_eq!(&got[..], &expected(offset, end)[..]);
        assert_eq!(got.as_ptr(), one[0].1[10..].as_ptr(), "a slice, not a copy");

        let two = [block(2), block(3)];
        let (offset, end) = (3 * BLOCK - 100, 3 * BLOCK + 300);
        assert_eq!(&slice(&two, offset, end)[..], &expected(offset, end)[..]);
    }

    #[test]
    fn a_short_last_block_ends_the_read() {
        let (b, data) = block(5);
        let short = [(b, data.slice(..1000))];
        let got = slice(&short, 5 * BLOCK + 900, 5 * BLOCK + 2000);
        assert_eq!(&got[..], &expected(5 * BLOCK + 900, 5 * BLOCK + 1000)[..]);
    }
}
