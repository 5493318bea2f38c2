//! File-system sizes for backends that have none (a bucket, a web API): plenty of room when the
//! mount can be written, none free when it cannot.

use crate::FsStats;

/// What a boundless store reports: 1 PiB and 2^32 files in all, all free when `writable`.
pub fn boundless(writable: bool) -> FsStats {
    const BYTES: u64 = 1 << 50;
    const FILES: u64 = 1 << 32;
    let (free_bytes, free_files) = if writable { (BYTES, FILES) } else { (0, 0) };
    FsStats {
        total_bytes: BYTES,
        free_bytes,
        available_bytes: free_bytes,
        total_files: FILES,
        free_files,
        available_files: free_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_writable_store_has_room() {
        let rw = boundless(true);
        assert_eq!((rw.free_bytes, rw.available_files), (1 << 50, 1 << 32));
        let ro = boundless(false);
        assert_eq!(
            (ro.total_bytes, ro.free_bytes, ro.available_files),
            (1 << 50, 0, 0)
        );
    }
}
