//! The on-disk journal of one mount's inode table, so file handles survive a restart.
//!
//! The journal is a header (format and the table's generation) followed by records: a name
//! given to an inode, a name taken away, a rename of a subtree, and a watermark of inode
//! numbers reserved ahead. Each record is framed with its length and a CRC-32, so replay
//! recognises a damaged record, reports it, and finds the next good one: one bad record never
//! costs the records after it. Appending is only memory; `durable` writes and syncs what was
//! appended on the bounded blocking pool, and callers that arrive while a sync is under way
//! share the next one (group commit). A reply that hands out a number or reports a change waits
//! for `durable` first, so a watermark is always on disk before a number past it reaches a
//! client, and a crash can never let a number be reused for another file. A record whose loss
//! in a crash no client could see (a forget of a file's only name, see `InodeTable::forget`)
//! is appended relaxed: `durable` does not wait for it, and it reaches the disk with the next
//! record that is waited for, or once relaxed records pile up past [`RELAXED_BYTES`]. A write
//! that fails fails the call that waited for it; a sync that fails (or hangs past the pool's
//! deadline) leaves the file in doubt, so the journal refuses every later change until a
//! restart rewrites it. Once the file outgrows the live table, it is compacted online
//! (`compact`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use format::{encode, encode_name, header};
pub use format::{name_len, Record, HEADER_LEN, RESERVE};
pub use replay::Replayed;

mod compact;
mod format;
mod replay;

/// Relaxed records waiting in memory past this many bytes are written with the next `durable`
/// like any other, so what a crash can lose and what waits in memory stay small.
pub const RELAXED_BYTES: usize = 64 << 10;

/// A journal open for appending.
pub struct InodeLog {
    path: PathBuf,
    /// Replaced by a compaction, while it holds `turn`.
    file: Mutex<Arc<File>>,
    pending: Mutex<Pending>,
    /// Held by the one caller writing and syncing (or a compaction replacing the file); the
    /// others wait for it, then find their records already durable or write everything
    /// appended meanwhile in one go.
    turn: tokio::sync::Mutex<()>,
    /// Held by the one compaction under way.
    compacting: Arc<tokio::sync::Mutex<()>>,
}

/// Records appended but not yet durable.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Records appended so far, how many of them `durable` must cover (all but the relaxed
    /// records appended after the last one that is not), and how many are durable.
    appended: u64,
    owed: u64,
    durable: u64,
    /// Where the last pending record starts, when it is a name (a lookup that found nothing
    /// takes it back at once).
    last_name: Option<(usize, String)>,
    /// The bytes of the chunk being written and synced, taken from `bytes`.
    in_flight: usize,
    /// The bytes the file holds (written, if not yet all synced).
    file_len: u64,
    /// The bytes of the last snapshot written (by `create` or a compaction).
    snapshot_len: u64,
    /// While a compaction is under way: what reached the old file after its snapshot.
    tail: Option<compact::Tail>,
    /// Set when a sync failed: nothing can be promised any more.
    broken: bool,
    /// Syncs and compactions done, for tests.
    syncs: u64,
    compactions: u64,
}

impl InodeLog {
    /// Writes a fresh journal holding `records` and then every name `names` gives (atomically
    /// replacing any old one), makes it durable, and keeps it open for appending; fails if
    /// `names` does.
    pub fn create(
        path: &Path,
        generation: u32,
        records: &[Record],
        names: impl FnOnce(&mut dyn FnMut(u64, &str)) -> io::Result<()>,
    ) -> io::Result<InodeLog> {
        let tmp = path.with_extension("tmp");
        let (file, len) = write_snapshot(&tmp, generation, records, names)?;
        file.sync_all()?;
        drop(file);
        let file = replace(&tmp, path)?;
        Ok(InodeLog {
            path: path.to_path_buf(),
            file: Mutex::new(Arc::new(file)),
            pending: Mutex::new(Pending {
                file_len: len,
                snapshot_len: len,
                ..Pending::default()
            }),
            turn: tokio::sync::Mutex::new(()),
            compacting: Arc::default(),
        })
    }

    /// The bytes the journal's file holds.
    pub fn len(&self) -> u64 {
        self.pending.lock().unwrap().file_len
    }

