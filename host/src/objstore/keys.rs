//! Which keys the host names in a bucket: paths of names a file system can show, which S3
//! can store under a grant's prefix. Both the plugin's keys and the bucket's listed keys must
//! pass, so a key can neither escape the mount nor fail its directory.

use crate::wit_types::Error;

/// The longest segment of a key: the longest name NFS clients take.
const MAX_SEGMENT: usize = 255;
/// The longest key S3 stores.
const MAX_KEY: usize = 1024;

/// Whether `key` (a directory's ending in "/") is a path of names: not empty, no empty, "."
/// or ".." segment, no NUL, no segment over `MAX_SEGMENT` bytes, at most `MAX_KEY` bytes.
pub(super) fn valid_key(key: &str) -> bool {
    let body = key.strip_suffix('/').unwrap_or(key);
    !body.is_empty()
        && key.len() <= MAX_KEY
        && body.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && !segment.contains('\0')
                && segment.len() <= MAX_SEGMENT
        })
}

/// The key `key` has under `prefix`: NAMETOOLONG when S3 could not store it (the client's
/// path is longer than S3 keys go), INVAL when it is no path of names.
pub(super) fn full_key(prefix: &str, key: &str) -> Result<String, Error> {
    let full = format!("{prefix}{key}");
    if full.len() > MAX_KEY {
        return Err(Error::NameTooLong);
    }
    if !valid_key(key) {
        return Err(Error::Invalid);
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_paths_of_names() {
        for good in [
            "a",
            "a/b.txt",
            "a/b/",
            "dir/",
            "a/.hidden",
            "a/...",
            &"n".repeat(255),
        ] {
            assert!(valid_key(good), "{good:?} refused");
        }
        let long_segment = format!("a/{}", "n".repeat(256));
        let long_key = "abcdefgh/".repeat(114);
        for bad in [
            "",
            "/",
            "/a",
            "a//b",
            "a//b/",
            "a/../b/",
            "../",
            "a/./",
            ".",
            "a/..",
            "a\0b",
            &long_segment,
            &long_key,
        ] {
            assert!(!valid_key(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_path_longer_than_s3_keys_is_a_name_too_long() {
        let fits = "abcdefgh/".repeat(113) + "x";
        assert_eq!(full_key("p/", &fits), Ok(format!("p/{fits}")));
        let over = "abcdefgh/".repeat(114);
        assert_eq!(full_key("", &over), Err(Error::NameTooLong));
        assert_eq!(
            full_key(&"p".repeat(1020), "abcde"),
            Err(Error::NameTooLong)
        );
        assert_eq!(full_key("p/", "a//b"), Err(Error::Invalid));
    }
}
