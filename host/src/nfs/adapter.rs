//! The thin adapter between nfsserve's `NFSFileSystem` trait and the gateway core.
//!
//! It converts names, attributes and errors between the wire types and the core's, and sets
//! what nfsserve asks the file system for: file handles (the gateway's stable ones) and the
//! transfer sizes advertised in FSINFO.

use std::sync::Arc;

use async_trait::async_trait;
use nfsserve::nfs::{
    fattr3, fileid3, filename3, fsinfo3, ftype3, nfs_fh3, nfspath3, nfsstat3, nfstime3,
    post_op_attr, sattr3, set_atime, set_gid3, set_mode3, set_mtime, set_size3, set_uid3,
    specdata3, FSF_CANSETTIME, FSF_HOMOGENEOUS, FSF_SYMLINK,
};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};

use crate::gateway::handles::EXPORT_ROOT;
use crate::gateway::Gateway;
use crate::plugin::bindings::types::{Attrs, Error, FileKind, SetAttrs, SetTime, Timestamp};

/// Preferred and largest READ/WRITE size: 1 MiB (clients pick rsize/wsize from these).
const TRANSFER_SIZE: u32 = 1 << 20;
/// One file-system id for the whole export: mounts are directories, not separate file systems.
const FSID: u64 = 0x6e66_7367_7700;
/// Mode of files created exclusively (the client sets the real mode right after).
const EXCLUSIVE_CREATE_MODE: u32 = 0o600;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

pub struct NfsAdapter {
    gateway: Arc<Gateway>,
}

impl NfsAdapter {
    pub fn new(gateway: Arc<Gateway>) -> NfsAdapter {
        NfsAdapter { gateway }
    }
}

fn status(e: Error) -> nfsstat3 {
    match e {
        Error::NotFound => nfsstat3::NFS3ERR_NOENT,
        Error::Exists => nfsstat3::NFS3ERR_EXIST,
        Error::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        Error::IsDir => nfsstat3::NFS3ERR_ISDIR,
        Error::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        Error::Access => nfsstat3::NFS3ERR_ACCES,
        Error::NotOwner => nfsstat3::NFS3ERR_PERM,
        Error::ReadOnly => nfsstat3::NFS3ERR_ROFS,
        Error::NameTooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        Error::NoSpace => nfsstat3::NFS3ERR_NOSPC,
        Error::Quota => nfsstat3::NFS3ERR_DQUOT,
        Error::TooBig => nfsstat3::NFS3ERR_FBIG,
        Error::Invalid => nfsstat3::NFS3ERR_INVAL,
        Error::NotSupported => nfsstat3::NFS3ERR_NOTSUPP,
        Error::CrossDevice => nfsstat3::NFS3ERR_XDEV,
        Error::TooManyLinks => nfsstat3::NFS3ERR_MLINK,
        Error::Stale => nfsstat3::NFS3ERR_STALE,
        Error::Busy => nfsstat3::NFS3ERR_JUKEBOX,
        Error::Io => nfsstat3::NFS3ERR_IO,
    }
}

/// Names cross into plugins as UTF-8; other bytes are a name the backend cannot store.
fn name(raw: &filename3) -> Result<&str, nfsstat3> {
    std::str::from_utf8(raw).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

fn nfs_time(t: Timestamp) -> nfstime3 {
    nfstime3 {
        seconds: t.seconds.clamp(0, u32::MAX.into()) as u32,
        nseconds: t.nanoseconds,
    }
}

fn fattr(id: fileid3, a: &Attrs) -> fattr3 {
    let ftype = match a.kind {
        FileKind::Regular => ftype3::NF3REG,
        FileKind::Directory => ftype3::NF3DIR,
        FileKind::Symlink => ftype3::NF3LNK,
        FileKind::Fifo => ftype3::NF3FIFO,
        FileKind::Socket => ftype3::NF3SOCK,
        FileKind::BlockDevice => ftype3::NF3BLK,
        FileKind::CharDevice => ftype3::NF3CHR,
    };
    fattr3 {
        ftype,
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size.div_ceil(4096) * 4096,
        rdev: specdata3::default(),
        fsid: FSID,
        fileid: id,
        atime: nfs_time(a.atime),
        mtime: nfs_time(a.mtime),
        ctime: nfs_time(a.ctime),
    }
}

fn set_time(t: &nfstime3) -> SetTime {
    SetTime::At(Timestamp {
        seconds: t.seconds.into(),
        nanoseconds: t.nseconds,
    })
}

fn changes(s: &sattr3) -> SetAttrs {
    SetAttrs {
        mode: match s.mode {
            set_mode3::mode(m) => Some(m),
            set_mode3::Void => None,
        },
        uid: match s.uid {
            set_uid3::uid(u) => Some(u),
            set_uid3::Void => None,
        },
        gid: match s.gid {
            set_gid3::gid(g) => Some(g),
            set_gid3::Void => None,
        },
        size: match s.size {
            set_size3::size(n) => Some(n),
            set_size3::Void => None,
        },
        atime: match &s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_atime::SET_TO_CLIENT_TIME(t) => Some(set_time(t)),
        },
        mtime: match &s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_mtime::SET_TO_CLIENT_TIME(t) => Some(set_time(t)),
        },
    }
}

