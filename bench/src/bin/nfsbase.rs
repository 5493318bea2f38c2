//! nfsbase: the benchmark's native baseline, a read-only NFSv3 server over a host directory
//! built on the `nfsserve` crate, with no WebAssembly and no caches of its own.
//!
//! It answers what the benchmark asks (LOOKUP, GETATTR, READ, READDIR(PLUS), READLINK) the
//! plain way: file ids are handed out per path as paths are seen, every GETATTR is an
//! `lstat`, every READ opens the file and reads the range on a blocking thread, and a listing
//! page reads the directory, sorts it by name and stats the entries of that page. Changes are
//! refused with ROFS. It shows what nfsgw's plugin layer costs against a server with none.
//!
//! `nfsbase DIR ADDR` serves DIR as the export "/" on ADDR (NFS and MOUNT on one TCP port).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use async_trait::async_trait;
use nfsserve::nfs::{
    fattr3, fileid3, filename3, ftype3, nfspath3, nfsstat3, nfsstring, nfstime3, sattr3, specdata3,
};
use nfsserve::tcp::{NFSTcp, NFSTcpListener};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};

const ROOT: fileid3 = 1;

/// Paths by file id (id - 1 is the index) and back.
#[derive(Default)]
struct Ids {
    paths: Vec<PathBuf>,
    by_path: HashMap<PathBuf, fileid3>,
}

struct HostDir {
    ids: RwLock<Ids>,
}

impl HostDir {
    fn new(root: PathBuf) -> HostDir {
        let mut ids = Ids::default();
        ids.by_path.insert(root.clone(), ROOT);
        ids.paths.push(root);
        HostDir {
            ids: RwLock::new(ids),
        }
    }

    fn path(&self, id: fileid3) -> Result<PathBuf, nfsstat3> {
        let ids = self.ids.read().unwrap();
        id.checked_sub(1)
            .and_then(|i| ids.paths.get(i as usize))
            .cloned()
            .ok_or(nfsstat3::NFS3ERR_STALE)
    }

    fn id(&self, path: &Path) -> fileid3 {
        if let Some(&id) = self.ids.read().unwrap().by_path.get(path) {
            return id;
        }
        let mut ids = self.ids.write().unwrap();
        if let Some(&id) = ids.by_path.get(path) {
            return id;
        }
        ids.paths.push(path.to_path_buf());
        let id = ids.paths.len() as fileid3;
        ids.by_path.insert(path.to_path_buf(), id);
        id
    }
}

fn io_status(e: std::io::Error) -> nfsstat3 {
    match e.kind() {
        std::io::ErrorKind::NotFound => nfsstat3::NFS3ERR_NOENT,
        std::io::ErrorKind::PermissionDenied => nfsstat3::NFS3ERR_ACCES,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

fn time(seconds: i64, nanos: i64) -> nfstime3 {
    nfstime3 {
        seconds: seconds as u32,
        nseconds: nanos as u32,
    }
}

fn attrs(id: fileid3, m: &std::fs::Metadata) -> fattr3 {
    let ft = m.file_type();
    let ftype = if ft.is_dir() {
        ftype3::NF3DIR
    } else if ft.is_symlink() {
        ftype3::NF3LNK
    } else {
        ftype3::NF3REG
    };
    fattr3 {
        ftype,
        mode: m.mode() & 0o7777,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        used: m.blocks() * 512,
        rdev: specdata3::default(),
        fsid: 1,
        fileid: id,
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
    }
}

fn name_of(name: &filename3) -> Result<&str, nfsstat3> {
    std::str::from_utf8(&name.0).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

/// Runs blocking file-system work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, nfsstat3> + Send + 'static,
) -> Result<T, nfsstat3> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| nfsstat3::NFS3ERR_IO)?
}

