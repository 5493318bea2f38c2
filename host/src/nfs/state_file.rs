//! The small files the lock service keeps in the state directory (NSM's state number, the
//! hosts that hold locks): read with a bound on their size, and replaced whole and durably (a
//! temporary file written and synced, renamed over the old one, and the rename synced), so a
//! crash leaves the old content or the new, never a mix. Every function here blocks: callers
//! run them on the blocking pool (`crate::blocking`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The content of `path`, or `None` when it does not exist; an error when it is longer than
/// `max` bytes or not UTF-8.
pub fn read(path: &Path, max: usize) -> io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(max as u64 + 1).read_to_string(&mut text)?;
    if text.len() > max {
        return Err(io::Error::other(format!(
            "{} is longer than {max} bytes",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// Replaces `path` with `content`, durably; makes its directory if needed.
pub fn replace(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut file = File::create(tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    // The rename itself must survive a crash too.
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_content_is_read_back_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state");
        assert_eq!(read(&path, 16).unwrap(), None);
        replace(&path, b"7\n").unwrap();
        replace(&path, b"9\n").unwrap();
        assert_eq!(read(&path, 16).unwrap().as_deref(), Some("9\n"));
        assert!(read(&path, 1).is_err());
        assert!(!dir.path().join("sub/state.tmp").exists());
    }
}
