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
//!
//! A copy's file is made and deleted on the blocking pool, never on an async worker, and one
//! at a time per mount (`turn`): a copy let go has its file deleted before a new copy of the
//! same inode can be made at that path.
//!
//! `staged` holds one copy and its state, `room` the free space a mount's staging may use.

mod room;
mod staged;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::types::Error;
use crate::copy_file::CopyFile;
use room::Room;
pub use staged::Staged;

/// Longest pause between attempts to upload a file whose uploads fail.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
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
    /// Held while a copy's file is made, or a let-go copy is taken out of `files` and its file
    /// deleted.
    turn: tokio::sync::Mutex<()>,
}

pub(super) fn io_error(what: &str, e: io::Error) -> Error {
    tracing::error!("staging: {what}: {e}");
    match e.kind() {
        io::ErrorKind::StorageFull => Error::NoSpace,
        _ => Error::Io,
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
            turn: tokio::sync::Mutex::new(()),
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
    /// down to the reserve or the backend's content would not fit above it, `Io` when the
    /// file cannot be made in time.
    pub async fn begin(&self, ino: u64, backend_len: u64) -> Result<Arc<Staged>, Error> {
        if let Some(staged) = self.existing_or_full(ino)? {
            return Ok(staged);
        }
        let _turn = self.turn.lock().await;
        if let Some(staged) = self.existing_or_full(ino)? {
            return Ok(staged);
        }
        let (dir, room) = (self.dir.clone(), self.room.clone());
        let made = crate::blocking::run(crate::blocking::DEADLINE, move || {
            make_copy(&dir, room, ino, backend_len)
        })
        .await;
        let staged = Arc::new(made.map_err(|_| Error::Io)??);
        self.files.lock().unwrap().insert(ino, staged.clone());
        Ok(staged)
    }

    /// The copy of `ino`, if there is one; `Busy` if there is none and the budget has no room
    /// for another.
    fn existing_or_full(&self, ino: u64) -> Result<Option<Arc<Staged>>, Error> {
        let files = self.files.lock().unwrap();
        if let Some(staged) = files.get(&ino) {
            return Ok(Some(staged.clone()));
        }
        if files.len() >= self.max_files {
            tracing::warn!(dir = %self.dir.display(), files = files.len(), "staging refused: the mount has as many staged files as it may keep; the client retries once uploads let some go");
            return Err(Error::Busy);
        }
        Ok(None)
    }

    /// Drops `staged`, whose filling failed. One that is no longer the inode's copy was let go
    /// already, its file deleted: the path may now be a new copy's, and stays.
    pub async fn abandon(&self, staged: &Arc<Staged>) {
        let _turn = self.turn.lock().await;
        let ours = take_out(&mut self.files.lock().unwrap(), staged);
        staged.retire();
        if ours {
            delete(staged).await;
        }
    }

    /// Drops a staged copy whose file is gone (removed, or replaced by a rename).
    pub async fn discard(&self, ino: u64) {
        let _turn = self.turn.lock().await;
        let staged = self.files.lock().unwrap().remove(&ino);
        if let Some(staged) = staged {
            staged.retire();
            delete(&staged).await;
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
    pub async fn uploaded(&self, staged: &Arc<Staged>, generation: u64) -> bool {
        let _turn = self.turn.lock().await;
        let ours = {
            let mut files = self.files.lock().unwrap();
            let mut st = staged.state.write().unwrap();
            st.uploading = false;
            st.failures = 0;
            if st.generation != generation || st.retired {
                return false;
            }
            let ours = take_out(&mut files, staged);
            st.retired = true;
            st.drop_stream();
            ours
        };
        if ours {
            delete(staged).await;
        }
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

/// Makes an empty staged copy of `ino` in `dir`, with room for `backend_len` bytes (blocking).
fn make_copy(dir: &Path, room: Arc<Room>, ino: u64, backend_len: u64) -> Result<Staged, Error> {
    room.check(backend_len)?;
    let disk_path = dir.join(ino.to_string());
    let file =
        CopyFile::open(&disk_path, true).map_err(|e| io_error("creating a staged copy", e))?;
    // The copy's name must survive a crash as well as its data.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing the staging directory", e))?;
    let now = SystemTime::now();
    Ok(Staged::new(ino, file, disk_path, room, 0, now, backend_len))
}

/// Takes `staged` out of `files` if it is still its inode's copy; true if it was.
fn take_out(files: &mut HashMap<u64, Arc<Staged>>, staged: &Arc<Staged>) -> bool {
    let ours = files
        .get(&staged.ino)
        .is_some_and(|s| Arc::ptr_eq(s, staged));
    if ours {
        files.remove(&staged.ino);
    }
    ours
}

/// Deletes a let-go copy's file, on the blocking pool; a failure is logged and the file left
/// (the next start would upload it again, harmlessly: the backend has its data).
async fn delete(staged: &Staged) {
    let path = staged.disk_path().to_path_buf();
    let target = path.clone();
    let deleted = crate::blocking::run(crate::blocking::DEADLINE, move || {
        std::fs::remove_file(target)
    })
    .await;
    match deleted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(path = %path.display(), "cannot delete a staged copy: {e}"),
        Err(e) => tracing::warn!(path = %path.display(), "cannot delete a staged copy: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::room::{free_bytes, Room};
    use super::*;

    const UNBOUNDED: Budget = Budget {
        reserve: 0,
        max_files: usize::MAX,
    };

    #[tokio::test]
    async fn a_full_budget_refuses_new_copies_until_one_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget {
            max_files: 2,
            ..UNBOUNDED
        };
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, budget).unwrap();
        staging.begin(1, 0).await.unwrap();
        staging.begin(2, 0).await.unwrap();
        assert!(staging.begin(1, 0).await.is_ok(), "a file already staged");
        assert_eq!(staging.begin(3, 0).await.err(), Some(Error::Busy));
        staging.discard(1).await;
        assert!(staging.begin(3, 0).await.is_ok());
    }

    #[tokio::test]
    async fn the_reserve_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        // More than the disk has free (other processes change the free space meanwhile, so
        // the margin is a GiB): nothing may be staged, nor written to a copy.
        let huge = free_bytes(dir.path()).unwrap().saturating_add(1 << 30);
        let budget = Budget {
            reserve: huge,
            ..UNBOUNDED
        };
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, budget).unwrap();
        assert_eq!(staging.begin(1, 0).await.err(), Some(Error::NoSpace));
        assert_eq!(staging.begin(1, 1 << 20).await.err(), Some(Error::NoSpace));
        assert_eq!(staging.pending(), (0, 0), "no copy was kept");
        let room = Arc::new(Room::new(dir.path(), huge));
        let path = dir.path().join("2");
        let file = CopyFile::open(&path, true).unwrap();
        let staged = Staged::new(2, file, path, room, 0, SystemTime::now(), 0);
        assert_eq!(staged.write(0, b"data"), Err(Error::NoSpace));
        assert_eq!(staged.snapshot().0, 0, "nothing was written");
    }

    #[tokio::test]
    async fn copies_survive_a_restart_and_are_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, left) =
            Staging::open(dir.path(), Duration::from_secs(3600), UNBOUNDED).unwrap();
        assert!(left.is_empty());
        let staged = staging.begin(42, 0).await.unwrap();
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

    #[tokio::test]
    async fn the_next_copy_is_due_its_flush_delay_after_its_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_secs(3600);
        let (staging, _) = Staging::open(dir.path(), delay, UNBOUNDED).unwrap();
        assert_eq!(staging.next_due(), None);
        let first = staging.begin(1, 0).await.unwrap();
        first.write(0, b"a").unwrap();
        let before = Instant::now();
        let second = staging.begin(2, 0).await.unwrap();
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

    #[tokio::test]
    async fn a_copy_written_during_its_upload_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(7, 0).await.unwrap();
        staged.write(0, b"one").unwrap();
        let (_, generation) = staged.snapshot();
        staged.write(3, b"two").unwrap();
        assert!(!staging.uploaded(&staged, generation).await);
        assert!(staging.get(7).is_some());
        assert!(dir.path().join("7").exists());

        let (_, generation) = staged.snapshot();
        assert!(staging.uploaded(&staged, generation).await);
        assert!(staging.get(7).is_none());
        assert!(!dir.path().join("7").exists());
        assert_eq!(
            staged.write(0, b"x"),
            Err(Error::Stale),
            "a let-go copy is not written"
        );
    }

    /// A copy let go while a new copy of the same inode is begun: the new copy is made once
    /// the old one's file is deleted, so its own file is never the one deleted.
    #[tokio::test]
    async fn a_copy_made_while_the_last_one_goes_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let old = staging.begin(7, 0).await.unwrap();
        old.write(0, b"old").unwrap();
        let (_, generation) = old.snapshot();
        let (let_go, new) = tokio::join!(staging.uploaded(&old, generation), staging.begin(7, 0));
        let new = new.unwrap();
        assert!(let_go);
        assert!(!Arc::ptr_eq(&old, &new), "a new copy");
        new.write(0, b"new").unwrap();
        assert_eq!(std::fs::read(dir.path().join("7")).unwrap(), b"new");
        staging.abandon(&old).await;
        assert!(
            dir.path().join("7").exists(),
            "a copy let go already deletes nothing"
        );
    }

    #[tokio::test]
    async fn failures_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(1, 0).await.unwrap();
        assert_eq!(staging.due().len(), 1);
        assert_eq!(staging.failed(&staged), 1);
        assert!(staging.due().is_empty(), "waits before trying again");
        assert_eq!(staging.pending().0, 1, "kept after a failure");
    }

    #[tokio::test]
    async fn a_copy_without_a_store_does_not_stream_and_writes_still_land() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, _) = Staging::open(dir.path(), Duration::ZERO, UNBOUNDED).unwrap();
        let staged = staging.begin(3, 0).await.unwrap();
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
