//! Write staging for whole-object mounts (S3, Hub buckets).
//!
//! Such backends store whole objects, while NFS writes ranges. The host keeps every file being
//! written as a local staged copy in the state directory, named by its inode number, and answers
//! reads and sizes from it; the gateway flushes a staged file through the plugin's `commit` once
//! it has been idle for the mount's flush delay, at shutdown, and on request. A staged copy is
//! deleted only after an upload that saw its latest write, so acknowledged data stays on disk
//! until the backend has it; at start, copies left by an earlier run are flushed again. This
//! module owns the copies and their bookkeeping; the gateway decides when to flush.
//!
//! A copy also tracks how far it has been written from its start without a gap. While that
//! prefix grows, the gateway uploads its finished parts early (`stream_step`, a streaming
//! multipart upload of the blob store). Claims and the writes checked against them take the
//! copy's lock, so a write into a claimed part (or a truncation below one) cancels the stream
//! before any upload could complete it with other bytes.
//!
//! Staging is bounded (`Budget`): a mount keeps at most so many copies (each an open file) at
//! once, and a new one waits (`Busy`, NFS3ERR_JUKEBOX) until uploads let some go; no write or
//! fill takes the state directory's disk below a reserve of free space (`NoSpace`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::types::{Attrs, Error, FileKind, Timestamp};
use crate::copy_file::CopyFile;
use crate::objstore::Stream;
use crate::plugin::staged_file::read_exact_at;

/// Longest pause between attempts to upload a file whose uploads fail.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Out-of-order written ranges a copy keeps track of before it stops streaming.
const MAX_AHEAD: usize = 64;
/// Free bytes left on the state directory's disk unless configured.
const DEFAULT_RESERVE: u64 = 256 << 20;
/// Staged copies a mount keeps at once unless configured.
const DEFAULT_MAX_FILES: usize = 256;

/// What a mount's staging may take of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Free bytes writes leave on the state directory's file system.
    pub reserve: u64,
    /// Staged copies (each an open file) at once.
    pub max_files: usize,
}

impl Budget {
    /// The configured values, or the defaults.
    pub fn new(reserve: Option<u64>, max_files: Option<usize>) -> Budget {
        Budget {
            reserve: reserve.unwrap_or(DEFAULT_RESERVE),
            max_files: max_files.unwrap_or(DEFAULT_MAX_FILES),
        }
    }
}

/// The staged copies of one mount.
pub struct Staging {
    dir: PathBuf,
    flush_after: Duration,
    max_files: usize,
    room: Arc<Room>,
    files: Mutex<HashMap<u64, Arc<Staged>>>,
}

/// Bytes staged between two measures of the free space (a `statvfs` costs microseconds; a
/// disk filled by others meanwhile costs at most this much of the reserve).
const MEASURE_EVERY: u64 = 64 << 20;

/// The free space staged data may use: the state directory's disk, less a reserve.
struct Room {
    dir: PathBuf,
    reserve: u64,
    /// Bytes that may still be staged before the free space is measured again.
    credit: Mutex<u64>,
}

impl Room {
    fn new(dir: &Path, reserve: u64) -> Room {
        Room {
            dir: dir.to_path_buf(),
            reserve,
            credit: Mutex::new(0),
        }
    }

