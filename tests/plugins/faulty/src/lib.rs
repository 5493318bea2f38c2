//! A read-only test plugin that misbehaves on demand, to show a bad plugin fails only its own
//! call. The root holds `hello.txt`; looking up `trap` panics (a wasm trap), `hang` loops
//! forever, `hog` allocates until the memory limit stops it, `grow-<MiB>` grows its linear
//! memory by that much without trapping (answering `no-space` when the host refuses), and
//! `spam` writes megabytes to the log capability and to stderr. `net` tries to connect to
//! 127.0.0.1 on the `probe_port` of its config and `escape` tries to read host files: both
//! must be refused by the sandbox, and answer `access` when they are. `http-<port>` sends an HTTP
//! GET to 127.0.0.1:<port> through the host's `http` capability with the secret `token` as bearer
//! (answering `access` when the host refuses), `http-anon-<port>` sends one without it,
//! `http-hdr-<header>-<port>` one that sets `<header>` itself (with the secret when the mount
//! grants it), and `http-big-<port>` one without it that answers `too-big` when the host refuses
//! the response body as too large. With `lie = "true"` in its config it declares that it can
//! create and write files but keeps nothing, and answers creates with directory attributes its
//! stat contradicts, which the conformance suite must catch.

use nfsgw_plugin_sdk::{
    Attrs, Backend, Capabilities, Data, Device, DirEntry, DirPage, Error, FileKind, FsStats, Made,
    MountInfo, ReadResult, Timestamp,
};

const HELLO: &[u8] = b"hello from a faulty plugin\n";

fn attrs(kind: FileKind, size: u64) -> Attrs {
    let t = Timestamp {
        seconds: 1_700_000_000,
        nanoseconds: 0,
    };
    Attrs {
        kind,
        size,
        mode: if kind == FileKind::Directory {
            0o555
        } else {
            0o444
        },
        uid: 0,
        gid: 0,
        nlink: 1,
        atime: t,
        mtime: t,
        ctime: t,
        rdev: Device { major: 0, minor: 0 },
        change: None,
    }
}

/// The port `net` probes, from the config.
static PROBE_PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// Tries what the sandbox must refuse; `Ok` means the sandbox let it through, and the error is
/// what to answer.
fn break_out(path: &str) -> Option<Result<(), (Error, String)>> {
    let refused = |why: String| (Error::Access, why);
    match path {
        "net" => {
            let port = *PROBE_PORT.get().unwrap_or(&9);
            Some(
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(drop)
                    .map_err(|e| refused(e.to_string())),
            )
        }
        _ if path.starts_with("http-") => Some(http_get(path)),
        "escape" => Some(
            ["/etc/passwd", "/etc/hostname", "../../../../etc/passwd"]
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .map(drop)
                .ok_or_else(|| refused("no host file readable".to_string())),
        ),
        _ => None,
    }
}

/// The HTTP probes (see the module's doc): a GET to 127.0.0.1:<port> through the host.
fn http_get(path: &str) -> Result<(), (Error, String)> {
    use nfsgw_plugin_sdk::{http, secrets};
    let refused = |why: String| (Error::Access, why);
    let probe = &path["http-".len()..];
    let (with_token, header, port) = if let Some(port) = probe.strip_prefix("anon-") {
        (false, None, port)
    } else if let Some(port) = probe.strip_prefix("big-") {
        (false, None, port)
    } else if let Some(rest) = probe.strip_prefix("hdr-") {
        let (name, port) = rest.rsplit_once('-').ok_or_else(|| refused(path.into()))?;
        (secrets::get("token").is_ok(), Some(name), port)
    } else {
        (true, None, probe)
    };
    let token = if with_token {
        Some(secrets::get("token").map_err(|e| refused(format!("no secret: {e:?}")))?)
    } else {
        None
    };
    let headers = header
        .map(|name| vec![(name.to_string(), "nfsgw-probe".to_string())])
        .unwrap_or_default();
    let request = http::Request {
        method: "GET".into(),
        url: format!("http://127.0.0.1:{port}/probe"),
        headers,
        body: vec![],
        timeout_ms: Some(5_000),
    };
    let response = match http::send(&request, token.as_ref()) {
        Ok(response) => response,
        Err(http::HttpError::TooLarge) => return Err((Error::TooBig, "too large".into())),
        Err(e) => return Err(refused(format!("{e:?}"))),
    };
    match response.status {
        200 => Ok(()),
        other => Err(refused(format!("status {other}"))),
    }
}