#[async_trait]
impl NFSFileSystem for HostDir {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadOnly
    }

    fn root_dir(&self) -> fileid3 {
        ROOT
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let dir = self.path(dirid)?;
        let path = match name_of(filename)? {
            "." => return Ok(dirid),
            ".." if dirid == ROOT => return Ok(ROOT),
            ".." => dir.parent().ok_or(nfsstat3::NFS3ERR_NOENT)?.to_path_buf(),
            name if name.contains('/') => return Err(nfsstat3::NFS3ERR_INVAL),
            name => dir.join(name),
        };
        std::fs::symlink_metadata(&path).map_err(io_status)?;
        Ok(self.id(&path))
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        let meta = std::fs::symlink_metadata(self.path(id)?).map_err(io_status)?;
        Ok(attrs(id, &meta))
    }

    async fn setattr(&self, _id: fileid3, _setattr: sattr3) -> Result<fattr3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn read(
        &self,
        id: fileid3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let path = self.path(id)?;
        blocking(move || {
            let file = std::fs::File::open(path).map_err(io_status)?;
            let size = file.metadata().map_err(io_status)?.len();
            let want = (count as u64).min(size.saturating_sub(offset)) as usize;
            let mut buf = vec![0; want];
            let mut done = 0;
            while done < want {
                match file.read_at(&mut buf[done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_status(e)),
                }
            }
            buf.truncate(done);
            Ok((buf, offset + done as u64 >= size))
        })
        .await
    }

    async fn write(&self, _id: fileid3, _offset: u64, _data: &[u8]) -> Result<fattr3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn create(
        &self,
        _dirid: fileid3,
        _filename: &filename3,
        _attr: sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn create_exclusive(
        &self,
        _dirid: fileid3,
        _filename: &filename3,
    ) -> Result<fileid3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn mkdir(
        &self,
        _dirid: fileid3,
        _dirname: &filename3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn remove(&self, _dirid: fileid3, _filename: &filename3) -> Result<(), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn rename(
        &self,
        _from_dirid: fileid3,
        _from_filename: &filename3,
        _to_dirid: fileid3,
        _to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    /// Entries sorted by name, after the entry whose id is `start_after` (0: from the start).
    async fn readdir(
        &self,
        dirid: fileid3,
        start_after: fileid3,
        max_entries: usize,
    ) -> Result<ReadDirResult, nfsstat3> {
        let dir = self.path(dirid)?;
        let after = match start_after {
            0 => None,
            id => Some(self.path(id)?),
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_status)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        let start = match after.as_ref().and_then(|p| p.file_name()) {
            None => 0,
            Some(name) => match names.binary_search_by(|n| n.as_os_str().cmp(name)) {
                Ok(i) => i + 1,
                Err(_) => return Err(nfsstat3::NFS3ERR_BAD_COOKIE),
            },
        };
        let end = (start + max_entries).min(names.len());
        let mut entries = Vec::with_capacity(end - start);
        for name in &names[start..end] {
            let path = dir.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let id = self.id(&path);
            entries.push(DirEntry {
                fileid: id,
                name: nfsstring(name.as_encoded_bytes().to_vec()),
                attr: attrs(id, &meta),
            });
        }
        Ok(ReadDirResult {
            entries,
            end: end == names.len(),
        })
    }

    async fn symlink(
        &self,
        _dirid: fileid3,
        _linkname: &filename3,
        _symlink: &nfspath3,
        _attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }

    async fn readlink(&self, id: fileid3) -> Result<nfspath3, nfsstat3> {
        let target = std::fs::read_link(self.path(id)?).map_err(io_status)?;
        Ok(nfsstring(target.into_os_string().into_encoded_bytes()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, addr] = &args[..] else {
        anyhow::bail!("usage: nfsbase DIR ADDR (e.g. nfsbase /srv/data 127.0.0.1:20700)");
    };
    let root = std::fs::canonicalize(dir)?;
    let listener = NFSTcpListener::bind(addr, HostDir::new(root.clone())).await?;
    println!(
        "nfsbase: serving {} on {}:{}",
        root.display(),
        listener.get_listen_ip(),
        listener.get_listen_port()
    );
    listener.handle_forever().await?;
    Ok(())
}
