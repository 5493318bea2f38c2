//! nfsgw's bundled plugin for an S3-compatible bucket.
//!
//! It maps a bucket (or the prefix its mount grants) onto a file tree: a key "a/b/c" is file "c"
//! in directory "a/b"; directories are the common prefixes of delimiter listings and the
//! zero-byte "a/b/" marker objects S3 tools make for empty ones. The plugin decides what to ask;
//! the host does the requests through its `blobstore` capability (it holds the credentials), reads
//! ranges natively (`read` answers with a blob range), and stages writes, handing the whole file
//! to `commit` when it flushes. What S3 cannot store (modes, owners, links, special files) is not
//! declared, and the host refuses it. The semantics are written down in `docs/SEMANTICS-S3.md`.

use std::sync::OnceLock;

use nfsgw_plugin_sdk::attrs::{Ownership, EPOCH};
use nfsgw_plugin_sdk::blobstore::{self, ObjectMeta};
use nfsgw_plugin_sdk::config::number;
use nfsgw_plugin_sdk::paths::dir_prefix;
use nfsgw_plugin_sdk::staging::StagedFile;
use nfsgw_plugin_sdk::{
    fs_stats, mount_info, Attrs, Backend, BlobRange, Data, DirEntry, DirPage, Error, FileKind,
    FsStats, Made, MountInfo, ReadResult, Renamed,
};

/// How long the host may cache attributes and listings unless the config says otherwise: how
/// soon changes made by other clients of the bucket show.
const DEFAULT_TTL_MS: u32 = 1000;
/// Keys asked per listing request when the host's hint is larger (S3 returns at most 1000).
const LIST_PAGE: u32 = 1000;

/// What the mount's `[mount.config]` says.
struct Settings {
    owner: Ownership,
    ttl_ms: u32,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> &'static Settings {
    SETTINGS.get().expect("init runs before any other call")
}

fn parse_config(config: &[(String, String)]) -> Result<Settings, String> {
    let mut s = Settings {
        owner: Ownership::default(),
        ttl_ms: DEFAULT_TTL_MS,
    };
    for (key, value) in config {
        if s.owner.set(key, value)? {
            continue;
        }
        match key.as_str() {
            "attr_ttl_ms" => s.ttl_ms = number(key, value, 10)?,
            _ => {
                return Err(format!(
                    "unknown config key `{key}` (the s3 plugin knows: uid, gid, file_mode, \
                     dir_mode, attr_ttl_ms; the bucket is set in the mount's [mount.s3] table)"
                ))
            }
        }
    }
    // S3 keeps no set-user-id, set-group-id or sticky bits.
    s.owner.file_mode &= 0o777;
    s.owner.dir_mode &= 0o777;
    Ok(s)
}

fn file_attrs(meta: &ObjectMeta) -> Attrs {
    let change = meta
        .etag
        .clone()
        .or_else(|| Some(format!("{}-{}", meta.size, meta.modified.seconds)));
    settings().owner.file(meta.size, meta.modified, change)
}

/// A directory's attributes: its marker's time when it has one.
fn dir_attrs(marker: Option<&ObjectMeta>) -> Attrs {
    let time = marker.map_or(EPOCH, |m| m.modified);
    settings().owner.dir(time, None)
}

/// A directory's attributes if anything is under it (its marker included).
fn directory(path: &str) -> Result<Option<Attrs>, Error> {
    let prefix = dir_prefix(path);
    let page = blobstore::list(&prefix, false, None, 1)?;
    let marker = page.objects.iter().find(|o| o.key == prefix);
    if page.objects.is_empty() && page.prefixes.is_empty() {
        return Ok(None);
    }
    Ok(Some(dir_attrs(marker)))
}

/// What is at `path`: a file, a directory, or nothing.
fn lookup(path: &str) -> Result<Attrs, Error> {
    if path.is_empty() {
        return Ok(dir_attrs(None));
    }
    match blobstore::head(path) {
        Ok(meta) => Ok(file_attrs(&meta)),
        // Some servers (s3s-fs, which stores keys as files) fail a HEAD of a name that is
        // only a prefix instead of answering not-found: a listing settles it.
        Err(e @ (Error::NotFound | Error::Io)) => directory(path)?.ok_or(e),
        Err(e) => Err(e),
    }
}