    /// The bytes the last snapshot took: what the live names took when it was written.
    pub fn snapshot_len(&self) -> u64 {
        self.pending.lock().unwrap().snapshot_len
    }

    /// Appends a record in memory; it reaches the disk at the next `durable`.
    pub fn append(&self, record: &Record) {
        let mut pending = self.pending.lock().unwrap();
        push(&mut pending, record);
        pending.owed = pending.appended;
    }

    /// Appends a record that no reply waits for: the next `durable` that is owed a record
    /// writes it, and a `durable` owed nothing else returns at once.
    pub fn append_relaxed(&self, record: &Record) {
        let mut pending = self.pending.lock().unwrap();
        push(&mut pending, record);
        if pending.bytes.len() >= RELAXED_BYTES {
            pending.owed = pending.appended;
        }
    }

    /// Makes every record appended so far durable, relaxed ones included (at shutdown).
    pub async fn flush(&self) -> io::Result<()> {
        {
            let mut pending = self.pending.lock().unwrap();
            pending.owed = pending.appended;
        }
        self.durable().await
    }

    /// Takes back the last record appended when it names `path` and is not yet on its way to
    /// the disk: true if it did.
    pub fn take_back_name(&self, path: &str) -> bool {
        let mut pending = self.pending.lock().unwrap();
        match pending.last_name.take() {
            Some((start, named)) if named == path => {
                pending.bytes.truncate(start);
                pending.appended -= 1;
                pending.owed = pending.owed.min(pending.appended);
                true
            }
            other => {
                pending.last_name = other;
                false
            }
        }
    }

    /// Makes every record appended so far durable, but the relaxed records after the last one
    /// that is not: written and synced, on the blocking pool, in one go with whatever others
    /// appended meanwhile (relaxed records included).
    pub async fn durable(&self) -> io::Result<()> {
        let wanted = {
            let pending = self.pending.lock().unwrap();
            if pending.durable >= pending.owed {
                return Ok(());
            }
            pending.owed
        };
        let _turn = self.turn.lock().await;
        let (bytes, upto) = {
            let mut pending = self.pending.lock().unwrap();
            if pending.broken {
                return Err(self.broken());
            }
            if pending.durable >= wanted {
                return Ok(());
            }
            pending.last_name = None;
            pending.in_flight = pending.bytes.len();
            (std::mem::take(&mut pending.bytes), pending.appended)
        };
        let file = self.file.lock().unwrap().clone();
        let outcome =
            crate::blocking::run(crate::blocking::DEADLINE, move || {
                match write_and_sync(&file, &bytes) {
                    Ok(()) => Ok(bytes),
                    Err((e, written)) => Err((e, bytes, written)),
                }
            })
            .await;
        let mut pending = self.pending.lock().unwrap();
        pending.in_flight = 0;
        if outcome.as_ref().map_or(true, |written| written.is_err()) {
            // A compaction cannot know what reached the old file: it gives up.
            pending.tail = None;
        }
        match outcome {
            Ok(Ok(bytes)) => {
                pending.durable = upto;
                pending.syncs += 1;
                pending.file_len += bytes.len() as u64;
                if let Some(tail) = &mut pending.tail {
                    tail.add(&bytes);
                }
                Ok(())
            }
            // Nothing was lost yet: what did not reach the file goes first next time, so the
            // records stay whole and in order.
            Ok(Err((e, bytes, Some(written)))) => {
                pending.file_len += written as u64;
                let mut unwritten = bytes[written..].to_vec();
                unwritten.append(&mut pending.bytes);
                pending.bytes = unwritten;
                pending.last_name = None;
                tracing::error!(journal = %self.path.display(), "cannot write the inode journal: {e}");
                Err(e)
            }
            Ok(Err((e, _, None))) => {
                pending.broken = true;
                tracing::error!(journal = %self.path.display(), "cannot sync the inode journal, refusing changes until a restart: {e}");
                Err(e)
            }
            Err(overdue) => {
                pending.broken = true;
                tracing::error!(journal = %self.path.display(), "the inode journal's write did not finish in time, refusing changes until a restart");
                Err(io::Error::new(io::ErrorKind::TimedOut, overdue))
            }
        }
    }

    fn broken(&self) -> io::Error {
        io::Error::other(format!(
            "the inode journal {} failed to sync earlier",
            self.path.display()
        ))
    }

    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.pending.lock().unwrap().syncs
    }
}

