//! The embedded demo (`nfsgw demo`). The mount command lines it prints are `mount_cmd`'s.
//!
//! The demo serves a local directory with the config in `config/demo.toml`, creating the
//! directory with a few sample files on first use. Every client acts as the directory's owner
//! (all_squash), so the person trying the demo can write to it whatever uid their NFS client
//! sends. A directory the demo creates as root belongs to the user who ran `sudo` (SUDO_UID),
//! or to `nobody` when there is none, never to root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
/// Where the demo serves unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:20490";

/// Where the demo serves NFS and its portmapper (`"off"`, or an address).
pub struct Addresses {
    pub listen: SocketAddr,
    pub portmap: String,
}
/// The owner of a demo directory created by root with no `sudo` user to give it to.
const NOBODY: (u32, u32) = (crate::config::NOBODY, crate::config::NOBODY);

/// The demo config text for serving at `at`, and the directory it serves.
pub fn prepare(dir: Option<PathBuf>, at: &Addresses) -> Result<(String, PathBuf)> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("nfsgw-demo"));
    if !dir.exists() {
        create(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let dir = dir.canonicalize()?;
    let (uid, gid) = owner(&dir)?;
    let text = DEMO_CONFIG
        .replace(
            "@DEMO_DIR@",
            &dir.display().to_string().replace('\\', "\\\\"),
        )
        .replace("@DEMO_LISTEN@", &at.listen.to_string())
        .replace("@DEMO_PORTMAP@", &at.portmap.replace(['"', '\\'], ""))
        .replace("@DEMO_UID@", &uid.to_string())
        .replace("@DEMO_GID@", &gid.to_string());
    Ok((text, dir))
}

/// Makes the demo directory with its sample files, owned by whoever will use it.
fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("docs"))?;
    std::fs::write(
        dir.join("README.txt"),
        "Hello from nfsgw!\nThis directory is served over NFSv3 by a WebAssembly plugin.\n",
    )?;
    std::fs::write(
        dir.join("docs/numbers.txt"),
        (1..=100).map(|i| format!("{i}\n")).collect::<String>(),
    )?;
    give_to_user(dir)
}

/// When root makes the demo directory, it goes to the `sudo` user, or to `nobody`.
#[cfg(unix)]
fn give_to_user(dir: &Path) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let from_sudo = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
    let (uid, gid) = match (from_sudo("SUDO_UID"), from_sudo("SUDO_GID")) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => NOBODY,
    };
    for path in [
        dir.to_path_buf(),
        dir.join("docs"),
        dir.join("README.txt"),
        dir.join("docs/numbers.txt"),
    ] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to uid {uid}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn give_to_user(_: &Path) -> Result<()> {
    Ok(())
}

/// The uid and gid every demo client acts as: the directory's owner.
#[cfg(unix)]
fn owner(dir: &Path) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    Ok((meta.uid(), meta.gid()))
}

/// Windows keeps no POSIX owner: clients act as `nobody`, which the local plugin ignores.
#[cfg(not(unix))]
fn owner(_: &Path) -> Result<(u32, u32)> {
    Ok(NOBODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_serves_the_demo_dir_as_its_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let at = Addresses {
            listen: "127.0.0.1:0".parse().unwrap(),
            portmap: "off".into(),
        };
        let (text, dir) = prepare(Some(tmp.path().join("d")), &at).unwrap();
        let config = crate::config::Config::parse(&text, "demo").unwrap();
        assert_eq!(config.server.listen, at.listen);
        assert_eq!(config.server.portmap, None);
        let mount = &config.mounts[0];
        assert_eq!(mount.name(), "demo");
        let root = mount
            .plugin_config()
            .into_iter()
            .find(|(k, _)| k == "root")
            .unwrap()
            .1;
        assert_eq!(PathBuf::from(root), dir);
        assert!(dir.join("README.txt").is_file());
        let (uid, gid) = owner(&dir).unwrap();
        let squash = mount.squash();
        assert!(
            squash.all,
            "every demo client acts as the directory's owner"
        );
        assert_eq!((squash.anon_uid, squash.anon_gid), (uid, gid));
    }

    #[cfg(unix)]
    #[test]
    fn a_demo_directory_made_by_root_is_never_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let at = Addresses {
            listen: "127.0.0.1:0".parse().unwrap(),
            portmap: "off".into(),
        };
        let (_, dir) = prepare(Some(tmp.path().join("d")), &at).unwrap();
        let (uid, _) = owner(&dir).unwrap();
        if rustix::process::geteuid().is_root() {
            assert_ne!(uid, 0);
        } else {
            assert_eq!(uid, rustix::process::geteuid().as_raw());
        }
    }
}
