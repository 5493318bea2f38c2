//! A stable 64-bit hash of a name (FNV-1a), for what outlives the process: the mount tags in
//! file handles and the names of state directories. It must never change, or handles go stale
//! and journals are lost.

/// The FNV-1a hash of `name`, never 0 (which file handles reserve for the export root).
pub fn of_name(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_never_changes() {
        // Pinned: a changed hash would make every handle and state directory of old runs stale.
        assert_eq!(of_name("data"), 0x855b_5567_30a3_4a05);
        assert_eq!(of_name(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(of_name("data"), of_name("models"));
        assert_ne!(of_name(""), 0);
    }
}
