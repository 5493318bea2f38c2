//! Record marking over a byte stream (RFC 5531 section 11): a record is read fragment by
//! fragment into one buffer, within a limit on its length and a budget shared by every
//! connection. A record whose bulk data the caller can locate from its first bytes (an NFS
//! WRITE's, say: see [`DataAt`]) gets that data placed block-aligned in memory, so that a staged
//! write reaches the disk without another copy (`copy_file`).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::buffer_pool::BufferPool;
use crate::copy_file::{gap_to_alignment, ALIGN};

/// The largest record accepted: a 1 MiB WRITE plus headers, with room to spare.
pub const MAX_RECORD: usize = 4 << 20;
pub(super) const LAST_FRAGMENT: u32 = 1 << 31;
/// A record's buffer grows by at most this much ahead of the bytes that arrived.
const GROWTH_STEP: usize = 64 << 10;
/// Records whose first fragment is at least this long have their bulk data block-aligned.
const ALIGNED_MIN: usize = 64 << 10;

/// Where a call's bulk data starts, found from the record's first `head` bytes by `find`
/// (`None`: the call has no bulk data, or it starts later).
pub struct DataAt {
    pub head: usize,
    pub find: fn(&[u8]) -> Option<usize>,
}

/// The bytes of records that every connection together may hold while they are read and
/// answered, counted in KiB. A record takes its share before its bytes are read, fragment by
/// fragment, and gives it back once it is dropped: many connections sending large records
/// slowly wait for room (and meet their record deadline) rather than pin memory.
pub struct RecordBudget(Arc<Semaphore>);

impl RecordBudget {
    pub fn new(bytes: usize) -> RecordBudget {
        RecordBudget(Arc::new(Semaphore::new(bytes.div_ceil(1024))))
    }

    /// Waits until `len` more bytes fit, and adds them to `held`.
    async fn reserve(&self, held: &mut Option<OwnedSemaphorePermit>, len: usize) {
        let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
        let more = self
            .0
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the budget is never closed");
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
    }
}

/// A record read from a connection, holding its share of the [`RecordBudget`] until dropped.
pub struct Record {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads one record (all its fragments), a large one into a buffer of `buffers` with its bulk
/// data where `data_at` says aligned, once `budget` has room for each fragment. `None` at a
/// clean end of stream.
pub async fn read_record<R: AsyncRead + Unpin>(
    r: &mut R,
    buffers: &Arc<BufferPool>,
    budget: &RecordBudget,
    data_at: &DataAt,
) -> io::Result<Option<Record>> {
    let mut held = None;
    let reader = Assembler {
        max: MAX_RECORD,
        buffers: Some(buffers),
        data_at: Some(data_at),
    };
    let bytes = reader
        .assemble(r, Some((budget, &mut held)), &mut 0)
        .await?;
    Ok(bytes.map(|bytes| Record {
        bytes,
        _budget: held,
    }))
}

/// One record of at most `max` bytes, outside any budget: a longer record is an
/// `InvalidData` error. `None` at a clean end of stream.
pub async fn read_record_limited<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Option<Bytes>> {
    let reader = Assembler {
        max,
        buffers: None,
        data_at: None,
    };
    reader.assemble(r, None, &mut 0).await
}

/// How one record is read: its limit, where large buffers come from, and how to find its
/// bulk data.
struct Assembler<'a> {
    max: usize,
    buffers: Option<&'a Arc<BufferPool>>,
    data_at: Option<&'a DataAt>,
}

