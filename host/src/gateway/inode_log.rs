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
//! client, and a crash can never let a number be reused for another file. A write that fails
//! fails the call that waited for it; a sync that fails (or hangs past the pool's deadline)
//! leaves the file in doubt, so the journal refuses every later change until a restart
//! rewrites it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MAGIC: &[u8; 8] = b"nfsgwIT2";
/// The format before records were framed; still replayed, then rewritten in the new one.
const MAGIC_UNFRAMED: &[u8; 8] = b"nfsgwIT1";
/// Inode numbers reserved by one watermark record.
pub const RESERVE: u64 = 4096;
/// The longest path a record holds.
const MAX_PATH: usize = 1 << 20;
/// A frame's length and checksum.
const FRAME_HEADER: usize = 8;

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `path` is a name of inode `ino`.
    Name { ino: u64, path: String },
    /// `path` and everything under it no longer exist.
    Forget { path: String },
    /// `from` and its subtree moved to `to` (whatever was at `to` is gone).
    Rename { from: String, to: String },
    /// Numbers below `next` may have been handed out.
    Reserve { next: u64 },
}

/// What a journal held: its generation, its good records in order, and what was skipped.
pub struct Replayed {
    pub generation: u32,
    pub records: Vec<Record>,
    pub skipped: Vec<Skipped>,
}

/// A damaged stretch of a journal that replay passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Where it starts, in bytes from the start of the file.
    pub offset: u64,
    pub bytes: u64,
}

/// A journal open for appending.
pub struct InodeLog {
    path: PathBuf,
    file: Arc<File>,
    pending: Mutex<Pending>,
    /// Held by the one caller writing and syncing; the others wait for it, then find their
    /// records already durable or write everything appended meanwhile in one go.
    turn: tokio::sync::Mutex<()>,
}

/// Records appended but not yet durable.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Records appended so far, and how many of them are durable.
    appended: u64,
    durable: u64,
    /// Where the last pending record starts, when it is a name (a lookup that found nothing
    /// takes it back at once).
    last_name: Option<(usize, String)>,
    /// Set when a sync failed: nothing can be promised any more.
    broken: bool,
    /// Syncs done, for tests.
    syncs: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_payload(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Name { ino, path } => {
            out.push(b'N');
            out.extend_from_slice(&ino.to_be_bytes());
            put_str(out, path);
        }
        Record::Forget { path } => {
            out.push(b'F');
            put_str(out, path);
        }
        Record::Rename { from, to } => {
            out.push(b'R');
            put_str(out, from);
            put_str(out, to);
        }
        Record::Reserve { next } => {
            out.push(b'W');
            out.extend_from_slice(&next.to_be_bytes());
        }
    }
}

/// Appends `record` framed: its payload's length, the payload's CRC-32, the payload.
fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    encode_payload(record, out);
    let payload = &out[start + FRAME_HEADER..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_be_bytes());
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn read_str(r: &mut impl Read) -> io::Result<String> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    let len = u32::from_be_bytes(b) as usize;
    if len > MAX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "path record too long",
        ));
    }
    let mut s = vec![0u8; len];
    r.read_exact(&mut s)?;
    String::from_utf8(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "path is not UTF-8"))
}

/// Reads one record's payload; `None` when it is not one.
fn decode_payload(r: &mut impl Read) -> Option<Record> {
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag).ok()?;
    match tag[0] {
        b'N' => Some(Record::Name {
            ino: read_u64(r).ok()?,
            path: read_str(r).ok()?,
        }),
        b'F' => Some(Record::Forget {
            path: read_str(r).ok()?,
        }),
        b'R' => Some(Record::Rename {
            from: read_str(r).ok()?,
            to: read_str(r).ok()?,
        }),
        b'W' => Some(Record::Reserve {
            next: read_u64(r).ok()?,
        }),
        _ => None,
    }
}

