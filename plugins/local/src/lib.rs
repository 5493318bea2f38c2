//! The bundled `local` plugin: serves a directory of the host.
//!
//! The host grants the directory named by the mount's `root` key and hands the plugin the path
//! at which it is granted. Every operation maps to the host's confined file access (`host-fs`),
//! which keeps POSIX attributes WASI p2 lacks and answers each change with the attributes it
//! left the directory with; reads answer with a reference to the file range so the bytes never
//! cross the sandbox boundary.

use std::cell::RefCell;

use nfsgw_plugin_sdk::paths::under;
use nfsgw_plugin_sdk::{
    host_fs, Attrs, Backend, Capabilities, Data, Device, DirPage, Error, FileKind, FileRange,
    FsStats, Made, MountInfo, ReadResult, Renamed, SetAttrs,
};

/// How long the host may cache attributes and listings when the config does not say.
const DEFAULT_ATTR_TTL_MS: u32 = 1000;

thread_local! {
    /// The granted root as the plugin sees it, set by `init`.
    static ROOT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The path of a mount-relative path inside the granted root.
fn full(path: &str) -> String {
    ROOT.with(|root| under(&root.borrow(), path))
}

struct Local;

impl Backend for Local {
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String> {
        let mut root = None;
        let mut attr_ttl_ms = DEFAULT_ATTR_TTL_MS;
        for (key, value) in config {
            match key.as_str() {
                "root" => root = Some(value),
                "attr_ttl_ms" => {
                    attr_ttl_ms = value.parse().map_err(|_| {
                        format!("attr_ttl_ms: not a number of milliseconds: {value:?}")
                    })?
                }
                other => {
                    return Err(format!(
                        "unknown config key {other:?} (known: root, attr_ttl_ms)"
                    ))
                }
            }
        }
        let root = root.ok_or("missing config key \"root\": the directory to serve")?;
        let root = root.trim_end_matches('/').to_string();
        host_fs::stat(&root).map_err(|e| format!("root {root:?} is not reachable: {e:?}"))?;
        ROOT.with(|r| *r.borrow_mut() = root);
        Ok(MountInfo {
            capabilities: Capabilities::all(),
            immutable: false,
            attr_ttl_ms: Some(attr_ttl_ms),
            max_instances: None,
            staged_writes: false,
            pinned_config: Vec::new(),
        })
    }

    fn stat(path: String) -> Result<Attrs, Error> {
        host_fs::stat(&full(&path))
    }

    fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error> {
        host_fs::read_dir(&full(&path), cursor.as_deref(), limit)
    }

    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> {
        Ok(ReadResult {
            data: Data::HostFile(FileRange {
                path: full(&path),
                offset,
                len: len.into(),
            }),
            eof: false,
        })
    }

    fn write(path: String, offset: u64, data: Vec<u8>) -> Result<Attrs, Error> {
        host_fs::write(&full(&path), offset, &data)
    }

    fn create(path: String, mode: u32, exclusive: bool) -> Result<Made, Error> {
        host_fs::create(&full(&path), mode, exclusive)
    }

    fn mkdir(path: String, mode: u32) -> Result<Made, Error> {
        host_fs::mkdir(&full(&path), mode)
    }

    fn remove(path: String) -> Result<Option<Attrs>, Error> {
        host_fs::remove_file(&full(&path))
    }

    fn rmdir(path: String) -> Result<Option<Attrs>, Error> {
        host_fs::remove_dir(&full(&path))
    }

    fn rename(source: String, destination: String) -> Result<Renamed, Error> {
        host_fs::rename(&full(&source), &full(&destination))
    }

    fn symlink(path: String, target: String) -> Result<Made, Error> {
        host_fs::symlink(&full(&path), &target)
    }

    fn readlink(path: String) -> Result<String, Error> {
        host_fs::readlink(&full(&path))
    }

    fn link(existing: String, path: String) -> Result<Made, Error> {
        host_fs::link(&full(&existing), &full(&path))
    }

    fn mknod(path: String, kind: FileKind, mode: u32, device: Device) -> Result<Made, Error> {
        host_fs::mknod(&full(&path), kind, mode, device)
    }

    fn setattr(path: String, changes: SetAttrs) -> Result<Attrs, Error> {
        host_fs::setattr(&full(&path), changes)
    }

    fn sync(path: String) -> Result<(), Error> {
        host_fs::sync(&full(&path))
    }

    fn statfs() -> Result<FsStats, Error> {
        host_fs::statfs(&full(""))
    }
}

nfsgw_plugin_sdk::export!(Local);
