//! The `mount-info` of a mount on a whole-object store (an S3 bucket, a Hub bucket): files are
//! made, removed, renamed and rewritten whole, directories are key prefixes, and the host
//! stages every write and hands the finished file to `commit`.

use crate::{Capabilities, MountInfo};

/// What a writable whole-object store declares, with its attribute and listing cache time.
pub fn whole_object_store(attr_ttl_ms: u32) -> MountInfo {
    MountInfo {
        capabilities: Capabilities::WRITE
            | Capabilities::CREATE
            | Capabilities::MKDIR
            | Capabilities::REMOVE
            | Capabilities::RENAME
            | Capabilities::TRUNCATE,
        immutable: false,
        attr_ttl_ms: Some(attr_ttl_ms),
        max_instances: None,
        staged_writes: true,
        pinned_config: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_object_store_is_staged_and_cannot_link_or_chmod() {
        let info = whole_object_store(250);
        assert!(info.staged_writes && !info.immutable);
        assert_eq!(info.attr_ttl_ms, Some(250));
        assert!(info
            .capabilities
            .contains(Capabilities::RENAME | Capabilities::TRUNCATE));
        assert!(!info
            .capabilities
            .intersects(Capabilities::SYMLINK | Capabilities::HARD_LINK | Capabilities::SET_MODE));
    }
}