    /// Refuses `bytes` more when they would leave less than the reserve free.
    fn check(&self, bytes: u64) -> Result<(), Error> {
        let mut credit = self.credit.lock().unwrap();
        // No credit left: measure, even for nothing (a new, empty copy).
        if *credit > 0 && *credit >= bytes {
            *credit -= bytes;
            return Ok(());
        }
        let available = free_bytes(&self.dir).map_err(|e| io_error("measuring free space", e))?;
        let usable = available.saturating_sub(self.reserve);
        if usable == 0 || usable < bytes {
            *credit = 0;
            tracing::warn!(dir = %self.dir.display(), available, bytes, reserve = self.reserve, "staging refused: the state directory's disk is nearly full");
            return Err(Error::NoSpace);
        }
        *credit = (usable - bytes).min(MEASURE_EVERY);
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

/// One file's staged copy.
pub struct Staged {
    pub ino: u64,
    pub file: Arc<CopyFile>,
    disk_path: PathBuf,
    room: Arc<Room>,
    state: RwLock<State>,
    /// Held while the copy is being uploaded, and by namespace changes that must not race one.
    pub upload: tokio::sync::Mutex<()>,
    /// The backend's length when the copy was staged: what filling it copies.
    pub backend_len: u64,
    /// Set once the copy holds the backend's content. Until then writers wait for it, and
    /// readers and flushes pass it by: the backend still has the file's latest data.
    pub filled: tokio::sync::OnceCell<()>,
}

struct State {
    len: u64,
    /// Counts writes; an upload that started at another generation is not the latest data.
    generation: u64,
    /// None: due at once (left by an earlier run).
    last_write: Option<Instant>,
    modified: SystemTime,
    /// Uploaded and let go: writers must stage afresh.
    retired: bool,
    uploading: bool,
    failures: u32,
    next_try: Instant,
    seq: Sequential,
    /// The streaming upload fed by `seq`, once started.
    stream: Option<Arc<Stream>>,
}

/// How far a copy has been written sequentially, and how much of that a stream has claimed.
#[derive(Default)]
struct Sequential {
    /// `[0, contiguous)` was written since the copy was staged.
    contiguous: u64,
    /// Written ranges beyond `contiguous` (start → end), from writes that came out of order.
    ahead: BTreeMap<u64, u64>,
    /// The stream claimed `[0, claimed)`: a change below it cancels the stream.
    claimed: u64,
    /// Streams no more (rewritten, scattered, or left by an earlier run).
    off: bool,
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
    fn due_at(&self, flush_after: Duration) -> Option<Instant> {
        let idle = self.last_write.map(|t| t + flush_after);
        (!self.uploading).then(|| idle.map_or(self.next_try, |at| at.max(self.next_try)))
    }

    /// Cancels the stream, if any; the copy streams again from its start only if `off` allows.
    fn drop_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.cancel();
        }
        self.seq.claimed = 0;
    }
}

fn io_error(what: &str, e: io::Error) -> Error {
    tracing::error!("staging: {what}: {e}");
    match e.kind() {
        io::ErrorKind::StorageFull => Error::NoSpace,
        _ => Error::Io,
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanoseconds: d.subsec_nanos(),
    }
}

