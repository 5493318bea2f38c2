//! The disk file of a staged copy: where its bytes are written, and read back for uploads.
//!
//! A staged copy is written once, made durable at COMMIT and read back once for its upload.
//! Through the page cache, every page of it is allocated, copied into, written back at COMMIT
//! and then read again; for a large file that costs more CPU than the upload itself
//! (docs/BENCHMARKS.md, P4). On Linux a copy therefore also has an `O_DIRECT` handle: large
//! block-aligned writes go from a block-aligned buffer straight to the disk, and large reads for
//! uploads come straight back, so COMMIT finds little left to flush. Small or unaligned ranges,
//! reads by NFS clients and plugins, other systems, and file systems that refuse direct I/O use
//! the ordinary handle; the kernel keeps the two views of the file coherent.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::buffer_pool::BufferPool;
use crate::positioned_io;

/// Offsets, lengths and buffers of direct transfers are multiples of this: the largest logical
/// block size in common use.
pub const ALIGN: usize = 4096;
/// Shorter ranges go through the page cache: a direct write waits for the disk.
const DIRECT_MIN: usize = 128 << 10;

pub struct CopyFile {
    file: File,
    direct: Option<File>,
    /// Cleared once the file system refuses a direct transfer; `file` then does everything.
    direct_works: AtomicBool,
}

