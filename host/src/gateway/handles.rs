//! File ids and NFS file handles.
//!
//! A file id packs a mount slot (its position in the config, 16 bits) and the mount-local inode
//! number (48 bits); slot 0 is the export root that lists the mounts. A file handle instead
//! names the mount by a tag derived from its name, so reordering the config does not
//! invalidate handles, and carries the generation of the inode table that issued the inode
//! number. Mount roots are issued with generation 0 and stay valid across restarts; other
//! handles from an earlier run answer STALE rather than reach whatever file now has the number.

/// The export root, the directory whose entries are the mounts.
pub const EXPORT_ROOT: u64 = 1;
/// Every mount's root directory has this inode number.
pub const MOUNT_ROOT_INO: u64 = 1;

const SLOT_SHIFT: u32 = 48;
const INO_MASK: u64 = (1 << SLOT_SHIFT) - 1;
const HANDLE_VERSION: u8 = 1;
const HANDLE_LEN: usize = 1 + 8 + 8 + 4;

/// The file id of inode `ino` of the mount in `slot` (1-based).
pub fn file_id(slot: usize, ino: u64) -> u64 {
    ((slot as u64) << SLOT_SHIFT) | (ino & INO_MASK)
}

/// (slot, ino) of a file id; slot 0 is the export root.
pub fn split(id: u64) -> (usize, u64) {
    ((id >> SLOT_SHIFT) as usize, id & INO_MASK)
}

/// A stable 64-bit tag for a mount name; 0 is reserved for the export root.
pub fn mount_tag(name: &str) -> u64 {
    crate::stable_hash::of_name(name)
}

/// The decoded parts of a file handle.
#[derive(Debug, PartialEq, Eq)]
pub struct Handle {
    pub tag: u64,
    pub ino: u64,
    pub generation: u32,
}

impl Handle {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HANDLE_LEN);
        out.push(HANDLE_VERSION);
        out.extend_from_slice(&self.tag.to_be_bytes());
        out.extend_from_slice(&self.ino.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Handle> {
        if bytes.len() != HANDLE_LEN || bytes[0] != HANDLE_VERSION {
            return None;
        }
        Some(Handle {
            tag: u64::from_be_bytes(bytes[1..9].try_into().ok()?),
            ino: u64::from_be_bytes(bytes[9..17].try_into().ok()?),
            generation: u32::from_be_bytes(bytes[17..21].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_round_trip() {
        assert_eq!(split(file_id(3, 77)), (3, 77));
        assert_eq!(split(EXPORT_ROOT), (0, 1));
        assert_ne!(file_id(1, MOUNT_ROOT_INO), EXPORT_ROOT);
    }

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        let h = Handle {
            tag: mount_tag("data"),
            ino: 42,
            generation: 7,
        };
        assert_eq!(Handle::decode(&h.encode()), Some(h));
        assert_eq!(Handle::decode(&[]), None);
        assert_eq!(Handle::decode(&[9; HANDLE_LEN]), None);
        assert_eq!(Handle::decode(&[1; 16]), None);
    }

    #[test]
    fn tags_differ_by_name() {
        assert_ne!(mount_tag("data"), mount_tag("models"));
    }
}
