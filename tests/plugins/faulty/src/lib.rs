//! A read-only test plugin that misbehaves on demand, to show a bad plugin fails only its own
//! call. The root holds `hello.txt`; looking up `trap` panics (a wasm trap), `hang` loops
//! forever, and `hog` allocates until the memory limit stops it. `net` tries to connect to
//! 127.0.0.1 on the `probe_port` of its config and `escape` tries to read host files: both
//! must be refused by the sandbox, and answer `access` when they are. `http-<port>` sends an HTTP
//! GET to 127.0.0.1:<port> through the host's `http` capability with the secret `token` as bearer
//! (answering `access` when the host refuses), and `http-anon-<port>` sends one without it. With
//! `lie = "true"` in its
//! config it declares that it can create and write files but keeps nothing, which the
//! conformance suite must catch.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::nfsgw::backend::backend::{
    Attrs, Device, Error, FsStats, Guest, MountInfo, ReadResult, SetAttrs,
};
use nfsgw::backend::staging::StagedFile;
use nfsgw::backend::types::{Capabilities, Data, DirEntry, DirPage, FileKind, Timestamp};

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

/// Tries what the sandbox must refuse; `Ok` means the sandbox let it through.
fn break_out(path: &str) -> Option<Result<(), String>> {
    match path {
        "net" => {
            let port = *PROBE_PORT.get().unwrap_or(&9);
            Some(
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(drop)
                    .map_err(|e| e.to_string()),
            )
        }
        _ if path.starts_with("http-") => Some(http_get(path)),
        "escape" => Some(
            ["/etc/passwd", "/etc/hostname", "../../../../etc/passwd"]
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .map(drop)
                .ok_or_else(|| "no host file readable".to_string()),
        ),
        _ => None,
    }
}

/// `http-<port>` or `http-anon-<port>`: a GET to 127.0.0.1:<port> through the host.
fn http_get(path: &str) -> Result<(), String> {
    use nfsgw::backend::{http, secrets};
    let (anonymous, port) = match path.strip_prefix("http-anon-") {
        Some(port) => (true, port),
        None => (false, &path["http-".len()..]),
    };
    let token = if anonymous {
        None
    } else {
        Some(secrets::get("token").map_err(|e| format!("no secret: {e:?}"))?)
    };
    let request = http::Request {
        method: "GET".into(),
        url: format!("http://127.0.0.1:{port}/probe"),
        headers: vec![],
        body: vec![],
        timeout_ms: Some(5_000),
    };
    let response = http::send(&request, token.as_ref()).map_err(|e| format!("{e:?}"))?;
    match response.status {
        200 => Ok(()),
        other => Err(format!("status {other}")),
    }
}

fn misbehave(path: &str) {
    match path {
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

impl Guest for Faulty {
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
        if let Some(outcome) = break_out(&path) {
            return match outcome {
                // The sandbox let it through: answer as if it were a file, for the test to see.
                Ok(()) => Ok(attrs(FileKind::Regular, 0)),
                Err(why) => {
                    nfsgw::backend::log::log(
                        nfsgw::backend::log::Level::Info,
                        &format!("{path}: refused: {why}"),
                    );
                    Err(Error::Access)
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
    /// Only reached when lying: claims success, keeps nothing.
    fn create(_: String, _: u32, _: bool) -> Result<Attrs, Error> {
        Ok(attrs(FileKind::Regular, 0))
    }
    fn mkdir(_: String, _: u32) -> Result<Attrs, Error> {
        Err(Error::ReadOnly)
    }
    fn remove(_: String) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn rmdir(_: String) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn rename(_: String, _: String) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn symlink(_: String, _: String) -> Result<Attrs, Error> {
        Err(Error::ReadOnly)
    }
    fn readlink(_: String) -> Result<String, Error> {
        Err(Error::Invalid)
    }
    fn link(_: String, _: String) -> Result<Attrs, Error> {
        Err(Error::ReadOnly)
    }
    fn mknod(_: String, _: FileKind, _: u32, _: Device) -> Result<Attrs, Error> {
        Err(Error::ReadOnly)
    }
    fn setattr(_: String, _: SetAttrs) -> Result<Attrs, Error> {
        Err(Error::ReadOnly)
    }
    fn sync(_: String) -> Result<(), Error> {
        Err(Error::ReadOnly)
    }
    fn statfs() -> Result<FsStats, Error> {
        Err(Error::NotSupported)
    }
    fn commit(_: String, _: &StagedFile) -> Result<Attrs, Error> {
        Err(Error::NotSupported)
    }
}

export!(Faulty);
