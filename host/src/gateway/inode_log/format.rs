//! The inode journal's format: a header (magic and the table's generation), then records,
//! each framed with its payload's length and CRC-32, so a damaged record is recognised and
//! passed over. This module encodes records and decodes one frame or payload at a time (the
//! older unframed format's too); `replay` walks a file with it. It does no I/O.

use std::io::{self, Read};

pub(super) const MAGIC: &[u8; 8] = b"nfsgwIT2";
/// The format before records were framed; still replayed, then rewritten in the new one.
pub(super) const MAGIC_UNFRAMED: &[u8; 8] = b"nfsgwIT1";
/// Inode numbers reserved by one watermark record.
pub const RESERVE: u64 = 4096;
/// The longest path a record holds.
const MAX_PATH: usize = 1 << 20;
/// A frame's length and checksum.
pub(super) const FRAME_HEADER: usize = 8;

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

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn encode_payload(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Name { ino, path } => name_payload(*ino, path, out),
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

fn name_payload(ino: u64, path: &str, out: &mut Vec<u8>) {
    out.push(b'N');
    out.extend_from_slice(&ino.to_be_bytes());
    put_str(out, path);
}

/// The bytes a journal's header takes.
pub const HEADER_LEN: u64 = 12;

/// A journal's header.
pub(super) fn header(generation: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&generation.to_be_bytes());
}

/// The bytes a framed name record for `path` takes in a journal.
pub fn name_len(path: &str) -> u64 {
    (FRAME_HEADER + 1 + 8 + 4 + path.len()) as u64
}

/// Appends `record` framed: its payload's length, the payload's CRC-32, the payload.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) {
    frame(out, |out| encode_payload(record, out));
}

/// Appends a name record framed, from a borrowed path (snapshots of a whole table).
pub(super) fn encode_name(ino: u64, path: &str, out: &mut Vec<u8>) {
    frame(out, |out| name_payload(ino, path, out));
}

fn frame(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    payload(out);
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
pub(super) fn decode_payload(r: &mut impl Read) -> Option<Record> {
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

/// The longest payload a record can have (a rename of two of the longest paths).
const MAX_PAYLOAD: usize = 1 + 2 * (4 + MAX_PATH) + 8;

/// The bytes the frame at the start of `data` says it takes, if its header is there and
/// names a length a record can have.
pub(super) fn claimed_len(data: &[u8]) -> Option<usize> {
    let header = data.get(..FRAME_HEADER)?;
    let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
    (len > 0 && len <= MAX_PAYLOAD).then_some(FRAME_HEADER + len)
}

/// The framed record at the start of `data` and its length in bytes, if one is whole and
/// sound there.
pub(super) fn frame_at(data: &[u8]) -> Option<(Record, usize)> {
    let used = claimed_len(data)?;
    let crc = u32::from_be_bytes(data[4..FRAME_HEADER].try_into().unwrap());
    let payload = data.get(FRAME_HEADER..used)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut reader = payload;
    let record = decode_payload(&mut reader)?;
    reader.is_empty().then_some((record, used))
}
