//! The free space a mount's staged copies may use: the state directory's disk less a reserve,
//! measured with `statvfs` again once the bytes staged since the last measure spend its credit.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::io_error;
use crate::backend::types::Error;

/// Bytes staged between two measures of the free space (a `statvfs` costs microseconds; a
/// disk filled by others meanwhile costs at most this much of the reserve).
const MEASURE_EVERY: u64 = 64 << 20;

/// The free space staged data may use: the state directory's disk, less a reserve.
pub(super) struct Room {
    dir: PathBuf,
    reserve: u64,
    /// Bytes that may still be staged before the free space is measured again.
    credit: Mutex<u64>,
}

impl Room {
    pub(super) fn new(dir: &Path, reserve: u64) -> Room {
        Room {
            dir: dir.to_path_buf(),
            reserve,
            credit: Mutex::new(0),
        }
    }

    /// Refuses `bytes` more when they would leave less than the reserve free.
    pub(super) fn check(&self, bytes: u64) -> Result<(), Error> {
        let mut credit = self.credit.lock().unwrap();
        // No credit left: measure, even for nothing (a new, empty copy).
        if *credit > 0 && *credit >= bytes {
            *credit -= bytes;
            return Ok(());
        }
        let available = free_bytes(&self.dir).map_err(|e| io_error("measuring free space", e))?;
        let usable = available.saturating_sub(self.reserve);
        if usable == 0 || usable < bytes {
            *credit = 0;
            tracing::warn!(dir = %self.dir.display(), available, bytes, reserve = self.reserve, "staging refused: the state directory's disk is nearly full");
            return Err(Error::NoSpace);
        }
        *credit = (usable - bytes).min(MEASURE_EVERY);
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
#[cfg(unix)]
pub(super) fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
pub(super) fn free_bytes(_dir: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_again_once_the_credit_is_spent() {
        let dir = tempfile::tempdir().unwrap();
        let room = Room::new(dir.path(), 0);
        room.check(1).unwrap();
        let credit = *room.credit.lock().unwrap();
        assert!(credit > 0 && credit <= MEASURE_EVERY, "{credit}");
        room.check(credit).unwrap();
        assert_eq!(*room.credit.lock().unwrap(), 0, "spent without measuring");
        assert_eq!(room.check(u64::MAX), Err(Error::NoSpace));
    }
}
