//! Mount-relative paths as the interface gives them: "" is the root, "a/b" is entry "b" of
//! directory "a", and names never hold "/".

/// The directory part and the name of a path: ("a", "b") for "a/b", ("", "b") for "b".
pub fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The key prefix of everything under a directory: "" for the root, else "a/b/".
pub fn dir_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// A mount-relative path under `base` (a host directory, a key prefix without its "/").
pub fn under(base: &str, path: &str) -> String {
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nested_paths() {
        assert_eq!(split_parent("a/b/c"), ("a/b", "c"));
        assert_eq!(split_parent("c"), ("", "c"));
        assert_eq!(dir_prefix(""), "");
        assert_eq!(dir_prefix("a/b"), "a/b/");
        assert_eq!(under("/export", ""), "/export");
        assert_eq!(under("/export", "a/b"), "/export/a/b");
    }
}
