//! Reading a journal back at start. A framed journal is streamed from its file through a
//! window of [`ROOM`] bytes or more, and its records are decoded one at a time as they are
//! walked, so a start never holds a journal whole, however many names it has. The window
//! grows when a frame's header claims more than it holds (up to the longest frame a record
//! can take). A damaged stretch is passed over, from the first byte that starts no sound frame to
//! the next one that does, and reported. The older unframed format ends at its first record
//! that does not read; it is read whole, as it is only met once, before its first rewrite.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{
    claimed_len, decode_payload, frame_at, Record, HEADER_LEN, MAGIC, MAGIC_UNFRAMED,
};

/// The bytes the window holds past where a frame starts, unless a frame claims more.
const ROOM: usize = 64 << 10;

/// A journal found on disk: its generation, and where to read its records from.
pub struct Replayed {
    pub generation: u32,
    path: PathBuf,
    framed: bool,
    /// The window's room to begin with ([`ROOM`], but for tests).
    room: usize,
}

/// A damaged stretch of a journal that replay passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Where it starts, in bytes from the start of the file.
    pub offset: u64,
    pub bytes: u64,
}

impl Replayed {
    /// Reads the header of the journal at `path`: none if there is no file, an error if it
    /// is not a journal.
    pub fn open(path: &Path) -> io::Result<Option<Replayed>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let foreign = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not an nfsgw inode journal", path.display()),
            )
        };
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => foreign(),
            _ => e,
        })?;
        let (magic, generation) = header.split_at(8);
        let framed = if magic == MAGIC {
            true
        } else if magic == MAGIC_UNFRAMED {
            false
        } else {
            return Err(foreign());
        };
        Ok(Some(Replayed {
            generation: u32::from_be_bytes(generation.try_into().unwrap()),
            path: path.to_path_buf(),
            framed,
            room: ROOM,
        }))
    }

    /// Hands `f` each good record in order, reading the file anew; what was skipped as
    /// damaged.
    pub fn each(&self, f: impl FnMut(Record)) -> io::Result<Vec<Skipped>> {
        let mut file = File::open(&self.path)?;
        let end = file.metadata()?.len();
        file.seek(SeekFrom::Start(HEADER_LEN))?;
        if self.framed {
            let window = Window::new(file, HEADER_LEN, end, self.room);
            return replay_framed(window, f);
        }
        let mut body = Vec::new();
        file.read_to_end(&mut body)?;
        Ok(replay_unframed(&body, HEADER_LEN, f))
    }
}

/// The stretch of a file being walked: `bytes[at..]` starts at the file's offset `offset()`,
/// and holds at least `room` bytes unless the file ends sooner. It never holds more than
/// twice `room`, nor more than the file has left.
struct Window<R> {
    reader: R,
    bytes: Vec<u8>,
    at: usize,
    /// The file's offset of `bytes[0]`, and its length when the walk began.
    start: u64,
    end: u64,
    room: usize,
    ended: bool,
}

impl<R: Read> Window<R> {
    fn new(reader: R, start: u64, end: u64, room: usize) -> Window<R> {
        Window {
            reader,
            bytes: Vec::new(),
            at: 0,
            start,
            end,
            room,
            ended: false,
        }
    }

