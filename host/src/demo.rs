//! The embedded demo (`nfsgw demo`). The mount command lines it prints are `mount_cmd`'s.
//!
//! The demo serves a local directory with the config in `config/demo.toml`, creating the
//! directory with a few sample files on first use.

use std::path::PathBuf;

use anyhow::{Context, Result};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
const DIR_PLACEHOLDER: &str = "@DEMO_DIR@";

/// The demo config text and the directory it serves.
pub fn prepare(dir: Option<PathBuf>) -> Result<(String, PathBuf)> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("nfsgw-demo"));
    if !dir.exists() {
        std::fs::create_dir_all(dir.join("docs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(
            dir.join("README.txt"),
            "Hello from nfsgw!\nThis directory is served over NFSv3 by a WebAssembly plugin.\n",
        )?;
        std::fs::write(
            dir.join("docs/numbers.txt"),
            (1..=100).map(|i| format!("{i}\n")).collect::<String>(),
        )?;
    }
    let dir = dir.canonicalize()?;
    let text = DEMO_CONFIG.replace(
        DIR_PLACEHOLDER,
        &dir.display().to_string().replace('\\', "\\\\"),
    );
    Ok((text, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_serves_the_demo_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let (text, dir) = prepare(Some(tmp.path().join("d"))).unwrap();
        let config = crate::config::Config::parse(&text, "demo").unwrap();
        assert_eq!(config.mounts[0].name(), "demo");
        let root = config.mounts[0]
            .plugin_config()
            .into_iter()
            .find(|(k, _)| k == "root")
            .unwrap()
            .1;
        assert_eq!(PathBuf::from(root), dir);
        assert!(dir.join("README.txt").is_file());
    }
}
