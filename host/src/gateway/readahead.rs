//! Sequential readahead for the reads a plugin answers with a blob range (object stores).
//!
//! An NFS client reads a file as READs of at most 1 MiB, a few at a time or one by one. Answered
//! one ranged GET each, a reader that keeps one READ in flight waits a whole request for every
//! megabyte. So once a second READ of an object starts where the one before ended, the host
//! fetches the object ahead in blocks of `BLOCK` bytes, up to `AHEAD` blocks past the furthest
//! READ, and answers READs by slicing those blocks. Blocks behind the reader are let go.
//!
//! A session belongs to one version of the file: its size, mtime and change token as the
//! gateway knows them, and the ETag of the first block fetched. A block that comes back with
//! another ETag ends the session and its READ is answered by its own GET, so the bytes of two
//! versions never mix. A mount keeps `SESSIONS` sessions, the least recently read dropped
//! first; each holds the blocks of its READs in flight, one behind them and `AHEAD` past them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::OnceCell;

use crate::plugin::bindings::types::{Attrs, Error};
use crate::plugin::blobstore::BlobStore;

/// The size of a block fetched ahead.
pub const BLOCK: u64 = 4 << 20;
/// Blocks fetched ahead of the one holding the end of the furthest READ.
const AHEAD: u64 = 4;
/// Objects read ahead at once, per mount.
const SESSIONS: usize = 4;
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
    /// The furthest end of a READ of the sequence being read ahead; a READ within a block of
    /// it belongs to the sequence (READs in flight arrive in any order).
    furthest: Option<u64>,
    /// Where the last READ not answered from blocks ended: a READ starting there starts a
    /// sequence.
    last_end: Option<u64>,
    /// Blocks fetched or being fetched, by index.
    blocks: BTreeMap<u64, Block>,
    /// When a READ last used the session.
    last_used: Instant,
}

type Sessions = Arc<Mutex<HashMap<String, Arc<Session>>>>;

/// The readahead sessions of one mount.
pub struct Readahead {
    sessions: Sessions,
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
            let mut reads = session.state.lock().unwrap();
            reads.last_used = Instant::now();
            let first = offset / BLOCK;
            let last = (end - 1) / BLOCK;
            let held = (first..=last).all(|b| reads.blocks.contains_key(&b));
            let near = reads.furthest.is_some_and(|f| offset.abs_diff(f) <= BLOCK);
            if !held && !near {
                if reads.last_end != Some(offset) {
                    reads.last_end = Some(end);
                    return None;
                }
                reads.blocks.clear();
                reads.furthest = None;
            }
            let furthest = reads.furthest.map_or(end, |f| f.max(end));
            reads.furthest = Some(furthest);
            let furthest = (furthest - 1) / BLOCK;
            let blocks_in_file = version.size.div_ceil(BLOCK);
            for b in first..(furthest + 1 + AHEAD).min(blocks_in_file) {
                reads.blocks.entry(b).or_insert_with(|| {
                    let block: Block = Arc::default();
                    fetch_in_background(&session, &block, store, key, b);
                    block
                });
            }
            // One block behind the READ stays, for READs that arrive out of order.
            let keep_from = first.saturating_sub(1);
            reads.blocks = reads.blocks.split_off(&keep_from);
            (first..=last)
                .map(|b| (b, reads.blocks[&b].clone()))
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
                furthest: None,
                last_end: None,
                blocks: BTreeMap::new(),
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