#[async_trait]
impl NFSFileSystem for NfsAdapter {
    fn capabilities(&self) -> VFSCapabilities {
        // Read-only mounts answer ROFS per mount, in the gateway.
        VFSCapabilities::ReadWrite
    }

    fn root_dir(&self) -> fileid3 {
        EXPORT_ROOT
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let name = name(filename).map_err(|_| nfsstat3::NFS3ERR_NOENT)?;
        self.gateway.lookup(dirid, name).await.map_err(status)
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        let attrs = self.gateway.getattr(id).await.map_err(status)?;
        Ok(fattr(id, &attrs))
    }

    async fn setattr(&self, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let attrs = self
            .gateway
            .setattr(id, changes(&setattr))
            .await
            .map_err(status)?;
        Ok(fattr(id, &attrs))
    }

    async fn read(
        &self,
        id: fileid3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        self.gateway
            .read(id, offset, count.min(TRANSFER_SIZE))
            .await
            .map_err(status)
    }

    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        let attrs = self
            .gateway
            .write(id, offset, data.to_vec())
            .await
            .map_err(status)?;
        Ok(fattr(id, &attrs))
    }

    async fn create(
        &self,
        dirid: fileid3,
        filename: &filename3,
        attr: sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let mut wanted = changes(&attr);
        let mode = wanted.mode.take().unwrap_or(DEFAULT_FILE_MODE);
        let (id, mut attrs) = self
            .gateway
            .create(dirid, name(filename)?, mode, false)
            .await
            .map_err(status)?;
        // The mode went with the create; size, owner and times follow as one SETATTR.
        if wanted.size.is_some()
            || wanted.uid.is_some()
            || wanted.gid.is_some()
            || wanted.atime.is_some()
            || wanted.mtime.is_some()
        {
            attrs = self.gateway.setattr(id, wanted).await.map_err(status)?;
        }
        Ok((id, fattr(id, &attrs)))
    }

    async fn create_exclusive(
        &self,
        dirid: fileid3,
        filename: &filename3,
    ) -> Result<fileid3, nfsstat3> {
        let (id, _) = self
            .gateway
            .create(dirid, name(filename)?, EXCLUSIVE_CREATE_MODE, true)
            .await
            .map_err(status)?;
        Ok(id)
    }

    async fn mkdir(
        &self,
        dirid: fileid3,
        dirname: &filename3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let (id, attrs) = self
            .gateway
            .mkdir(dirid, name(dirname)?, DEFAULT_DIR_MODE)
            .await
            .map_err(status)?;
        Ok((id, fattr(id, &attrs)))
    }

    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        self.gateway
            .remove(dirid, name(filename)?)
            .await
            .map_err(status)
    }

    async fn rename(
        &self,
        from_dirid: fileid3,
        from_filename: &filename3,
        to_dirid: fileid3,
        to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        self.gateway
            .rename(
                from_dirid,
                name(from_filename)?,
                to_dirid,
                name(to_filename)?,
            )
            .await
            .map_err(status)
    }

    async fn readdir(
        &self,
        dirid: fileid3,
        start_after: fileid3,
        max_entries: usize,
    ) -> Result<ReadDirResult, nfsstat3> {
        let page = self
            .gateway
            .readdir(dirid, start_after, max_entries)
            .await
            .map_err(status)?
            .ok_or(nfsstat3::NFS3ERR_BAD_COOKIE)?;
        let entries = page
            .entries
            .into_iter()
            .map(|(id, name, attrs)| DirEntry {
                fileid: id,
                name: name.into_bytes().into(),
                attr: fattr(id, &attrs),
            })
            .collect();
        Ok(ReadDirResult {
            entries,
            end: page.end,
        })
    }

    async fn symlink(
        &self,
        dirid: fileid3,
        linkname: &filename3,
        symlink: &nfspath3,
        _attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let target = std::str::from_utf8(symlink).map_err(|_| nfsstat3::NFS3ERR_INVAL)?;
        let (id, attrs) = self
            .gateway
            .symlink(dirid, name(linkname)?, target)
            .await
            .map_err(status)?;
        Ok((id, fattr(id, &attrs)))
    }

    async fn readlink(&self, id: fileid3) -> Result<nfspath3, nfsstat3> {
        let target = self.gateway.readlink(id).await.map_err(status)?;
        Ok(target.into_bytes().into())
    }

    async fn fsinfo(&self, root_fileid: fileid3) -> Result<fsinfo3, nfsstat3> {
        let obj_attributes = match self.gateway.getattr(root_fileid).await {
            Ok(a) => post_op_attr::attributes(fattr(root_fileid, &a)),
            Err(_) => post_op_attr::Void,
        };
        Ok(fsinfo3 {
            obj_attributes,
            rtmax: TRANSFER_SIZE,
            rtpref: TRANSFER_SIZE,
            rtmult: 4096,
            wtmax: TRANSFER_SIZE,
            wtpref: TRANSFER_SIZE,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: u64::MAX >> 1,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF_SYMLINK | FSF_HOMOGENEOUS | FSF_CANSETTIME,
        })
    }

    fn id_to_fh(&self, id: fileid3) -> nfs_fh3 {
        nfs_fh3 {
            data: self.gateway.handle(id),
        }
    }

    fn fh_to_id(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        match self.gateway.resolve_handle(&fh.data) {
            None => Err(nfsstat3::NFS3ERR_BADHANDLE),
            Some(result) => result.map_err(status),
        }
    }
}
