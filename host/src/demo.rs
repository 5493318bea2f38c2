//! The embedded demo (`nfsgw demo`) and the mount command lines nfsgw prints.
//!
//! The demo serves a local directory with the config in `config/demo.toml`, creating the
//! directory with a few sample files on first use.

use std::net::SocketAddr;
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

pub fn linux_mount_line(addr: SocketAddr, mount: &str) -> String {
    let port = addr.port();
    format!(
        "sudo mkdir -p /mnt/{mount} && sudo mount -t nfs -o vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,nolock,rsize=1048576,wsize=1048576 {}:/{mount} /mnt/{mount}",
        addr.ip()
    )
}

pub fn macos_mount_line(addr: SocketAddr, mount: &str) -> String {
    let port = addr.port();
    format!(
        "mkdir -p ~/nfsgw/{mount} && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolocks,locallocks,rsize=1048576,wsize=1048576 {}:/{mount} ~/nfsgw/{mount}",
        addr.ip()
    )
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

    #[test]
    fn mount_lines_carry_the_port_and_options() {
        let addr: SocketAddr = "127.0.0.1:20490".parse().unwrap();
        let linux = linux_mount_line(addr, "data");
        assert!(
            linux.contains("port=20490,mountport=20490")
                && linux.contains("127.0.0.1:/data /mnt/data")
        );
        assert!(linux.contains("vers=3") && linux.contains("nolock"));
        let mac = macos_mount_line(addr, "data");
        assert!(mac.contains("locallocks") && mac.contains("127.0.0.1:/data"));
    }
}
