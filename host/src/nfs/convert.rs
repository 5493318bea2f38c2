//! Conversions between the gateway's types and NFSv3's wire types.

use nfs3_types::nfs3::{
    fattr3, ftype3, nfsstat3, nfstime3, post_op_attr, sattr3, set_atime, set_mtime, specdata3,
    wcc_attr, Nfs3Option,
};

use crate::backend::types::{Attrs, Error, FileKind, SetAttrs, SetTime, Timestamp};
use crate::gateway::FileId;

/// One file-system id for the whole export: mounts are directories, not separate file systems.
const FSID: u64 = 0x6e66_7367_7700;

pub fn status(e: Error) -> nfsstat3 {
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

pub fn nfs_time(t: Timestamp) -> nfstime3 {
    nfstime3 {
        seconds: t.seconds.clamp(0, u32::MAX.into()) as u32,
        nseconds: t.nanoseconds,
    }
}

pub fn ftype(kind: FileKind) -> ftype3 {
    match kind {
        FileKind::Regular => ftype3::NF3REG,
        FileKind::Directory => ftype3::NF3DIR,
        FileKind::Symlink => ftype3::NF3LNK,
        FileKind::Fifo => ftype3::NF3FIFO,
        FileKind::Socket => ftype3::NF3SOCK,
        FileKind::BlockDevice => ftype3::NF3BLK,
        FileKind::CharDevice => ftype3::NF3CHR,
    }
}

pub fn fattr(id: FileId, a: &Attrs) -> fattr3 {
    fattr3 {
        type_: ftype(a.kind),
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.size.div_ceil(4096) * 4096,
        rdev: specdata3 {
            specdata1: a.rdev.major,
            specdata2: a.rdev.minor,
        },
        fsid: FSID,
        fileid: id,
        atime: nfs_time(a.atime),
        mtime: nfs_time(a.mtime),
        ctime: nfs_time(a.ctime),
    }
}

pub fn post_op(id: FileId, attrs: Option<&Attrs>) -> post_op_attr {
    match attrs {
        Some(a) => Nfs3Option::Some(fattr(id, a)),
        None => Nfs3Option::None,
    }
}

pub fn wcc(a: &Attrs) -> wcc_attr {
    wcc_attr {
        size: a.size,
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

pub fn changes(s: &sattr3) -> SetAttrs {
    let opt = |v: &Nfs3Option<u32>| match v {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    };
    SetAttrs {
        mode: opt(&s.mode).map(|m| m & 0o7777),
        uid: opt(&s.uid),
        gid: opt(&s.gid),
        size: match s.size {
            Nfs3Option::Some(n) => Some(n),
            Nfs3Option::None => None,
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

/// True when a change set changes nothing.
pub fn is_empty(c: &SetAttrs) -> bool {
    c.mode.is_none()
        && c.uid.is_none()
        && c.gid.is_none()
        && c.size.is_none()
        && c.atime.is_none()
        && c.mtime.is_none()
}