impl CopyFile {
    /// Opens the copy at `path` for reading and writing; `create` makes it, empty.
    pub fn open(path: &Path, create: bool) -> io::Result<CopyFile> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if create {
            options.create(true).truncate(true);
        }
        let file = options.open(path)?;
        let direct = open_direct(path);
        Ok(CopyFile {
            direct_works: AtomicBool::new(direct.is_some()),
            file,
            direct,
        })
    }

    /// The ordinary handle: sizes, truncation, syncing and small reads.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn direct_for(&self, offset: u64, len: usize) -> Option<&File> {
        let fits = offset.is_multiple_of(ALIGN as u64) && len >= DIRECT_MIN;
        let works = self.direct_works.load(Ordering::Relaxed);
        self.direct.as_ref().filter(|_| fits && works)
    }

    fn refused(&self, e: &io::Error) -> bool {
        let refused = e.kind() == io::ErrorKind::InvalidInput;
        if refused && self.direct_works.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "staging: the file system refuses direct I/O ({e}); using the page cache"
            );
        }
        refused
    }

    /// Writes all of `data` at `offset`.
    pub fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        if data.len().is_multiple_of(ALIGN) {
            if let Some(direct) = self.direct_for(offset, data.len()) {
                let copy;
                let block = if gap_to_alignment(data.as_ptr()) == 0 {
                    data
                } else {
                    let (mut block, start) = aligned(Vec::with_capacity(data.len() + ALIGN));
                    block.extend_from_slice(data);
                    copy = block;
                    &copy[start..]
                };
                match positioned_io::write_all_at(direct, block, offset) {
                    Ok(()) => return Ok(()),
                    // A partial direct write is written again in full below.
                    Err(e) if self.refused(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        positioned_io::write_all_at(&self.file, data, offset)
    }

    /// The `len` bytes at `offset`, in a buffer of `buffers`; an `UnexpectedEof` error if the
    /// file ends before them.
    pub fn read_range(
        &self,
        offset: u64,
        len: usize,
        buffers: &Arc<BufferPool>,
    ) -> io::Result<Bytes> {
        if let Some(direct) = self.direct_for(offset, len) {
            match read_direct(direct, offset, len, buffers) {
                Ok(bytes) => return check_len(bytes, len),
                Err(e) if self.refused(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let mut buf = buffers.take(len);
        while buf.len() < len {
            let done = buf.len();
            let room = &mut buf.spare_capacity_mut()[..len - done];
            match read_uninit_at(&self.file, room, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => {
                    // SAFETY: the read initialised the `n` bytes after the vector's end.
                    unsafe { buf.set_len(buf.len() + n) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        check_len(buffers.share(buf), len)
    }
}

fn check_len(bytes: Bytes, len: usize) -> io::Result<Bytes> {
    if bytes.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the staged file ended early",
        ));
    }
    Ok(bytes)
}

/// How many bytes past `at` the next block boundary is (0 when `at` is on one).
pub fn gap_to_alignment(at: *const u8) -> usize {
    (at as usize).wrapping_neg() % ALIGN
}

/// `block`, an empty vector, filled with zeros up to its first block boundary; and where that
/// is. Room for `ALIGN` bytes more than the data is enough.
fn aligned(mut block: Vec<u8>) -> (Vec<u8>, usize) {
    let start = gap_to_alignment(block.as_ptr());
    block.resize(start, 0);
    (block, start)
}

/// Reads `[offset, offset + len)` (less at the end of the file) with direct transfers, into
/// memory that is not zeroed first: the reads fill it.
fn read_direct(
    direct: &File,
    offset: u64,
    len: usize,
    buffers: &Arc<BufferPool>,
) -> io::Result<Bytes> {
    let padded = len.next_multiple_of(ALIGN);
    let (mut block, start) = aligned(buffers.take(padded + ALIGN));
    while block.len() < start + padded {
        let done = block.len() - start;
        let room = &mut block.spare_capacity_mut()[..padded - done];
        match read_uninit_at(direct, room, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => {
                // SAFETY: the read initialised the `n` bytes after the vector's end.
                unsafe { block.set_len(block.len() + n) };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // A read that ends inside a block ended at the end of the file.
        if !(block.len() - start).is_multiple_of(ALIGN) {
            break;
        }
    }
    block.truncate(start + len);
    Ok(buffers.share(block).slice(start..))
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::DIRECT.bits() as i32;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// Reads into `buf` at `offset` without zeroing it first (Unix); how many bytes it now holds.
/// Also what `host_fs` reads local file ranges with.
#[cfg(unix)]
pub(crate) fn read_uninit_at(
    file: &File,
    buf: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> io::Result<usize> {
    Ok(rustix::io::pread(file, buf, offset)?.0.len())
}

#[cfg(windows)]
pub(crate) fn read_uninit_at(
    file: &File,
    buf: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> io::Result<usize> {
    buf.fill(std::mem::MaybeUninit::new(0));
    // SAFETY: every byte was just initialised.
    let buf = unsafe { &mut *(buf as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Aligned and unaligned writes and reads of every size class agree with one model of the
    /// file, whichever handle each went through.
    #[test]
    fn both_handles_show_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let copy = CopyFile::open(&path, true).unwrap();
        let mut model = Vec::new();
        let writes: [(u64, usize, u8); 6] = [
            (0, 1 << 20, 1),             // direct where supported
            (4096, 100, 2),              // small, into the direct range
            ((1 << 20) + 3, 300_000, 3), // unaligned
            (2 << 20, 256 << 10, 4),     // direct, past the end
            (8192, 512 << 10, 5),        // direct over buffered bytes
            ((2 << 20) + 7, 9, 6),       // small, unaligned
        ];
        for (offset, len, seed) in writes {
            let data = pattern(len, seed);
            copy.write_all_at(&data, offset).unwrap();
            let end = offset as usize + len;
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(&data);
        }
        assert_eq!(copy.file().metadata().unwrap().len(), model.len() as u64);
        let buffers = BufferPool::new(8 << 20);
        for (offset, len) in [
            (0, model.len()),
            (4096, 1 << 20),
            (1 << 20, model.len() - (1 << 20)),
            (5, 10),
        ] {
            let got = copy.read_range(offset as u64, len, &buffers).unwrap();
            assert_eq!(&got[..], &model[offset..offset + len], "at {offset}");
        }
        let past = copy.read_range(1 << 20, model.len(), &buffers);
        assert_eq!(past.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(std::fs::read(&path).unwrap(), model);
    }
}