/// Encodes a record at the end of what is pending, remembering where a name starts.
fn push(pending: &mut Pending, record: &Record) {
    let start = pending.bytes.len();
    encode(record, &mut pending.bytes);
    pending.appended += 1;
    pending.last_name = match record {
        Record::Name { path, .. } => Some((start, path.clone())),
        _ => None,
    };
}

/// Writes a new journal at `tmp`: the header, `records`, then every name `names` gives. The
/// names go to the file as they come, through a small buffer, never gathered whole. Returns
/// the file, written but not synced, and its length; on failure the file is removed.
fn write_snapshot(
    tmp: &Path,
    generation: u32,
    records: &[Record],
    names: impl FnOnce(&mut dyn FnMut(u64, &str)) -> io::Result<()>,
) -> io::Result<(File, u64)> {
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(tmp)?);
        let mut chunk = Vec::new();
        header(generation, &mut chunk);
        for record in records {
            encode(record, &mut chunk);
        }
        out.write_all(&chunk)?;
        let mut len = chunk.len() as u64;
        let mut failed = None;
        names(&mut |ino, path| {
            chunk.clear();
            encode_name(ino, path, &mut chunk);
            len += chunk.len() as u64;
            if failed.is_none() {
                failed = out.write_all(&chunk).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok((out.into_inner().map_err(|e| e.into_error())?, len))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// Renames the synced file `tmp` over `path`, makes the rename durable, and opens the file
/// for appending.
fn replace(tmp: &Path, path: &Path) -> io::Result<File> {
    std::fs::rename(tmp, path)?;
    // The rename itself must survive a crash too.
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

/// Appends `bytes` and syncs. A failed write says how much was written (the rest may be
/// tried again); a failed sync says nothing can be known (`None`).
fn write_and_sync(file: &File, bytes: &[u8]) -> Result<(), (io::Error, Option<usize>)> {
    let mut written = 0;
    let mut out = file;
    while written < bytes.len() {
        match out.write(&bytes[written..]) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), Some(written))),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, Some(written))),
        }
    }
    file.sync_data().map_err(|e| (e, None))
}

#[cfg(test)]
mod tests {
    use super::format::{encode_payload, FRAME_HEADER, MAGIC_UNFRAMED};
    use super::replay::Skipped;
    use super::*;

    fn records_of(replayed: &Replayed) -> Vec<Record> {
        let mut records = Vec::new();
        replayed.each(|record| records.push(record)).unwrap();
        records
    }