/// `grow-<MiB>`: grows the linear memory without trapping; `Err` when the host refuses.
fn grow(path: &str) -> Option<Result<(), Error>> {
    let mib: usize = path.strip_prefix("grow-")?.parse().ok()?;
    const PAGES_PER_MIB: usize = (1 << 20) / 65536;
    let grown = core::arch::wasm32::memory_grow(0, mib * PAGES_PER_MIB);
    Some(if grown == usize::MAX {
        Err(Error::NoSpace)
    } else {
        Ok(())
    })
}

/// `spam`: 8 MiB through the log capability and 8 MiB to stderr, in 4 KiB lines, then one
/// line of a megabyte on each.
fn spam() {
    use nfsgw_plugin_sdk::log::{log, Level};
    use std::io::Write;
    let line = "x".repeat(4096);
    let mut stderr = std::io::stderr();
    for i in 0..2048 {
        log(Level::Error, &format!("spam {i} {line}"));
        let _ = writeln!(stderr, "spam {i} {line}");
    }
    let huge = "y".repeat(1 << 20);
    log(Level::Error, &huge);
    let _ = writeln!(stderr, "{huge}");
}

fn misbehave(path: &str) {
    match path {
        "spam" => spam(),
        "trap" => panic!("asked to trap"),
        "hang" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "hog" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => {}
    }
}

struct Faulty;

impl Backend for Faulty {
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String> {
        let lie = config.iter().any(|(k, v)| k == "lie" && v == "true");
        if let Some((_, port)) = config.iter().find(|(k, _)| k == "probe_port") {
            let _ = PROBE_PORT.set(
                port.parse()
                    .map_err(|_| format!("probe_port: not a port: {port:?}"))?,
            );
        }
        let capabilities = if lie {
            Capabilities::CREATE | Capabilities::WRITE
        } else {
            Capabilities::empty()
        };
        Ok(MountInfo {
            capabilities,
            immutable: false,
            attr_ttl_ms: Some(0),
            max_instances: None,
            staged_writes: false,
            pinned_config: Vec::new(),
        })
    }

    fn stat(path: String) -> Result<Attrs, Error> {
        misbehave(&path);
        if let Some(outcome) = grow(&path) {
            return outcome.map(|()| attrs(FileKind::Regular, 0));
        }
        if let Some(outcome) = break_out(&path) {
            return match outcome {
                // The sandbox let it through: answer as if it were a file, for the test to see.
                Ok(()) => Ok(attrs(FileKind::Regular, 0)),
                Err((error, why)) => {
                    nfsgw_plugin_sdk::log::log(
                        nfsgw_plugin_sdk::log::Level::Info,
                        &format!("{path}: refused: {why}"),
                    );
                    Err(error)
                }
            };
        }
        match path.as_str() {
            "" => Ok(attrs(FileKind::Directory, 0)),
            "hello.txt" => Ok(attrs(FileKind::Regular, HELLO.len() as u64)),
            _ => Err(Error::NotFound),
        }
    }

    fn list_dir(path: String, _cursor: Option<String>, _limit: u32) -> Result<DirPage, Error> {
        if !path.is_empty() {
            return Err(Error::NotDir);
        }
        let entry = DirEntry {
            name: "hello.txt".into(),
            attrs: Some(attrs(FileKind::Regular, HELLO.len() as u64)),
        };
        Ok(DirPage {
            entries: vec![entry],
            next: None,
        })
    }

    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> {
        if path != "hello.txt" {
            return Err(Error::NotFound);
        }
        let start = (offset as usize).min(HELLO.len());
        let end = (start + len as usize).min(HELLO.len());
        Ok(ReadResult {
            data: Data::Bytes(HELLO[start..end].to_vec()),
            eof: end == HELLO.len(),
        })
    }

    /// Only reached when lying: claims success, keeps nothing.
    fn write(_: String, _: u64, data: Vec<u8>) -> Result<Attrs, Error> {
        Ok(attrs(FileKind::Regular, data.len() as u64))
    }
    /// Only reached when lying: claims success, keeps nothing, and answers a directory that
    /// grew, which its own stat never shows.
    fn create(_: String, _: u32, _: bool) -> Result<Made, Error> {
        Ok(Made {
            attrs: attrs(FileKind::Regular, 0),
            dir: Some(attrs(FileKind::Directory, 1)),
        })
    }
    /// Only reached when lying: nothing was kept, so nothing is made durable.
    fn sync(_: String) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn statfs() -> Result<FsStats, Error> {
        Err(Error::NotSupported)
    }
    // Every other change keeps the SDK's default: not supported, and never called.
}

nfsgw_plugin_sdk::export!(Faulty);
