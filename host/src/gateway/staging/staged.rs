//! One file's staged copy: its file on disk, its length, write generation and flush timing,
//! and how far it has been written sequentially, which a streaming upload may claim.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::io_error;
use super::room::Room;
use crate::backend::types::{Attrs, Error, FileKind, Timestamp};
use crate::copy_file::CopyFile;
use crate::objstore::Stream;
use crate::positioned_io::read_exact_at;

/// Out-of-order written ranges a copy keeps track of before it stops streaming.
const MAX_AHEAD: usize = 64;

/// One file's staged copy.
pub struct Staged {
    pub ino: u64,
    pub file: Arc<CopyFile>,
    disk_path: PathBuf,
    room: Arc<Room>,
    pub(super) state: RwLock<State>,
    /// Held while the copy is being uploaded, and by namespace changes that must not race one.
    pub upload: tokio::sync::Mutex<()>,
    /// The backend's length when the copy was staged: what filling it copies.
    pub backend_len: u64,
    /// Set once the copy holds the backend's content. Until then writers wait for it, and
    /// readers and flushes pass it by: the backend still has the file's latest data.
    pub filled: tokio::sync::OnceCell<()>,
}

pub(super) struct State {
    pub(super) len: u64,
    /// Counts writes; an upload that started at another generation is not the latest data.
    pub(super) generation: u64,
    /// None: due at once (left by an earlier run).
    pub(super) last_write: Option<Instant>,
    pub(super) modified: SystemTime,
    /// Uploaded and let go: writers must stage afresh.
    pub(super) retired: bool,
    pub(super) uploading: bool,
    pub(super) failures: u32,
    pub(super) next_try: Instant,
    pub(super) seq: Sequential,
    /// The streaming upload fed by `seq`, once started.
    pub(super) stream: Option<Arc<Stream>>,
}

/// How far a copy has been written sequentially, and how much of that a stream has claimed.
#[derive(Default)]
pub(super) struct Sequential {
    /// `[0, contiguous)` was written since the copy was staged.
    pub(super) contiguous: u64,
    /// Written ranges beyond `contiguous` (start → end), from writes that came out of order.
    pub(super) ahead: BTreeMap<u64, u64>,
    /// The stream claimed `[0, claimed)`: a change below it cancels the stream.
    pub(super) claimed: u64,
    /// Streams no more (rewritten, scattered, or left by an earlier run).
    pub(super) off: bool,
}

impl Sequential {
    fn record(&mut self, start: u64, end: u64) {
        if self.off || end <= self.contiguous {
            return;
        }
        if start <= self.contiguous {
            self.contiguous = end;
        } else {
            let e = self.ahead.entry(start).or_insert(end);
            *e = (*e).max(end);
            if self.ahead.len() > MAX_AHEAD {
                self.off = true;
                self.ahead.clear();
                return;
            }
        }
        while let Some((&s, &e)) = self.ahead.first_key_value() {
            if s > self.contiguous {
                break;
            }
            self.ahead.pop_first();
            self.contiguous = self.contiguous.max(e);
        }
    }

    fn truncate(&mut self, size: u64) {
        self.contiguous = self.contiguous.min(size);
        self.ahead.retain(|&s, _| s < size);
        for e in self.ahead.values_mut() {
            *e = (*e).min(size);
        }
    }
}

impl State {
    /// When the copy may be uploaded: `flush_after` past its last write (at once for a copy
    /// left by an earlier run), and not before a failed upload's next try. None while it is
    /// being uploaded.
    pub(super) fn due_at(&self, flush_after: Duration) -> Option<Instant> {
        let idle = self.last_write.map(|t| t + flush_after);
        (!self.uploading).then(|| idle.map_or(self.next_try, |at| at.max(self.next_try)))
    }

    /// Cancels the stream, if any; the copy streams again from its start only if `off` allows.
    pub(super) fn drop_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.cancel();
        }
        self.seq.claimed = 0;
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanoseconds: d.subsec_nanos(),
    }
}

impl Staged {
    pub(super) fn new(
        ino: u64,
        file: CopyFile,
        disk_path: PathBuf,
        room: Arc<Room>,
        len: u64,
        modified: SystemTime,
        backend_len: u64,
    ) -> Staged {
        let filled = match backend_len {
            0 => tokio::sync::OnceCell::new_with(Some(())),
            _ => tokio::sync::OnceCell::new(),
        };
        Staged {
            ino,
            file: Arc::new(file),
            disk_path,
            room,
            state: RwLock::new(State {
                len,
                generation: 0,
                last_write: Some(Instant::now()),
                modified,
                retired: false,
                uploading: false,
                failures: 0,
                next_try: Instant::now(),
                seq: Sequential::default(),
                stream: None,
            }),
            upload: tokio::sync::Mutex::new(()),
            backend_len,
            filled,
        }
    }

    /// Lets the copy go: no write reaches it any more, and its stream is cancelled. Its file
    /// is deleted by `Staging`, on the blocking pool.
    pub(super) fn retire(&self) {
        let mut st = self.state.write().unwrap();
        st.retired = true;
        st.drop_stream();
    }

