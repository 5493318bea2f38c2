//! NSM's state number: how many times nfsgw has started, as its clients' status monitors see
//! it. It lives in the state directory, is odd while nfsgw runs, and each start moves it to
//! the next odd number (durably, before anything is served), so a client that is told the new
//! number knows nfsgw restarted and its locks are gone.

use std::io;
use std::path::Path;

use crate::nfs::state_file;

/// The file's name in the state directory.
pub const FILE: &str = "nsm-state";
/// The file holds one decimal number.
const MAX_LEN: usize = 32;

/// The state number that follows `previous` (0 when none was kept): the next odd number,
/// starting again at 1 past the largest.
fn next(previous: u32) -> u32 {
    let step = if previous % 2 == 1 { 2 } else { 1 };
    previous.checked_add(step).unwrap_or(1)
}

/// Moves the state number in `dir` to the next one and returns it. Blocks.
pub fn advance(dir: &Path) -> io::Result<u32> {
    let path = dir.join(FILE);
    let previous = match state_file::read(&path, MAX_LEN)? {
        None => 0,
        Some(text) => text.trim().parse().map_err(|_| {
            io::Error::other(format!(
                "{} holds no state number ({text:?}); remove it to start again from 1",
                path.display()
            ))
        })?,
    };
    let state = next(previous);
    state_file::replace(&path, format!("{state}\n").as_bytes())?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_moves_to_the_next_odd_number() {
        assert_eq!((next(0), next(1), next(2), next(7)), (1, 3, 3, 9));
        assert_eq!(next(u32::MAX), 1);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(advance(dir.path()).unwrap(), 1);
        assert_eq!(advance(dir.path()).unwrap(), 3);
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(advance(dir.path()).is_err());
    }
}