impl Staging {
    /// Opens a mount's staging directory. Copies an earlier run left behind are registered as
    /// due at once; their inode numbers are returned.
    pub fn open(
        dir: &Path,
        flush_after: Duration,
        budget: Budget,
    ) -> io::Result<(Staging, Vec<u64>)> {
        std::fs::create_dir_all(dir)?;
        let staging = Staging {
            dir: dir.to_path_buf(),
            flush_after,
            max_files: budget.max_files,
            room: Arc::new(Room::new(dir, budget.reserve)),
            files: Mutex::new(HashMap::new()),
        };
        let mut left = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(ino) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let file = CopyFile::open(&entry.path(), false)?;
            let meta = file.file().metadata()?;
            let (room, path) = (staging.room.clone(), entry.path());
            let staged = Staged::new(ino, file, path, room, meta.len(), meta.modified()?, 0);
            {
                let mut st = staged.state.write().unwrap();
                st.last_write = None;
                st.seq.off = true;
            }
            staging.files.lock().unwrap().insert(ino, Arc::new(staged));
            left.push(ino);
        }
        Ok((staging, left))
    }

    /// The filled staged copy of `ino`, if there is one.
    pub fn get(&self, ino: u64) -> Option<Arc<Staged>> {
        let files = self.files.lock().unwrap();
        files.get(&ino).filter(|s| s.filled.initialized()).cloned()
    }

    /// The staged copy of `ino`, made empty if there was none; the backend holds `backend_len`
    /// bytes of it, which the first writer copies in (`filled`) before anyone writes. `Busy`
    /// when the mount keeps as many copies as its budget allows, `NoSpace` when the disk is
    /// down to the reserve or the backend's content would not fit above it.
    pub fn begin(&self, ino: u64, backend_len: u64) -> Result<Arc<Staged>, Error> {
        let mut files = self.files.lock().unwrap();
        if let Some(staged) = files.get(&ino) {
            return Ok(staged.clone());
        }
        if files.len() >= self.max_files {
            tracing::warn!(dir = %self.dir.display(), files = files.len(), "staging refused: the mount has as many staged files as it may keep; the client retries once uploads let some go");
            return Err(Error::Busy);
        }
        self.room.check(backend_len)?;
        let disk_path = self.dir.join(ino.to_string());
        let file =
            CopyFile::open(&disk_path, true).map_err(|e| io_error("creating a staged copy", e))?;
        // The copy's name must survive a crash as well as its data.
        #[cfg(unix)]
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("syncing the staging directory", e))?;
        let room = self.room.clone();
        let staged = Staged::new(
            ino,
            file,
            disk_path,
            room,
            0,
            SystemTime::now(),
            backend_len,
        );
        let staged = Arc::new(staged);
        files.insert(ino, staged.clone());
        Ok(staged)
    }

    /// Drops `staged`, whose filling failed, unless another copy has replaced it already.
    pub fn abandon(&self, staged: &Arc<Staged>) {
        let mut files = self.files.lock().unwrap();
        if files
            .get(&staged.ino)
            .is_some_and(|s| Arc::ptr_eq(s, staged))
        {
            files.remove(&staged.ino);
        }
        drop(files);
        staged.retire();
    }

    /// Drops a staged copy whose file is gone (removed, or replaced by a rename).
    pub fn discard(&self, ino: u64) {
        if let Some(staged) = self.files.lock().unwrap().remove(&ino) {
            staged.retire();
        }
    }

    /// Every staged copy, as it is (to hold their upload locks).
    pub fn snapshot_all(&self) -> Vec<Arc<Staged>> {
        self.files.lock().unwrap().values().cloned().collect()
    }

    /// When the next copy becomes due (`due`), if any copy is waiting at all.
    pub fn next_due(&self) -> Option<Instant> {
        let files = self.files.lock().unwrap();
        files
            .values()
            .filter(|s| s.filled.initialized())
            .filter_map(|s| s.state.read().unwrap().due_at(self.flush_after))
            .min()
    }

    /// Copies idle for the flush delay and not waiting out a failure, marked as uploading.
    pub fn due(&self) -> Vec<Arc<Staged>> {
        let now = Instant::now();
        self.files
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.filled.initialized())
            .filter(|s| {
                let mut st = s.state.write().unwrap();
                let due = st.due_at(self.flush_after).is_some_and(|at| at <= now);
                if due {
                    st.uploading = true;
                }
                due
            })
            .cloned()
            .collect()
    }

    /// Every staged copy, marked as uploading (a flush on request or at shutdown).
    pub fn all(&self) -> Vec<Arc<Staged>> {
        let files = self.files.lock().unwrap();
        let filled: Vec<_> = files
            .values()
            .filter(|s| s.filled.initialized())
            .cloned()
            .collect();
        for s in &filled {
            s.state.write().unwrap().uploading = true;
        }
        filled
    }

    /// Staged copies and the bytes they hold.
    pub fn pending(&self) -> (usize, u64) {
        let files = self.files.lock().unwrap();
        let bytes = files.values().map(|s| s.state.read().unwrap().len).sum();
        (files.len(), bytes)
    }

    /// After an upload of `generation` succeeded: lets the copy go unless it was written since.
    /// True when the backend now holds the latest data.
    pub fn uploaded(&self, staged: &Arc<Staged>, generation: u64) -> bool {
        let mut files = self.files.lock().unwrap();
        let mut st = staged.state.write().unwrap();
        st.uploading = false;
        st.failures = 0;
        if st.generation != generation || st.retired {
            return false;
        }
        if files
            .get(&staged.ino)
            .is_some_and(|s| Arc::ptr_eq(s, staged))
        {
            files.remove(&staged.ino);
        }
        st.retired = true;
        st.drop_stream();
        drop(st);
        staged.remove_from_disk();
        true
    }

    /// After an upload failed: tries again later, backing off.
    pub fn failed(&self, staged: &Staged) -> u32 {
        let mut st = staged.state.write().unwrap();
        st.uploading = false;
        st.failures += 1;
        let backoff = Duration::from_millis(500 << st.failures.min(7)).min(MAX_BACKOFF);
        st.next_try = Instant::now() + backoff;
        st.failures
    }
}

impl Staged {
    fn new(
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

    fn retire(&self) {
        {
            let mut st = self.state.write().unwrap();
            st.retired = true;
            st.drop_stream();
        }
        self.remove_from_disk();
    }

    fn remove_from_disk(&self) {
        if let Err(e) = std::fs::remove_file(&self.disk_path) {
            tracing::warn!(path = %self.disk_path.display(), "cannot delete a staged copy: {e}");
        }
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

    const UNBOUNDED: Budget = Budget {
        reserve: 0,
        max_files: usize::MAX,
    };

    #[test]
    fn a_full_budget_refuses_new_copies_until_one_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget {
            max_files: 2,
            ..UNBOUNDED
        };
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, budget).unwrap();
        staging.begin(1, 0).unwrap();
        staging.begin(2, 0).unwrap();
        assert!(staging.begin(1, 0).is_ok(), "a file already staged");
        assert_eq!(staging.begin(3, 0).err(), Some(Error::Busy));
        staging.discard(1);
        assert!(staging.begin(3, 0).is_ok());
    }