/// Every key under a directory's prefix (its marker and sub-directories' markers included),
/// walked with delimiter listings so markers are told apart from files.
fn keys_under(prefix: &str, keys: &mut Vec<String>) -> Result<(), Error> {
    let mut cursor: Option<String> = None;
    loop {
        let page = blobstore::list(prefix, false, cursor.as_deref(), LIST_PAGE)?;
        keys.extend(page.objects.into_iter().map(|o| o.key));
        for sub in page.prefixes {
            keys_under(&sub, keys)?;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// True when nothing but its own marker is under a directory.
fn is_empty_dir(path: &str) -> Result<bool, Error> {
    let prefix = dir_prefix(path);
    let page = blobstore::list(&prefix, true, None, 2)?;
    Ok(page.objects.iter().all(|o| o.key == prefix))
}

struct S3;

impl Backend for S3 {
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String> {
        let parsed = parse_config(&config)?;
        let ttl = parsed.ttl_ms;
        let _ = SETTINGS.set(parsed);
        Ok(mount_info::whole_object_store(ttl))
    }

    fn stat(path: String) -> Result<Attrs, Error> {
        lookup(&path)
    }

    fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error> {
        let prefix = dir_prefix(&path);
        let first = cursor.is_none();
        let page = blobstore::list(&prefix, false, cursor.as_deref(), limit.clamp(1, LIST_PAGE))?;
        if first && !path.is_empty() && page.objects.is_empty() && page.prefixes.is_empty() {
            // Nothing under it: a file, or nothing at all.
            return Err(match blobstore::head(&path) {
                Ok(_) => Error::NotDir,
                Err(e) => e,
            });
        }
        let dirs: Vec<String> = page
            .prefixes
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix)?.strip_suffix('/'))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(str::to_string)
            .collect();
        let mut entries: Vec<DirEntry> = page
            .objects
            .iter()
            .filter_map(|o| {
                let name = o.key.strip_prefix(&prefix)?;
                // The directory's own marker, keys that are no file names, and files shadowed
                // by a directory of the same name are not listed.
                if name.is_empty() || name.contains('/') || dirs.iter().any(|d| d == name) {
                    return None;
                }
                Some(DirEntry {
                    name: name.to_string(),
                    attrs: Some(file_attrs(o)),
                })
            })
            .collect();
        entries.extend(dirs.into_iter().map(|name| DirEntry {
            name,
            attrs: Some(dir_attrs(None)),
        }));
        Ok(DirPage {
            entries,
            next: page.next,
        })
    }

    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> {
        // The host fetches the range itself and sees the end of the object.
        Ok(ReadResult {
            data: Data::Blob(BlobRange {
                key: path,
                offset,
                len: len.into(),
            }),
            eof: false,
        })
    }

    // A directory's attributes would cost another listing: the changes answer none.
    fn create(path: String, _mode: u32, exclusive: bool) -> Result<Made, Error> {
        if directory(&path)?.is_some() {
            return Err(if exclusive {
                Error::Exists
            } else {
                Error::IsDir
            });
        }
        if !exclusive {
            match lookup(&path) {
                Ok(attrs) => return Ok(Made::alone(attrs)),
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let meta = blobstore::put(&path, &[], exclusive)?;
        Ok(Made::alone(file_attrs(&meta)))
    }

    fn mkdir(path: String, _mode: u32) -> Result<Made, Error> {
        match lookup(&path) {
            Ok(_) => return Err(Error::Exists),
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
        let meta = blobstore::put(&format!("{path}/"), &[], true)?;
        Ok(Made::alone(dir_attrs(Some(&meta))))
    }

    fn remove(path: String) -> Result<Option<Attrs>, Error> {
        match lookup(&path)? {
            a if a.kind == FileKind::Directory => Err(Error::IsDir),
            _ => blobstore::delete(&path).map(|()| None),
        }
    }

    fn rmdir(path: String) -> Result<Option<Attrs>, Error> {
        match lookup(&path)? {
            a if a.kind != FileKind::Directory => Err(Error::NotDir),
            _ if !is_empty_dir(&path)? => Err(Error::NotEmpty),
            _ => blobstore::delete(&format!("{path}/")).map(|()| None),
        }
    }

    fn rename(source: String, destination: String) -> Result<Renamed, Error> {
        let from = lookup(&source)?;
        let to = match lookup(&destination) {
            Ok(a) => Some(a),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        if from.kind != FileKind::Directory {
            if to.is_some_and(|t| t.kind == FileKind::Directory) {
                return Err(Error::IsDir);
            }
            blobstore::copy(&source, &destination)?;
            blobstore::delete(&source)?;
            return Ok(Renamed::unknown());
        }
        match to {
            Some(t) if t.kind != FileKind::Directory => return Err(Error::NotDir),
            Some(_) if !is_empty_dir(&destination)? => return Err(Error::NotEmpty),
            Some(_) => blobstore::delete(&format!("{destination}/"))?,
            None => {}
        }
        // Every key is copied before any is deleted: a failure part way leaves both trees, never
        // a lost file. This is not atomic (see the semantics document).
        let (from_prefix, to_prefix) = (dir_prefix(&source), dir_prefix(&destination));
        let mut keys = Vec::new();
        keys_under(&from_prefix, &mut keys)?;
        if keys.is_empty() {
            return Err(Error::NotFound);
        }
        for key in &keys {
            let tail = &key[from_prefix.len()..];
            blobstore::copy(key, &format!("{to_prefix}{tail}"))?;
        }
        if !keys.contains(&from_prefix) {
            // An implicit directory moved: keep the destination even if it ends up empty.
            blobstore::put(&to_prefix, &[], false)?;
        }
        for key in &keys {
            blobstore::delete(key)?;
        }
        Ok(Renamed::unknown())
    }

    fn statfs() -> Result<FsStats, Error> {
        Ok(fs_stats::boundless(true)) // a bucket has no fixed size
    }

    fn commit(path: String, staged: &StagedFile) -> Result<Attrs, Error> {
        let meta = blobstore::upload(&path, staged)?;
        Ok(file_attrs(&meta))
    }
}

nfsgw_plugin_sdk::export!(S3);
