//! Gear-hash content-defined chunking as Xet clients do it: a boundary falls
//! after a byte where the rolling hash (the `gearhash` crate's default table)
//! has its top 16 bits zero, but only once the chunk holds at least 8 KiB; a
//! boundary is forced at 128 KiB (target 64 KiB) and the hash restarts from 0
//! after each boundary. Same input gives the same chunks however it is split
//! into `push` calls.

/// Smallest chunk the rolling hash may cut (the last chunk may be shorter).
pub const MIN_CHUNK: usize = 8 * 1024;
/// Mean chunk size the mask aims at.
pub const TARGET_CHUNK: usize = 64 * 1024;
/// A boundary is forced here.
pub const MAX_CHUNK: usize = 128 * 1024;

/// Top 16 bits: one match in 64 KiB on average.
const MASK: u64 = 0xFFFF_0000_0000_0000;
/// The gear hash at a byte depends only on the last 64 bytes, so the bytes of
/// a chunk before `MIN_CHUNK - WINDOW - 1` need not be hashed.
const WINDOW: usize = 64;

/// Streaming chunker: feed bytes with [`Chunker::push`], then take the last
/// partial chunk with [`Chunker::finish`].
pub struct Chunker {
    hasher: gearhash::Hasher<'static>,
    /// Bytes of the chunk under way.
    current: Vec<u8>,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunker {
    pub fn new() -> Self {
        Chunker {
            hasher: gearhash::Hasher::new(&gearhash::DEFAULT_TABLE),
            current: Vec::with_capacity(MAX_CHUNK),
        }
    }

    /// Consumes `data`, returning the chunks it completed (in order).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        while !data.is_empty() {
            // Bytes that cannot influence a legal boundary are only copied.
            let unhashed = (MIN_CHUNK - WINDOW - 1).saturating_sub(self.current.len());
            let skip = unhashed.min(data.len());
            self.current.extend_from_slice(&data[..skip]);
            data = &data[skip..];

            let room = MAX_CHUNK - self.current.len();
            let scan = &data[..room.min(data.len())];
            let mut used = 0;
            let mut cut = false;
            while let Some(n) = self.hasher.next_match(&scan[used..], MASK) {
                used += n;
                if self.current.len() + used >= MIN_CHUNK {
                    cut = true;
                    break;
                }
            }
            if !cut {
                used = scan.len();
            }
            self.current.extend_from_slice(&scan[..used]);
            data = &data[used..];
            if cut || self.current.len() == MAX_CHUNK {
                done.push(self.take());
            }
        }
        done
    }

    /// The last, possibly short, chunk (`None` when nothing is pending);
    /// the chunker is then ready for a new stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.current.is_empty() {
            self.hasher.set_hash(0);
            return None;
        }
        Some(self.take())
    }

    fn take(&mut self) -> Vec<u8> {
        self.hasher.set_hash(0);
        std::mem::replace(&mut self.current, Vec::with_capacity(MAX_CHUNK))
    }
}
