//! Recycled buffers for bulk data: the records of large NFS WRITEs, the data of READ replies
//! the host reads itself, and the parts of uploads read back from staged copies.
//!
//! Every such request used to get a fresh megabyte (or eight) from the allocator, which hands
//! memory of that size back to the kernel when it is freed, so the next request paid a page
//! fault and a zeroed page for every 4 KiB it filled: 74,000 faults for a 1 GiB write through an
//! S3 mount and 100,000 for a 1 GiB read from a local one (docs/BENCHMARKS.md, step 8). A pool
//! keeps freed buffers for the next request instead. A buffer is lent out as a plain `Vec` to
//! fill, then shared as `Bytes` ([`BufferPool::share`]); it comes back when the last of those
//! `Bytes` is dropped, and the pool keeps it while it holds less than its budget. Whoever owns
//! a pool bounds how long it lives: a connection's pool goes with the connection, an upload's
//! with the upload.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Smaller buffers are not kept: the allocator reuses those cheaply by itself.
const SMALLEST_KEPT: usize = 64 << 10;

pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// The most capacity, in bytes, kept for reuse.
    budget: usize,
}

impl BufferPool {
    pub fn new(budget: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            budget,
        })
    }

    /// An empty vector with room for at least `capacity` bytes: a kept one when one fits (not
    /// more than twice as large), else a new one. On a miss, the oldest kept buffers make room
    /// for the new one to be kept in turn, so a pool follows what its owner now asks for.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap();
        let fits = free
            .iter()
            .position(|buf| (capacity..=capacity.saturating_mul(2)).contains(&buf.capacity()));
        if let Some(at) = fits {
            return free.swap_remove(at);
        }
        let mut kept: usize = free.iter().map(Vec::capacity).sum();
        while kept + capacity > self.budget && !free.is_empty() {
            kept -= free.remove(0).capacity();
        }
        drop(free);
        Vec::with_capacity(capacity)
    }

    /// `buf` as `Bytes` that return it to this pool once the last of them is dropped.
    pub fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Lent {
            buf,
            pool: self.clone(),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = self.free.lock().unwrap();
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if buf.capacity() >= SMALLEST_KEPT && kept + buf.capacity() <= self.budget {
            free.push(buf);
        }
    }

    /// The capacity kept for reuse, in bytes.
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap().iter().map(Vec::capacity).sum()
    }
}

/// A buffer shared as `Bytes`, on its way back to its pool.
struct Lent {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_buffer_is_reused_once_its_last_bytes_are_dropped() {
        let pool = BufferPool::new(4 << 20);
        let mut buf = pool.take(1 << 20);
        buf.extend_from_slice(&[7; 1000]);
        let at = buf.as_ptr();
        let bytes = pool.share(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert!(pool.kept() >= 1 << 20);

        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), at, "the same buffer comes back");
        assert!(again.is_empty(), "and it comes back empty");
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn buffers_far_too_small_or_large_are_not_reused() {
        let pool = BufferPool::new(64 << 20);
        drop(pool.share(pool.take(1 << 20)));
        assert!(pool.take(2 << 20).capacity() >= 2 << 20);
        assert_eq!(
            pool.kept(),
            1 << 20,
            "too small for 2 MiB, and within the budget: kept"
        );
        let small = pool.take(4 << 10);
        assert!(small.capacity() < 1 << 20, "1 MiB is not lent for 4 KiB");
        drop(pool.share(small));
        assert_eq!(pool.kept(), 1 << 20, "a small buffer is not kept");
    }

    #[test]
    fn buffers_of_a_size_no_longer_asked_for_make_room_for_the_new_size() {
        let pool = BufferPool::new(4 << 20);
        let small: Vec<Bytes> = (0..4).map(|_| pool.share(pool.take(1 << 20))).collect();
        drop(small);
        assert_eq!(pool.kept(), 4 << 20);
        let large: Vec<Bytes> = (0..2).map(|_| pool.share(pool.take(3 << 19))).collect();
        drop(large);
        let kept_large = pool
            .free
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.capacity() >= 3 << 19);
        assert!(kept_large, "no 1.5 MiB buffer kept");
        assert!(pool.kept() <= 4 << 20);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_budget() {
        let pool = BufferPool::new(3 << 20);
        let shared: Vec<Bytes> = (0..5).map(|_| pool.share(pool.take(1 << 20))).collect();
        drop(shared);
        let kept = pool.kept();
        assert!(kept <= 3 << 20, "kept {kept} bytes");
        assert!(kept >= 2 << 20, "kept {kept} bytes");
    }
}