    /// The bytes from `at`, refilled first if fewer than `room` are left.
    fn rest(&mut self) -> io::Result<&[u8]> {
        if !self.ended && self.bytes.len() - self.at < self.room {
            self.bytes.drain(..self.at);
            self.start += self.at as u64;
            self.at = 0;
            let left = usize::try_from(self.end.saturating_sub(self.start)).unwrap_or(usize::MAX);
            // One byte past what is left, so the file's end is seen without another pass.
            let want = (2 * self.room)
                .min(left.saturating_add(1))
                .max(self.bytes.len() + 1);
            while !self.ended && self.bytes.len() < want {
                let len = self.bytes.len();
                self.bytes.resize(want, 0);
                let read = self.reader.read(&mut self.bytes[len..]);
                self.bytes.truncate(len + *read.as_ref().unwrap_or(&0));
                match read {
                    Ok(0) => self.ended = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.bytes[self.at..])
    }

    fn offset(&self) -> u64 {
        self.start + self.at as u64
    }
}

/// The sound frame at the window's start, if there is one; none at the end of the file. A
/// header that claims more bytes than the window holds grows it first.
fn frame_here(window: &mut Window<impl Read>) -> io::Result<Option<(Record, usize)>> {
    loop {
        let rest = window.rest()?;
        let (found, claimed, held) = (frame_at(rest), claimed_len(rest), rest.len());
        match claimed {
            Some(len) if found.is_none() && len > held && !window.ended => window.room = len,
            _ => return Ok(found),
        }
    }
}

/// Every sound record of a framed journal's body, passing over damaged stretches.
fn replay_framed(
    mut window: Window<impl Read>,
    mut each: impl FnMut(Record),
) -> io::Result<Vec<Skipped>> {
    let mut skipped = Vec::new();
    loop {
        if let Some((record, used)) = frame_here(&mut window)? {
            each(record);
            window.at += used;
            continue;
        }
        if window.rest()?.is_empty() {
            return Ok(skipped);
        }
        let start = window.offset();
        window.at += 1;
        while !window.rest()?.is_empty() && frame_here(&mut window)?.is_none() {
            window.at += 1;
        }
        skipped.push(Skipped {
            offset: start,
            bytes: window.offset() - start,
        });
    }
}

/// The records of an unframed (older) journal: they end at the first one that does not read.
fn replay_unframed(body: &[u8], base: u64, mut each: impl FnMut(Record)) -> Vec<Skipped> {
    let mut reader = body;
    let mut read = 0;
    while let Some(record) = decode_payload(&mut reader) {
        each(record);
        read = body.len() - reader.len();
    }
    (read < body.len())
        .then_some(Skipped {
            offset: base + read as u64,
            bytes: (body.len() - read) as u64,
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::format::{encode, header};
    use super::*;

    /// Records of many lengths, some of their bytes damaged: walked through windows from a
    /// frame's header to the whole file, the same records come out and the same stretches are
    /// skipped, at the same offsets.
    #[test]
    fn every_window_replays_the_same_records_and_stretches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.inodes");
        let mut data = Vec::new();
        header(7, &mut data);
        let mut written = Vec::new();
        for i in 0..400u64 {
            let record = match i % 3 {
                0 => Record::Name {
                    ino: i,
                    path: "n".repeat(1 + (i as usize * 7) % 60),
                },
                1 => Record::Forget {
                    path: format!("f{i}"),
                },
                _ => Record::Reserve { next: i },
            };
            encode(&record, &mut data);
            written.push(record);
        }
        for at in [40, 41, 900, 2000, 2001, 2002, 5000] {
            data[at] ^= 0x5a;
        }
        data.truncate(data.len() - 3);
        std::fs::write(&path, &data).unwrap();
        let walk = |room: usize| {
            let mut replayed = Replayed::open(&path).unwrap().unwrap();
            replayed.room = room;
            let mut records = Vec::new();
            let skipped = replayed.each(|r| records.push(r)).unwrap();
            (replayed.generation, records, skipped)
        };
        let whole = walk(data.len());
        assert_eq!(whole.0, 7);
        assert!(whole.1.len() < written.len() && whole.1.len() > written.len() - 12);
        assert!(whole.1.iter().all(|r| written.contains(r)));
        assert!(whole.2.len() >= 5, "{:?}", whole.2);
        assert_eq!(
            whole.2.last().unwrap().offset + whole.2.last().unwrap().bytes,
            data.len() as u64
        );
        // The longest frame above takes 8 + 1 + 8 + 4 + 60 bytes: smaller windows grow.
        for room in [8, 9, 50, 81, 82, 257, 4096] {
            assert_eq!(walk(room), whole, "a window of {room}");
        }
    }

    #[test]
    fn a_short_or_foreign_file_is_refused_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Replayed::open(&dir.path().join("none")).unwrap().is_none());
        for (name, bytes) in [
            ("short", &b"nfsgwIT"[..]),
            ("other", b"hello world, not a journal"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let refused = Replayed::open(&path).err().unwrap();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidData, "{name}");
        }
    }
}