    #[test]
    fn the_reserve_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        // More than the disk has free (other processes change the free space meanwhile, so
        // the margin is a GiB): nothing may be staged, nor written to a copy.
        let huge = free_bytes(dir.path()).unwrap().saturating_add(1 << 30);
        let budget = Budget {
            reserve: huge,
            ..UNBOUNDED
        };
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, budget).unwrap();
        assert_eq!(staging.begin(1, 0).err(), Some(Error::NoSpace));
        assert_eq!(staging.begin(1, 1 << 20).err(), Some(Error::NoSpace));
        assert_eq!(staging.pending(), (0, 0), "no copy was kept");
        let room = Arc::new(Room::new(dir.path(), huge));
        let path = dir.path().join("2");
        let file = CopyFile::open(&path, true).unwrap();
        let staged = Staged::new(2, file, path, room, 0, SystemTime::now(), 0);
        assert_eq!(staged.write(0, b"data"), Err(Error::NoSpace));
        assert_eq!(staged.snapshot().0, 0, "nothing was written");
    }

    #[test]
    fn free_space_is_measured_again_once_the_credit_is_spent() {
        let dir = tempfile::tempdir().unwrap();
        let room = Room::new(dir.path(), 0);
        room.check(1).unwrap();
        let credit = *room.credit.lock().unwrap();
        assert!(credit > 0 && credit <= MEASURE_EVERY, "{credit}");
        room.check(credit).unwrap();
        assert_eq!(*room.credit.lock().unwrap(), 0, "spent without measuring");
        assert_eq!(room.check(u64::MAX), Err(Error::NoSpace));
    }

    #[test]
    fn copies_survive_a_restart_and_are_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, left) =
            Staging::open(dir.path(), Duration::from_secs(3600), UNBOUNDED).unwrap();
        assert!(left.is_empty());
        let staged = staging.begin(42, 0).unwrap();
        staged.write(3, b"abc").unwrap();
        assert_eq!(staged.read(0, 10).unwrap(), (b"\0\0\0abc".to_vec(), true));
        assert!(staging.due().is_empty(), "written just now: not due");
        drop((staging, staged));

        let (staging, left) =
            Staging::open(dir.path(), Duration::from_secs(3600), UNBOUNDED).unwrap();
        assert_eq!(left, vec![42]);
        let due = staging.due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].read(0, 10).unwrap().0, b"\0\0\0abc");
        assert!(
            staging.due().is_empty(),
            "an upload under way is not due twice"
        );
    }

    #[test]
    fn the_next_copy_is_due_its_flush_delay_after_its_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_secs(3600);
        let (staging, _) = Staging::open(dir.path(), delay, UNBOUNDED).unwrap();
        assert_eq!(staging.next_due(), None);
        let first = staging.begin(1, 0).unwrap();
        first.write(0, b"a").unwrap();
        let before = Instant::now();
        let second = staging.begin(2, 0).unwrap();
        second.write(0, b"b").unwrap();
        let due = staging.next_due().unwrap();
        assert!(
            due <= before + delay,
            "the first copy's time, not the second's"
        );
        assert!(due + Duration::from_secs(60) > before + delay);
        first.write(1, b"c").unwrap();
        assert!(
            staging.next_due().unwrap() > due,
            "a write postpones its copy"
        );
        staging.all();
        assert_eq!(
            staging.next_due(),
            None,
            "copies being uploaded are not waiting"
        );
    }

    #[test]
    fn a_copy_written_during_its_upload_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(7, 0).unwrap();
        staged.write(0, b"one").unwrap();
        let (_, generation) = staged.snapshot();
        staged.write(3, b"two").unwrap();
        assert!(!staging.uploaded(&staged, generation));
        assert!(staging.get(7).is_some());
        assert!(dir.path().join("7").exists());

        let (_, generation) = staged.snapshot();
        assert!(staging.uploaded(&staged, generation));
        assert!(staging.get(7).is_none());
        assert!(!dir.path().join("7").exists());
        assert_eq!(
            staged.write(0, b"x"),
            Err(Error::Stale),
            "a let-go copy is not written"
        );
    }

    #[test]
    fn failures_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(1, 0).unwrap();
        assert_eq!(staging.due().len(), 1);
        assert_eq!(staging.failed(&staged), 1);
        assert!(staging.due().is_empty(), "waits before trying again");
        assert_eq!(staging.pending().0, 1, "kept after a failure");
    }

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

    #[test]
    fn a_copy_without_a_store_does_not_stream_and_writes_still_land() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(3, 0).unwrap();
        staged.write(0, &[1; 64]).unwrap();
        let mut asked = 0;
        staged.stream_step(16, 8, || {
            asked += 1;
            None
        });
        assert_eq!(asked, 1);
        staged.write(64, &[2; 64]).unwrap();
        staged.stream_step(16, 8, || panic!("asked again"));
        assert!(staged.stream().is_none());
        assert_eq!(staged.read(60, 8).unwrap().0, vec![1, 1, 1, 1, 2, 2, 2, 2]);
    }
}
