//! The operating system's mount commands for an nfsgw export: the lines nfsgw prints at
//! startup, and `nfsgw mount` / `nfsgw umount`, which print them and run them.
//!
//! Building a command is a pure function of the OS, the server, the names and where file locks
//! go, so every OS's command is tested on any OS. Running one is `run`'s job.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The OS whose NFS client a command is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    Linux,
    Mac,
    Windows,
}

impl Os {
    /// The OS nfsgw was built for (other Unixes get Linux's command).
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::Mac
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// Where an nfsgw serves: a host name or address, and its NFS + MOUNT port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// "HOST:PORT", "[v6]:PORT".
    pub fn parse(text: &str) -> Result<Target> {
        let (host, port) = text
            .rsplit_once(':')
            .with_context(|| format!("--server {text:?}: expected HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("--server {text:?}: the port must be 1-65535"))?;
        if host.is_empty() {
            bail!("--server {text:?}: the host is missing");
        }
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }

    /// The address a server listens on, as clients reach it: a wildcard address becomes
    /// loopback.
    pub fn of_listener(addr: SocketAddr) -> Target {
        let ip = match addr.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        Target {
            host: ip.to_string(),
            port: addr.port(),
        }
    }

    /// The host as it goes before ":/export" (IPv6 addresses in brackets).
    fn host_for_path(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Where a client keeps the file locks its programs take on a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locks {
    /// nfsgw holds them (NLM), so they hold between clients.
    Served,
    /// The client keeps them to itself (`nolock`).
    Local,
}

impl Locks {
    /// Served when the mount serves locks (`locks = true`) and clients can find nfsgw's lock
    /// manager: kernel clients ask the portmapper on port 111 for it, and can be told no
    /// other port.
    pub fn of(mount_serves_locks: bool, portmap: Option<SocketAddr>) -> Locks {
        if mount_serves_locks && portmap.is_some_and(|at| at.port() == 111) {
            Locks::Served
        } else {
            Locks::Local
        }
    }
}

/// The mount command (program and arguments) that mounts export `/<mount>` of `server` at
/// `at` (a directory, or a drive such as `Z:` on Windows), with its file locks kept where
/// `locks` says.
pub fn mount_argv(os: Os, server: &Target, mount: &str, at: &str, locks: Locks) -> Vec<String> {
    let port = server.port;
    let local = locks == Locks::Local;
    let linux_nolock = if local { "nolock," } else { "" };
    let mac_nolocks = if local { "nolocks,locallocks," } else { "" };
    let windows_nolock = linux_nolock;
    let mut argv: Vec<String> = match os {
        Os::Linux => vec![
            "mount".into(),
            "-t".into(),
            "nfs".into(),
            "-o".into(),
            format!(
                "vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,{linux_nolock}\
                 rsize=1048576,wsize=1048576"
            ),
            format!("{}:/{mount}", server.host_for_path()),
        ],
        Os::Mac => vec![
            "mount_nfs".into(),
            "-o".into(),
            format!(
                "vers=3,tcp,port={port},mountport={port},{mac_nolocks}\
                 rsize=1048576,wsize=1048576"
            ),
            format!("{}:/{mount}", server.host_for_path()),
        ],
        // mount.exe takes no port: it always asks the portmapper on port 111. Its options: as
        // the anonymous user, soft (a stopped nfsgw fails calls instead of hanging Explorer),
        // new files rw-r--r-- (fileaccess, three octal digits), case-sensitive lookups (the
        // option takes no value), 32 KiB transfers (rsize and wsize are in KiB, 1 to 32, and
        // 32 is its default and its largest).
        Os::Windows => vec![
            "mount.exe".into(),
            "-o".into(),
            format!(
                "anon,{windows_nolock}mtype=soft,fileaccess=644,casesensitive,rsize=32,wsize=32"
            ),
            format!("\\\\{}\\{mount}", server.host),
        ],
    };
    argv.push(at.to_string());
    argv
}

/// The command that unmounts `at`.
pub fn umount_argv(os: Os, at: &str) -> Vec<String> {
    let program = match os {
        Os::Linux | Os::Mac => "umount",
        Os::Windows => "umount.exe",
    };
    vec![program.into(), at.into()]
}

/// A command line as the OS's shell takes it: arguments quoted where they need it.
pub fn command_line(os: Os, argv: &[String]) -> String {
    argv.iter()
        .map(|a| quote(os, a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(os: Os, arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:,=@%+[]~".contains(c);
    match os {
        _ if !arg.is_empty() && arg.chars().all(plain) => arg.to_string(),
        Os::Windows if !arg.contains([' ', '"', '\t', '&', '|', '<', '>', '^']) => arg.to_string(),
        Os::Windows => format!("\"{}\"", arg.replace('"', "\"\"")),
        Os::Linux | Os::Mac => format!("'{}'", arg.replace('\'', "'\\''")),
    }
}

/// The Linux line nfsgw prints at startup: make /mnt/<mount> and mount it there.
pub fn linux_mount_line(addr: SocketAddr, mount: &str, locks: Locks) -> String {
    let at = format!("/mnt/{mount}");
    let argv = mount_argv(Os::Linux, &Target::of_listener(addr), mount, &at, locks);
    format!(
        "sudo mkdir -p {at} && sudo {}",
        command_line(Os::Linux, &argv)
    )
}

/// The macOS line nfsgw prints at startup: make ~/nfsgw/<mount> and mount it there.
pub fn macos_mount_line(addr: SocketAddr, mount: &str, locks: Locks) -> String {
    let at = format!("~/nfsgw/{mount}");
    let argv = mount_argv(Os::Mac, &Target::of_listener(addr), mount, &at, locks);
    format!("mkdir -p {at} && sudo {}", command_line(Os::Mac, &argv))
}

/// The Windows line nfsgw prints at startup (it works only with the portmapper on port 111).
pub fn windows_mount_line(addr: SocketAddr, mount: &str, locks: Locks) -> String {
    let argv = mount_argv(Os::Windows, &Target::of_listener(addr), mount, "Z:", locks);
    command_line(Os::Windows, &argv)
}

/// Whether `at` names a Windows drive for mount.exe: `Z:`, or `*` for the next free one.
fn is_drive(at: &str) -> bool {
    let b = at.as_bytes();
    at == "*" || (b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// What `nfsgw mount` and `nfsgw umount` do with a built command.
pub struct Run {
    pub os: Os,
    /// Print the command only.
    pub dry_run: bool,
}

impl Run {
    /// Prints and runs (unless a dry run) the command that mounts `/<mount>` of `server` at `at`.
    pub fn mount(&self, server: &Target, mount: &str, at: &str, locks: Locks) -> Result<()> {
        let mount = mount.trim_start_matches('/');
        if mount.is_empty() || mount.contains(['/', '\\']) {
            bail!("{mount:?}: give one mount name from the config, such as `data`");
        }
        if self.os == Os::Windows {
            if !is_drive(at) {
                bail!("{at:?}: on Windows, mount on a drive letter such as Z: (or * for any)");
            }
        } else if !std::path::Path::new(at).is_dir() {
            if self.dry_run {
                println!("# {at} does not exist yet (without --dry-run, nfsgw creates it)");
            } else {
                std::fs::create_dir_all(at).with_context(|| {
                    format!(
                        "cannot create the mount point {at}: create it first (sudo mkdir -p {at})"
                    )
                })?;
                println!("nfsgw: created {at}");
            }
        }
        self.execute(mount_argv(self.os, server, mount, at, locks))
    }

    /// Prints and runs (unless a dry run) the command that unmounts `at`.
    pub fn umount(&self, at: &str) -> Result<()> {
        self.execute(umount_argv(self.os, at))
    }

    fn execute(&self, mut argv: Vec<String>) -> Result<()> {
        if self.os != Os::Windows && !is_root() {
            argv.insert(0, "sudo".into());
        }
        println!("{}", command_line(self.os, &argv));
        if self.dry_run {
            return Ok(());
        }
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .with_context(|| {
                let hint = if self.os == Os::Windows {
                    " (is Client for NFS installed? \"Turn Windows features on or off\" → \
                     Services for NFS)"
                } else {
                    ""
                };
                format!("cannot run {}{hint}", argv[0])
            })?;
        if !status.success() {
            bail!("{} failed ({status})", argv[0]);
        }
        Ok(())
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Target {
        Target::parse("127.0.0.1:20490").unwrap()
    }

    #[test]
    fn linux_command() {
        let argv = mount_argv(Os::Linux, &server(), "data", "/mnt/data", Locks::Served);
        assert_eq!(
            command_line(Os::Linux, &argv),
            "mount -t nfs -o vers=3,proto=tcp,port=20490,mountport=20490,mountproto=tcp,\
             rsize=1048576,wsize=1048576 127.0.0.1:/data /mnt/data"
        );
        let argv = mount_argv(Os::Linux, &server(), "data", "/mnt/data", Locks::Local);
        assert_eq!(
            command_line(Os::Linux, &argv),
            "mount -t nfs -o vers=3,proto=tcp,port=20490,mountport=20490,mountproto=tcp,nolock,\
             rsize=1048576,wsize=1048576 127.0.0.1:/data /mnt/data"
        );
        assert_eq!(umount_argv(Os::Linux, "/mnt/data"), ["umount", "/mnt/data"]);
    }

    #[test]
    fn macos_command() {
        let at = "/Users/me/nfsgw/models";
        let argv = mount_argv(Os::Mac, &server(), "models", at, Locks::Served);
        assert_eq!(
            command_line(Os::Mac, &argv),
            "mount_nfs -o vers=3,tcp,port=20490,mountport=20490,\
             rsize=1048576,wsize=1048576 127.0.0.1:/models /Users/me/nfsgw/models"
        );
        let argv = mount_argv(Os::Mac, &server(), "models", at, Locks::Local);
        assert_eq!(
            command_line(Os::Mac, &argv),
            "mount_nfs -o vers=3,tcp,port=20490,mountport=20490,nolocks,locallocks,\
             rsize=1048576,wsize=1048576 127.0.0.1:/models /Users/me/nfsgw/models"
        );
        assert_eq!(umount_argv(Os::Mac, "/x"), ["umount", "/x"]);
    }

    #[test]
    fn windows_command() {
        let argv = mount_argv(Os::Windows, &server(), "data", "Z:", Locks::Served);
        assert_eq!(
            argv[2],
            "anon,mtype=soft,fileaccess=644,casesensitive,rsize=32,wsize=32"
        );
        let argv = mount_argv(Os::Windows, &server(), "data", "Z:", Locks::Local);
        assert_eq!(
            argv,
            [
                "mount.exe",
                "-o",
                "anon,nolock,mtype=soft,fileaccess=644,casesensitive,rsize=32,wsize=32",
                r"\\127.0.0.1\data",
                "Z:"
            ]
        );
        assert_eq!(
            command_line(Os::Windows, &argv),
            r"mount.exe -o anon,nolock,mtype=soft,fileaccess=644,casesensitive,rsize=32,wsize=32 \\127.0.0.1\data Z:"
        );
        assert_eq!(umount_argv(Os::Windows, "Z:"), ["umount.exe", "Z:"]);
        assert!(is_drive("z:") && is_drive("*") && !is_drive("/mnt") && !is_drive("ZZ:"));
    }

    #[test]
    fn awkward_paths_are_quoted_and_v6_hosts_bracketed() {
        let v6 = Target::parse("[::1]:2049").unwrap();
        assert_eq!(v6.host, "::1");
        let argv = mount_argv(Os::Linux, &v6, "data", "/mnt/my data", Locks::Served);
        assert_eq!(
            command_line(Os::Linux, &argv[5..]),
            "[::1]:/data '/mnt/my data'"
        );
        assert_eq!(
            command_line(Os::Windows, &["C:\\a b".to_string()]),
            "\"C:\\a b\""
        );
        assert_eq!(command_line(Os::Linux, &["it's".into()]), r"'it'\''s'");
    }

    #[test]
    fn targets_parse_and_wildcards_become_loopback() {
        assert_eq!(
            Target::parse("nas.local:20490").unwrap(),
            Target {
                host: "nas.local".into(),
                port: 20490
            }
        );
        for bad in ["nas.local", ":20490", "h:0", "h:x"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let t = Target::of_listener("0.0.0.0:20490".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1");
    }

    #[test]
    fn startup_lines_carry_the_port_and_options() {
        let addr: SocketAddr = "127.0.0.1:20490".parse().unwrap();
        let linux = linux_mount_line(addr, "data", Locks::Served);
        assert!(linux.starts_with("sudo mkdir -p /mnt/data && sudo mount -t nfs -o vers=3,"));
        assert!(
            linux.contains("port=20490,mountport=20490")
                && linux.ends_with("127.0.0.1:/data /mnt/data")
        );
        assert!(!linux.contains("nolock"));
        assert!(linux_mount_line(addr, "data", Locks::Local).contains(",nolock,"));
        let mac = macos_mount_line(addr, "data", Locks::Served);
        assert!(!mac.contains("locallocks") && mac.contains("127.0.0.1:/data ~/nfsgw/data"));
        assert!(macos_mount_line(addr, "data", Locks::Local).contains(",nolocks,locallocks,"));
        let win = windows_mount_line(addr, "data", Locks::Served);
        assert!(win.ends_with(r"\\127.0.0.1\data Z:") && !win.contains("nolock"));
        assert!(windows_mount_line(addr, "data", Locks::Local).contains("anon,nolock,"));
    }

    #[test]
    fn locks_are_served_only_where_clients_can_find_the_lock_manager() {
        let on_111 = Some("0.0.0.0:111".parse().unwrap());
        assert_eq!(Locks::of(true, on_111), Locks::Served);
        assert_eq!(Locks::of(false, on_111), Locks::Local);
        assert_eq!(
            Locks::of(true, Some("127.0.0.1:10111".parse().unwrap())),
            Locks::Local
        );
        assert_eq!(Locks::of(true, None), Locks::Local);
    }

    #[test]
    fn dry_runs_check_their_arguments() {
        let run = Run {
            os: Os::Windows,
            dry_run: true,
        };
        let served = Locks::Served;
        assert!(run.mount(&server(), "data", "/mnt/data", served).is_err());
        assert!(run.mount(&server(), "a/b", "Z:", served).is_err());
        assert!(run.mount(&server(), "/data", "Z:", served).is_ok());
    }
}