    /// The copy's file in the staging directory.
    pub(super) fn disk_path(&self) -> &Path {
        &self.disk_path
    }

    /// True once the copy was uploaded or dropped and let go.
    pub fn is_retired(&self) -> bool {
        self.state.read().unwrap().retired
    }

    /// The length and the generation an upload starting now would carry.
    pub fn snapshot(&self) -> (u64, u64) {
        let st = self.state.read().unwrap();
        (st.len, st.generation)
    }

    /// Writes at `offset`. `Stale` when the copy was let go meanwhile: stage afresh;
    /// `NoSpace` when the data would take the disk below the reserve.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut st = self.state.write().unwrap();
        if st.retired {
            return Err(Error::Stale);
        }
        self.room.check(data.len() as u64)?;
        let end = offset.checked_add(data.len() as u64).ok_or(Error::TooBig)?;
        if offset < st.seq.claimed {
            // A rewrite of what a stream already took: it must not complete.
            st.drop_stream();
            st.seq.off = true;
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_error("writing", e))?;
        st.seq.record(offset, end);
        st.len = st.len.max(end);
        st.generation += 1;
        st.last_write = Some(Instant::now());
        st.modified = SystemTime::now();
        Ok(())
    }

    pub fn truncate(&self, size: u64) -> Result<(), Error> {
        let mut st = self.state.write().unwrap();
        if st.retired {
            return Err(Error::Stale);
        }
        if size < st.seq.claimed {
            st.drop_stream();
            st.seq.off = true;
        }
        self.file
            .file()
            .set_len(size)
            .map_err(|e| io_error("truncating", e))?;
        st.seq.truncate(size);
        st.len = size;
        st.generation += 1;
        st.last_write = Some(Instant::now());
        st.modified = SystemTime::now();
        Ok(())
    }

    /// After a write: claims the parts (of `part` bytes) of the sequentially written prefix that
    /// lie more than `lag` bytes behind its end, for the stream, starting it with `start` when
    /// there is none (None from `start`: this copy does not stream).
    pub fn stream_step<F>(&self, part: u64, lag: u64, start: F)
    where
        F: FnOnce() -> Option<Arc<Stream>>,
    {
        let mut st = self.state.write().unwrap();
        if st.retired || st.seq.off {
            return;
        }
        let end = st.seq.contiguous.saturating_sub(lag) / part * part;
        if end <= st.seq.claimed {
            return;
        }
        let stream = match &st.stream {
            Some(stream) => stream.clone(),
            None => match start() {
                Some(stream) => {
                    st.seq.claimed = 0;
                    st.stream = Some(stream.clone());
                    stream
                }
                None => {
                    st.seq.off = true;
                    return;
                }
            },
        };
        if stream.claim_to(end) {
            st.seq.claimed = end;
        }
    }

    /// The copy's stream, if one runs.
    pub fn stream(&self) -> Option<Arc<Stream>> {
        self.state.read().unwrap().stream.clone()
    }

    /// Takes the copy's stream (after a flush, or when its name changes): the copy may stream
    /// again from its start. The caller cancels or inspects it.
    pub fn take_stream(&self) -> Option<Arc<Stream>> {
        let mut st = self.state.write().unwrap();
        st.seq.claimed = 0;
        st.stream.take()
    }

    /// Up to `count` bytes from `offset`, and whether they reach the end.
    pub fn read(&self, offset: u64, count: u32) -> Result<(Vec<u8>, bool), Error> {
        let st = self.state.read().unwrap();
        if st.retired {
            return Err(Error::Stale);
        }
        let end = st.len.min(offset.saturating_add(count.into()));
        let mut buf = vec![0; end.saturating_sub(offset) as usize];
        read_exact_at(self.file.file(), &mut buf, offset).map_err(|e| io_error("reading", e))?;
        Ok((buf, end >= st.len))
    }

    /// Makes the staged data durable on the local disk.
    pub fn sync(&self) -> Result<(), Error> {
        self.file
            .file()
            .sync_data()
            .map_err(|e| io_error("syncing", e))
    }

    /// The backend's attributes of the file with the staged size and times.
    pub fn overlay(&self, mut attrs: Attrs) -> Attrs {
        let st = self.state.read().unwrap();
        attrs.kind = FileKind::Regular;
        attrs.size = st.len;
        attrs.mtime = timestamp(st.modified);
        attrs.ctime = attrs.mtime;
        attrs.change = Some(format!("staged-{}", st.generation));
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequential_prefix_follows_writes_that_arrive_out_of_order() {
        let mut seq = Sequential::default();
        seq.record(0, 10);
        seq.record(20, 30);
        assert_eq!(seq.contiguous, 10);
        seq.record(10, 20);
        assert_eq!(seq.contiguous, 30);
        assert!(seq.ahead.is_empty());
        seq.record(5, 8);
        assert_eq!(seq.contiguous, 30, "a rewrite inside the prefix");
        seq.truncate(25);
        assert_eq!(seq.contiguous, 25);
        for i in 0..=MAX_AHEAD as u64 {
            seq.record(100 + 2 * i, 101 + 2 * i);
        }
        assert!(seq.off, "too scattered to stream");
    }
}