    fn skipped_of(replayed: &Replayed) -> Vec<Skipped> {
        replayed.each(|_| {}).unwrap()
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::Reserve { next: 4098 },
            Record::Name {
                ino: 2,
                path: "a\nb\tc ✓".into(),
            },
            Record::Rename {
                from: "a\nb\tc ✓".into(),
                to: "d".into(),
            },
            Record::Forget { path: "d".into() },
        ]
    }

    #[tokio::test]
    async fn records_round_trip_and_a_torn_tail_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let records = sample();
        let log = InodeLog::create(&path, 7, &records[..2], |_| Ok(())).unwrap();
        log.append(&records[2]);
        log.append(&records[3]);
        log.durable().await.unwrap();
        drop(log);
        // A record cut short by a crash.
        let before = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        let replayed = Replayed::open(&path).unwrap().unwrap();
        assert_eq!(replayed.generation, 7);
        assert_eq!(records_of(&replayed), records);
        assert_eq!(
            skipped_of(&replayed),
            [Skipped {
                offset: before,
                bytes: 6
            }]
        );
    }

    #[tokio::test]
    async fn a_damaged_record_is_skipped_and_every_later_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let records = sample();
        let log = InodeLog::create(&path, 1, &[], |_| Ok(())).unwrap();
        for record in &records {
            log.append(record);
        }
        log.durable().await.unwrap();
        drop(log);
        let mut data = std::fs::read(&path).unwrap();
        let framed_len = |record: &Record| {
            let mut out = Vec::new();
            encode(record, &mut out);
            out.len()
        };
        let second = 12 + framed_len(&records[0]);
        let third = second + framed_len(&records[1]);
        // Damage the second record's payload, then the third record's length.
        data[second + FRAME_HEADER + 3] ^= 0xff;
        data[third] = 0xff;
        std::fs::write(&path, &data).unwrap();
        let replayed = Replayed::open(&path).unwrap().unwrap();
        assert_eq!(
            records_of(&replayed),
            [records[0].clone(), records[3].clone()]
        );
        assert_eq!(
            skipped_of(&replayed).len(),
            1,
            "{:?}",
            skipped_of(&replayed)
        );
        assert_eq!(skipped_of(&replayed)[0].offset, second as u64);
    }

    #[tokio::test]
    async fn waiting_callers_share_one_sync_and_a_name_taken_back_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let log = InodeLog::create(&path, 1, &[], |_| Ok(())).unwrap();
        log.durable().await.unwrap();
        assert_eq!(log.syncs(), 0, "nothing appended, nothing to sync");
        let records = sample();
        for record in &records {
            log.append(record);
        }
        let missing = "looked up, not found";
        log.append(&Record::Name {
            ino: 9,
            path: missing.into(),
        });
        assert!(!log.take_back_name("another"));
        assert!(log.take_back_name(missing));
        let (a, b, c) = tokio::join!(log.durable(), log.durable(), log.durable());
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(log.syncs(), 1);
        drop(log);
        let replayed = Replayed::open(&path).unwrap().unwrap();
        assert_eq!(records_of(&replayed), records);
        assert!(skipped_of(&replayed).is_empty());
    }

    #[tokio::test]
    async fn a_journal_that_cannot_be_written_fails_the_caller_and_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let mut log = InodeLog::create(&path, 1, &[], |_| Ok(())).unwrap();
        let writable = std::mem::replace(
            log.file.get_mut().unwrap(),
            Arc::new(File::open(&path).unwrap()),
        );
        log.append(&sample()[0]);
        assert!(log.durable().await.is_err());
        *log.file.get_mut().unwrap() = writable;
        log.durable().await.unwrap();
        drop(log);
        let replayed = Replayed::open(&path).unwrap().unwrap();
        assert_eq!(records_of(&replayed), sample()[..1]);
    }

    #[tokio::test]
    async fn a_compaction_keeps_the_snapshot_and_only_what_follows_its_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let log = InodeLog::create(&path, 3, &sample(), |_| Ok(())).unwrap();
        let before_cut = Record::Forget { path: "old".into() };
        let after_cut = Record::Name {
            ino: 7,
            path: "new".into(),
        };
        log.append(&before_cut);
        let compaction = log.begin_compaction().unwrap();
        assert!(log.begin_compaction().is_none(), "one compaction at a time");
        log.append(&after_cut);
        // Written to the old file while the compaction is under way.
        log.durable().await.unwrap();
        let mut tree = crate::gateway::name_tree::NameTree::new(1);
        tree.add(crate::gateway::name_tree::ROOT, "kept", 5);
        let names = tree.snapshot();
        log.compact(compaction, 3, 8192, move |f| {
            names.each(f);
            Ok(())
        })
        .await;
        let last = Record::Reserve { next: 12288 };
        log.append(&last);
        log.durable().await.unwrap();
        assert_eq!(log.compactions(), 1);
        assert_eq!(log.len(), std::fs::metadata(&path).unwrap().len());
        drop(log);
        let replayed = Replayed::open(&path).unwrap().unwrap();
        let kept = Record::Name {
            ino: 5,
            path: "kept".into(),
        };
        let snapshot = [Record::Reserve { next: 8192 }, kept];
        assert_eq!(replayed.generation, 3);
        assert_eq!(records_of(&replayed)[..2], snapshot);
        assert_eq!(records_of(&replayed)[2..], [after_cut, last]);
        assert!(skipped_of(&replayed).is_empty());
    }

    #[test]
    fn an_unframed_journal_still_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.inodes");
        let mut data = MAGIC_UNFRAMED.to_vec();
        data.extend_from_slice(&3u32.to_be_bytes());
        for record in sample() {
            encode_payload(&record, &mut data);
        }
        std::fs::write(&path, &data).unwrap();
        let replayed = Replayed::open(&path).unwrap().unwrap();
        assert_eq!((replayed.generation, records_of(&replayed)), (3, sample()));
    }
}