impl Assembler<'_> {
    fn take(&self, capacity: usize) -> Vec<u8> {
        self.buffers
            .map_or_else(|| Vec::with_capacity(capacity), |b| b.take(capacity))
    }

    /// Reads a record's fragments into one buffer; `moved` counts the bytes that growing the
    /// buffer had to move (at most about twice the record's length: growth is geometric).
    ///
    /// Records of at least `ALIGNED_MIN` bytes are read into buffers taken from `buffers`
    /// (when given), which get them back once the record is dropped, with their bulk data
    /// block-aligned. Other records grow as their bytes arrive, so a record that claims
    /// megabytes and stalls holds only what it sent.
    async fn assemble<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        mut budget: Option<(&RecordBudget, &mut Option<OwnedSemaphorePermit>)>,
        moved: &mut usize,
    ) -> io::Result<Option<Bytes>> {
        let max = self.max;
        let mut record: Vec<u8> = Vec::new();
        // Bytes before the record, there to align its bulk data.
        let mut shift = 0;
        // Where the bulk data starts in the record, once its first fragment placed it.
        let mut data_at = None;
        loop {
            let mut mark = [0u8; 4];
            match r.read_exact(&mut mark).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && record.is_empty() => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
            let mark = u32::from_be_bytes(mark);
            let len = (mark & !LAST_FRAGMENT) as usize;
            if record.len() - shift + len > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("RPC record over {max} bytes"),
                ));
            }
            if let Some((budget, held)) = budget.as_mut() {
                budget.reserve(held, len).await;
            }
            let mut fragment = (&mut *r).take(len as u64);
            if let Some(hint) = self
                .data_at
                .filter(|_| record.is_empty() && len >= ALIGNED_MIN)
            {
                let mut head = Vec::with_capacity(hint.head);
                (&mut fragment)
                    .take(hint.head as u64)
                    .read_to_end(&mut head)
                    .await?;
                record = self.take(len + ALIGN);
                if let Some(at) = (hint.find)(&head) {
                    shift = gap_to_alignment(record.as_ptr().wrapping_add(at));
                    record.resize(shift, 0);
                    data_at = Some(at);
                }
                record.extend_from_slice(&head);
            } else if let Some(at) = data_at.filter(|_| record.capacity() - record.len() < len) {
                // Growing in place could move the data off its block boundary: the fragments
                // so far move to a new buffer where it is aligned again, twice as large as
                // needed so far at least, so that many small fragments move each byte a few
                // times only.
                let kept = record.len() - shift;
                let mut grown = self.take((kept + len).max(2 * kept).min(max) + ALIGN);
                let new_shift = gap_to_alignment(grown.as_ptr().wrapping_add(at));
                grown.resize(new_shift, 0);
                grown.extend_from_slice(&record[shift..]);
                *moved += kept;
                (record, shift) = (grown, new_shift);
            }
            // The rest is read into the record's spare room: a WRITE's megabyte is not zeroed
            // first.
            let target = record.len() + fragment.limit() as usize;
            while record.len() < target {
                let room = (target - record.len()).min(GROWTH_STEP);
                if record.capacity() - record.len() < room {
                    // `reserve` at least doubles the buffer, so reading stays linear.
                    *moved += record.len();
                    record.reserve(room);
                }
                if fragment.read_buf(&mut record).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            if mark & LAST_FRAGMENT != 0 {
                let record = match self.buffers {
                    Some(buffers) if record.capacity() >= ALIGNED_MIN => buffers.share(record),
                    _ => Bytes::from(record),
                };
                return Ok(Some(record.slice(shift..)));
            }
        }
    }
}

/// Test helpers that frame records: used by this module's tests and by the front's.
#[cfg(test)]
pub(crate) mod frame {
    use super::LAST_FRAGMENT;

    /// `record` sent in fragments of `size` bytes.
    pub fn fragmented(record: &[u8], size: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        let mut chunks = record.chunks(size).peekable();
        while let Some(chunk) = chunks.next() {
            let last = if chunks.peek().is_none() {
                LAST_FRAGMENT
            } else {
                0
            };
            stream.extend_from_slice(&(chunk.len() as u32 | last).to_be_bytes());
            stream.extend_from_slice(chunk);
        }
        stream
    }

