//! The on-disk journal of one mount's inode table, so file handles survive a restart.
//!
//! The journal is a header (format and the table's generation) followed by binary records:
//! a name given to an inode, a name taken away, a rename of a subtree, and a watermark of inode
//! numbers reserved ahead. The watermark is written and synced before any number past the
//! previous one is handed out, so a record lost in a crash can never let a number be reused for
//! another file: such a handle answers STALE instead. On open the journal is replayed, then
//! rewritten compactly when it has grown well past the table it describes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"nfsgwIT1";
/// Inode numbers reserved by one watermark record.
pub const RESERVE: u64 = 4096;

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

pub struct InodeLog {
    path: PathBuf,
    out: BufWriter<File>,
}

/// What a journal held: its generation and its records in order.
pub struct Replayed {
    pub generation: u32,
    pub records: Vec<Record>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    match record {
        Record::Name { ino, path } => {
            out.push(b'N');
            out.extend_from_slice(&ino.to_be_bytes());
            put_str(&mut out, path);
        }
        Record::Forget { path } => {
            out.push(b'F');
            put_str(&mut out, path);
        }
        Record::Rename { from, to } => {
            out.push(b'R');
            put_str(&mut out, from);
            put_str(&mut out, to);
        }
        Record::Reserve { next } => {
            out.push(b'W');
            out.extend_from_slice(&next.to_be_bytes());
        }
    }
    out
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
    if len > 1 << 20 {
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

/// Reads one record; `None` at the end, or at a torn last record (a crash mid-write).
fn decode(r: &mut impl Read) -> Option<Record> {
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

impl InodeLog {
    /// Reads the journal at `path`, if there is one.
    pub fn replay(path: &Path) -> io::Result<Option<Replayed>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = BufReader::new(file);
        let mut header = [0u8; 12];
        r.read_exact(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not an nfsgw inode journal", path.display()),
            ));
        }
        let generation = u32::from_be_bytes(header[8..].try_into().unwrap());
        let mut records = Vec::new();
        while let Some(record) = decode(&mut r) {
            records.push(record);
        }
        Ok(Some(Replayed {
            generation,
            records,
        }))
    }

    /// Writes a fresh journal holding `records` (atomically replacing any old one) and keeps
    /// it open for appending.
    pub fn create(path: &Path, generation: u32, records: &[Record]) -> io::Result<InodeLog> {
        let tmp = path.with_extension("tmp");
        {
            let mut out = BufWriter::new(File::create(&tmp)?);
            out.write_all(MAGIC)?;
            out.write_all(&generation.to_be_bytes())?;
            for record in records {
                out.write_all(&encode(record))?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(InodeLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Appends a record; it reaches the file at the next `flush`.
    pub fn append(&mut self, record: &Record) {
        if let Err(e) = self.out.write_all(&encode(record)) {
            tracing::error!(journal = %self.path.display(), "cannot write the inode journal: {e}");
        }
    }

    /// Writes what was appended; with `sync`, makes it durable first.
    pub fn flush(&mut self, sync: bool) {
        let result = self.out.flush().and_then(|()| {
            if sync {
                self.out.get_ref().sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            tracing::error!(journal = %self.path.display(), "cannot write the inode journal: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let records = vec![
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
        ];
        let mut log = InodeLog::create(&path, 7, &records[..2]).unwrap();
        log.append(&records[2]);
        log.append(&records[3]);
        log.flush(true);
        drop(log);
        // A record cut short by a crash.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"N\0\0").unwrap();
        let replayed = InodeLog::replay(&path).unwrap().unwrap();
        assert_eq!(replayed.generation, 7);
        assert_eq!(replayed.records, records);
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
