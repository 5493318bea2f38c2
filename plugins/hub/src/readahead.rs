//! Read-ahead for Xet files: what range to reconstruct for a read, and the bytes kept from the
//! last reconstruction.
//!
//! Each reconstruction costs two round trips (the plan, then the xorb ranges), so a read at the
//! start of a file, or one that continues where the previous read of the same file ended,
//! reconstructs up to `WINDOW` bytes and keeps them; the reads that follow are served from
//! memory. A read elsewhere reconstructs exactly what it asks. Kept bytes are keyed by the
//! file's Xet hash: content-addressed, so they can never be stale. Reading a file of at most
//! `WINDOW` bytes from its start thus reconstructs the whole file, which is then verified.

/// How much a sequential read reconstructs at once.
pub const WINDOW: u64 = 8 << 20;

#[derive(Default)]
pub struct ReadAhead {
    hash: String,
    /// The file offset of `data[0]`.
    start: u64,
    data: Vec<u8>,
    /// Where the last read of `hash` ended.
    next: u64,
}

impl ReadAhead {
    /// Bytes `offset..end` of file `hash`, if kept.
    pub fn serve(&mut self, hash: &str, offset: u64, end: u64) -> Option<Vec<u8>> {
        let kept_end = self.start + self.data.len() as u64;
        if self.hash != hash || offset < self.start || end > kept_end {
            return None;
        }
        self.next = end;
        let from = (offset - self.start) as usize;
        Some(self.data[from..from + (end - offset) as usize].to_vec())
    }

    /// The range to reconstruct for a read of `offset..end` of a file of `size` bytes.
    pub fn span(&self, hash: &str, offset: u64, end: u64, size: u64) -> (u64, u64) {
        let sequential = offset == 0 || (self.hash == hash && self.next == offset);
        if sequential {
            (offset, size.min(end.max(offset + WINDOW)))
        } else {
            (offset, end)
        }
    }

    /// Keeps `data`, reconstructed from `start`, after a read that ended at `read_end`.
    pub fn keep(&mut self, hash: &str, start: u64, data: Vec<u8>, read_end: u64) {
        self.hash = hash.to_string();
        self.start = start;
        self.data = data;
        self.next = read_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_are_served_from_memory() {
        let mut r = ReadAhead::default();
        let size = 20 << 20;
        assert_eq!(r.span("h", 0, 1 << 20, size), (0, WINDOW));
        assert_eq!(
            r.span("h", 0, 1000, 500),
            (0, 500),
            "a small file is read whole"
        );
        r.keep("h", 0, (0..WINDOW).map(|i| i as u8).collect(), 1 << 20);
        assert_eq!(r.serve("h", 1 << 20, (1 << 20) + 3).unwrap(), [0, 1, 2]);
        assert!(r.serve("other", 0, 3).is_none());
        assert!(
            r.serve("h", WINDOW - 1, WINDOW + 1).is_none(),
            "past what is kept"
        );
        // The next miss continues where the last read ended: another window.
        assert_eq!(
            r.span("h", (1 << 20) + 3, WINDOW + 1, size),
            ((1 << 20) + 3, (1 << 20) + 3 + WINDOW)
        );
        // Elsewhere: exactly what is asked.
        assert_eq!(
            r.span("h", 15 << 20, (15 << 20) + 4096, size),
            (15 << 20, (15 << 20) + 4096)
        );
        assert_eq!(r.span("new", 4096, 8192, size), (4096, 8192));
    }
}