    /// `record` sent in two fragments, the first `first` bytes long.
    pub fn framed(record: &[u8], first: usize) -> Vec<u8> {
        let mut stream = (first as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&record[..first]);
        let rest = (record.len() - first) as u32 | LAST_FRAGMENT;
        stream.extend_from_slice(&rest.to_be_bytes());
        stream.extend_from_slice(&record[first..]);
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::frame::{fragmented, framed};
    use super::*;

    /// Test records carry their bulk data after a head of this many bytes when they start
    /// with the word 1.
    const HEAD: usize = 100;
    const AFTER_HEAD: DataAt = DataAt {
        head: HEAD,
        find: |head| (head.len() >= HEAD && head[..4] == [0, 0, 0, 1]).then_some(HEAD),
    };

    /// A record with bulk data of `len` bytes after its head.
    fn bulk_record(len: usize) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 1];
        out.resize(HEAD, 9);
        out.extend((0..len).map(|i| (i % 251) as u8));
        out
    }

    /// A record's bytes, read with room for the largest record.
    async fn read<R: AsyncRead + Unpin>(
        r: &mut R,
        pool: &Arc<BufferPool>,
    ) -> io::Result<Option<Bytes>> {
        let budget = RecordBudget::new(MAX_RECORD);
        Ok(read_record(r, pool, &budget, &AFTER_HEAD)
            .await?
            .map(|record| record.bytes))
    }

    /// Reads `stream` as one record: its bytes, and how many bytes growing its buffer moved.
    async fn assembled(stream: &[u8], pool: &Arc<BufferPool>) -> (Bytes, usize) {
        let mut moved = 0;
        let reader = Assembler {
            max: MAX_RECORD,
            buffers: Some(pool),
            data_at: Some(&AFTER_HEAD),
        };
        let bytes = reader
            .assemble(&mut &stream[..], None, &mut moved)
            .await
            .unwrap()
            .unwrap();
        (bytes, moved)
    }

    #[tokio::test]
    async fn many_small_fragments_are_joined_in_linear_work() {
        let pool = BufferPool::new(0);
        // 40,000 fragments of 8 bytes: joined by growing the buffer one fragment at a time,
        // this would move 6.4 GB; geometric growth moves each byte a few times at most.
        let record: Vec<u8> = (0..320_000).map(|i| (i % 253) as u8).collect();
        let (bytes, moved) = assembled(&fragmented(&record, 8), &pool).await;
        assert_eq!(bytes, record);
        assert!(moved <= 2 * record.len(), "moved {moved} bytes");

        // A record whose first fragment places its data block-aligned, then tiny fragments.
        let bulk = bulk_record(1 << 20);
        let mut stream = (ALIGNED_MIN as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&bulk[..ALIGNED_MIN]);
        stream.extend_from_slice(&fragmented(&bulk[ALIGNED_MIN..], 16));
        let (bytes, moved) = assembled(&stream, &pool).await;
        assert_eq!(bytes, bulk);
        assert_eq!(gap_to_alignment(bytes[HEAD..].as_ptr()), 0);
        assert!(moved <= 2 * bulk.len(), "moved {moved} bytes");
    }

    #[tokio::test]
    async fn a_record_waits_for_room_in_the_budget_and_gives_it_back() {
        use futures_util::FutureExt;
        let pool = BufferPool::new(0);
        let budget = RecordBudget::new(8 << 10);
        let record = vec![7u8; 6 << 10];
        let stream = fragmented(&record, record.len());
        let read_one = || async {
            let read = read_record(&mut &stream[..], &pool, &budget, &AFTER_HEAD).await;
            read.unwrap().expect("a record")
        };
        let first = read_one().now_or_never().expect("room for one");
        assert!(
            read_one().now_or_never().is_none(),
            "no room for a second one while the first is held"
        );
        drop(first);
        let second = read_one().now_or_never().expect("room again");
        assert_eq!(second.bytes, record);
    }

    #[tokio::test]
    async fn records_join_fragments_and_refuse_oversized_ones() {
        let pool = BufferPool::new(0);
        let mut stream = Vec::new();
        stream.extend_from_slice(&3u32.to_be_bytes());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&(2 | LAST_FRAGMENT).to_be_bytes());
        stream.extend_from_slice(b"de");
        let mut r = &stream[..];
        assert_eq!(read(&mut r, &pool).await.unwrap().unwrap(), &b"abcde"[..]);
        assert!(read(&mut r, &pool).await.unwrap().is_none());
        let big = ((MAX_RECORD as u32 + 1) | LAST_FRAGMENT).to_be_bytes();
        assert!(read(&mut &big[..], &pool).await.is_err());
        let small = framed(&[1; 20], 10);
        let e = read_record_limited(&mut &small[..], 16).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "over the given limit");
    }

    #[tokio::test]
    async fn bulk_data_lands_block_aligned_and_other_records_are_left_as_they_are() {
        let pool = BufferPool::new(0);
        let record = bulk_record(256 << 10);
        // In two fragments, the first one ending inside the data.
        let stream = framed(&record, 100_000);
        let got = read(&mut &stream[..], &pool).await.unwrap().unwrap();
        assert_eq!(got, record);
        assert_eq!(gap_to_alignment(got[HEAD..].as_ptr()), 0);

        let mut other = record.clone();
        other[3] = 2;
        let stream = framed(&other, other.len());
        assert_eq!(read(&mut &stream[..], &pool).await.unwrap().unwrap(), other);

        let cut = &framed(&record, 100_000)[..150_000];
        let e = read(&mut &cut[..], &pool).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_large_record_reuses_the_buffer_of_one_dropped_before() {
        let pool = BufferPool::new(4 << 20);
        let record = bulk_record(1 << 20);
        let stream = framed(&record, record.len());
        let first = read(&mut &stream[..], &pool).await.unwrap().unwrap();
        let buffer = first.as_ptr();
        drop(first);
        assert!(pool.kept() > 1 << 20, "the buffer went back");

        let other = bulk_record((1 << 20) - 4096);
        let stream = framed(&other, other.len());
        let second = read(&mut &stream[..], &pool).await.unwrap().unwrap();
        assert_eq!(second, other);
        assert_eq!(gap_to_alignment(second[HEAD..].as_ptr()), 0);
        let apart = (second.as_ptr() as isize - buffer as isize).unsigned_abs();
        assert!(
            apart < ALIGN,
            "read into the same buffer ({apart} bytes apart)"
        );
        assert_eq!(pool.kept(), 0);
    }
}