/// The framed record at the start of `data` and its length in bytes, if one is whole and
/// sound there.
fn frame_at(data: &[u8]) -> Option<(Record, usize)> {
    let header = data.get(..FRAME_HEADER)?;
    let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
    let crc = u32::from_be_bytes(header[4..].try_into().unwrap());
    if len == 0 || len > 1 + 2 * (4 + MAX_PATH) + 8 {
        return None;
    }
    let payload = data.get(FRAME_HEADER..FRAME_HEADER + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut reader = payload;
    let record = decode_payload(&mut reader)?;
    reader.is_empty().then_some((record, FRAME_HEADER + len))
}

/// Every sound record of a framed journal's body, passing over damaged stretches.
fn replay_framed(body: &[u8], base: u64) -> (Vec<Record>, Vec<Skipped>) {
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < body.len() {
        if let Some((record, used)) = frame_at(&body[at..]) {
            records.push(record);
            at += used;
            continue;
        }
        let start = at;
        at += 1;
        while at < body.len() && frame_at(&body[at..]).is_none() {
            at += 1;
        }
        skipped.push(Skipped {
            offset: base + start as u64,
            bytes: (at - start) as u64,
        });
    }
    (records, skipped)
}

/// The records of an unframed (older) journal: they end at the first one that does not read.
fn replay_unframed(body: &[u8], base: u64) -> (Vec<Record>, Vec<Skipped>) {
    let mut reader = body;
    let mut records = Vec::new();
    let mut read = 0;
    while let Some(record) = decode_payload(&mut reader) {
        records.push(record);
        read = body.len() - reader.len();
    }
    let skipped = (read < body.len())
        .then_some(Skipped {
            offset: base + read as u64,
            bytes: (body.len() - read) as u64,
        })
        .into_iter()
        .collect();
    (records, skipped)
}

impl InodeLog {
    /// Reads the journal at `path`, if there is one.
    pub fn replay(path: &Path) -> io::Result<Option<Replayed>> {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let foreign = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not an nfsgw inode journal", path.display()),
            )
        };
        let (magic, rest) = data.split_at_checked(8).ok_or_else(foreign)?;
        let (generation, body) = rest.split_at_checked(4).ok_or_else(foreign)?;
        let generation = u32::from_be_bytes(generation.try_into().unwrap());
        let (records, skipped) = if magic == MAGIC {
            replay_framed(body, 12)
        } else if magic == MAGIC_UNFRAMED {
            replay_unframed(body, 12)
        } else {
            return Err(foreign());
        };
        Ok(Some(Replayed {
            generation,
            records,
            skipped,
        }))
    }

    /// Writes a fresh journal holding `records` (atomically replacing any old one), makes it
    /// durable, and keeps it open for appending.
    pub fn create(path: &Path, generation: u32, records: &[Record]) -> io::Result<InodeLog> {
        let tmp = path.with_extension("tmp");
        let mut out = Vec::with_capacity(12 + records.len() * 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&generation.to_be_bytes());
        for record in records {
            encode(record, &mut out);
        }
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&out)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        // The rename itself must survive a crash too.
        #[cfg(unix)]
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(InodeLog {
            path: path.to_path_buf(),
            file: Arc::new(file),
            pending: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Appends a record in memory; it reaches the disk at the next `durable`.
    pub fn append(&self, record: &Record) {
        let mut pending = self.pending.lock().unwrap();
        let start = pending.bytes.len();
        encode(record, &mut pending.bytes);
        pending.appended += 1;
        pending.last_name = match record {
            Record::Name { path, .. } => Some((start, path.clone())),
            _ => None,
        };
    }

    /// Takes back the last record appended when it names `path` and is not yet on its way to
    /// the disk: true if it did.
    pub fn take_back_name(&self, path: &str) -> bool {
        let mut pending = self.pending.lock().unwrap();
        match pending.last_name.take() {
            Some((start, named)) if named == path => {
                pending.bytes.truncate(start);
                pending.appended -= 1;
                true
            }
            other => {
                pending.last_name = other;
                false
            }
        }
    }

    /// Makes every record appended so far durable: written and synced, on the blocking pool,
    /// in one go with whatever others appended meanwhile.
    pub async fn durable(&self) -> io::Result<()> {
        let wanted = {
            let pending = self.pending.lock().unwrap();
            if pending.durable >= pending.appended {
                return Ok(());
            }
            pending.appended
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
            (std::mem::take(&mut pending.bytes), pending.appended)
        };
        let file = self.file.clone();
        let outcome = crate::blocking::run(crate::blocking::DEADLINE, move || {
            write_and_sync(&file, &bytes).map_err(|(e, written)| (e, bytes, written))
        })
        .await;
        let mut pending = self.pending.lock().unwrap();
        match outcome {
            Ok(Ok(())) => {
                pending.durable = upto;
                pending.syncs += 1;
                Ok(())
            }
            // Nothing was lost yet: what did not reach the file goes first next time, so the
            // records stay whole and in order.
            Ok(Err((e, bytes, Some(written)))) => {
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
    fn syncs(&self) -> u64 {
        self.pending.lock().unwrap().syncs
    }
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
    use super::*;

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
        let log = InodeLog::create(&path, 7, &records[..2]).unwrap();
        log.append(&records[2]);
        log.append(&records[3]);
        log.durable().await.unwrap();
        drop(log);
        // A record cut short by a crash.
        let before = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!(replayed.generation, 7);
        assert_eq!(replayed.records, records);
        assert_eq!(
            replayed.skipped,
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
        let log = InodeLog::create(&path, 1, &[]).unwrap();
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
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!(replayed.records, [records[0].clone(), records[3].clone()]);
        assert_eq!(replayed.skipped.len(), 1, "{:?}", replayed.skipped);
        assert_eq!(replayed.skipped[0].offset, second as u64);
    }

    #[tokio::test]
    async fn waiting_callers_share_one_sync_and_a_name_taken_back_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let log = InodeLog::create(&path, 1, &[]).unwrap();
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
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!(replayed.records, records);
        assert!(replayed.skipped.is_empty());
    }

    #[tokio::test]
    async fn a_journal_that_cannot_be_written_fails_the_caller_and_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let mut log = InodeLog::create(&path, 1, &[]).unwrap();
        let writable = std::mem::replace(&mut log.file, Arc::new(File::open(&path).unwrap()));
        log.append(&sample()[0]);
        assert!(log.durable().await.is_err());
        log.file = writable;
        log.durable().await.unwrap();
        drop(log);
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!(replayed.records, sample()[..1]);
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
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!((replayed.generation, replayed.records), (3, sample()));
    }

    #[test]
    fn a_foreign_file_is_refused_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(InodeLog::replay(&dir.path().join("none"))
            .unwrap()
            .is_none());
        let other = dir.path().join("other");
        std::fs::write(&other, b"hello world, not a journal").unwrap();
        assert!(InodeLog::replay(&other).is_err());
    }
}
