//! Attributes of files and directories that take their owner and modes from the mount's config
//! rather than from the backend: object stores and web APIs keep neither. A directory is 4096
//! bytes with two links, a file has one link, and all three times are the one time given.

use crate::{Attrs, Device, FileKind, Timestamp};

/// The start of 1970: the time of what has none.
pub const EPOCH: Timestamp = Timestamp {
    seconds: 0,
    nanoseconds: 0,
};

/// Who owns every entry of a mount, and with which permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
}

impl Default for Ownership {
    /// Root's, `rw-r--r--` files and `rwxr-xr-x` directories.
    fn default() -> Self {
        Ownership {
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
        }
    }
}

impl Ownership {
    /// A regular file of `size` bytes.
    pub fn file(&self, size: u64, time: Timestamp, change: Option<String>) -> Attrs {
        self.build(FileKind::Regular, size, self.file_mode, 1, time, change)
    }

    /// A directory.
    pub fn dir(&self, time: Timestamp, change: Option<String>) -> Attrs {
        self.build(FileKind::Directory, 4096, self.dir_mode, 2, time, change)
    }

    fn build(
        &self,
        kind: FileKind,
        size: u64,
        mode: u32,
        nlink: u32,
        time: Timestamp,
        change: Option<String>,
    ) -> Attrs {
        Attrs {
            kind,
            size,
            mode,
            uid: self.uid,
            gid: self.gid,
            nlink,
            atime: time,
            mtime: time,
            ctime: time,
            rdev: Device { major: 0, minor: 0 },
            change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_take_their_own_mode_and_shape() {
        let owner = Ownership {
            uid: 7,
            gid: 8,
            file_mode: 0o600,
            dir_mode: 0o700,
        };
        let t = Timestamp {
            seconds: 5,
            nanoseconds: 6,
        };
        let file = owner.file(42, t, Some("e1".into()));
        assert_eq!(
            (file.kind, file.size, file.mode, file.nlink),
            (FileKind::Regular, 42, 0o600, 1)
        );
        assert_eq!(
            (
                file.uid,
                file.gid,
                file.mtime.seconds,
                file.ctime.nanoseconds
            ),
            (7, 8, 5, 6)
        );
        assert_eq!(file.change.as_deref(), Some("e1"));
        let dir = owner.dir(t, None);
        assert_eq!(
            (dir.kind, dir.size, dir.mode, dir.nlink),
            (FileKind::Directory, 4096, 0o700, 2)
        );
    }
}
