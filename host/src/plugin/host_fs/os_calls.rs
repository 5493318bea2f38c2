//! The host OS calls beneath `host_fs` and their conversions: OS errors to the interface's
//! error, metadata to attributes, set-times to cap-std's, and the calls that are Unix-only
//! (chown, mknod, statfs, positioned writes) with their stand-ins on other systems.

use std::ffi::OsStr;
use std::io;
use std::time::SystemTime;

use cap_fs_ext::SystemTimeSpec;
use cap_std::fs::{Dir, Metadata};

use super::super::bindings::types::{Attrs, Device, Error, FileKind, FsStats, SetTime, Timestamp};
use crate::copy_file::read_uninit_at;

pub(super) fn time_spec(t: SetTime) -> SystemTimeSpec {
    match t {
        SetTime::Now => SystemTimeSpec::SymbolicNow,
        SetTime::At(ts) => {
            let at = if ts.seconds >= 0 {
                SystemTime::UNIX_EPOCH + std::time::Duration::new(ts.seconds as u64, ts.nanoseconds)
            } else {
                SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(ts.seconds.unsigned_abs())
                    + std::time::Duration::from_nanos(ts.nanoseconds.into())
            };
            SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(at))
        }
    }
}

/// Maps an OS error to the interface's error, one NFS status each.
pub(super) fn map_io(e: io::Error) -> Error {
    #[cfg(unix)]
    if let Some(errno) = e.raw_os_error() {
        use rustix::io::Errno;
        let errno = Errno::from_raw_os_error(errno);
        return match errno {
            Errno::NOENT => Error::NotFound,
            Errno::EXIST => Error::Exists,
            Errno::NOTDIR => Error::NotDir,
            Errno::ISDIR => Error::IsDir,
            Errno::NOTEMPTY => Error::NotEmpty,
            Errno::ACCESS => Error::Access,
            Errno::PERM => Error::NotOwner,
            Errno::ROFS => Error::ReadOnly,
            Errno::NAMETOOLONG => Error::NameTooLong,
            Errno::NOSPC => Error::NoSpace,
            Errno::DQUOT => Error::Quota,
            Errno::FBIG => Error::TooBig,
            Errno::INVAL => Error::Invalid,
            Errno::XDEV => Error::CrossDevice,
            Errno::MLINK => Error::TooManyLinks,
            Errno::NOTSUP => Error::NotSupported,
            Errno::STALE => Error::Stale,
            Errno::AGAIN | Errno::BUSY => Error::Busy,
            // A symlink that would lead outside the grant, or a loop.
            Errno::LOOP => Error::Access,
            _ => Error::Io,
        };
    }
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound,
        io::ErrorKind::AlreadyExists => Error::Exists,
        io::ErrorKind::NotADirectory => Error::NotDir,
        io::ErrorKind::IsADirectory => Error::IsDir,
        io::ErrorKind::DirectoryNotEmpty => Error::NotEmpty,
        io::ErrorKind::PermissionDenied => Error::Access,
        io::ErrorKind::ReadOnlyFilesystem => Error::ReadOnly,
        io::ErrorKind::InvalidFilename => Error::NameTooLong,
        io::ErrorKind::StorageFull => Error::NoSpace,
        io::ErrorKind::QuotaExceeded => Error::Quota,
        io::ErrorKind::FileTooLarge => Error::TooBig,
        io::ErrorKind::InvalidInput => Error::Invalid,
        io::ErrorKind::CrossesDevices => Error::CrossDevice,
        io::ErrorKind::TooManyLinks => Error::TooManyLinks,
        io::ErrorKind::Unsupported => Error::NotSupported,
        io::ErrorKind::StaleNetworkFileHandle => Error::Stale,
        io::ErrorKind::ResourceBusy | io::ErrorKind::WouldBlock => Error::Busy,
        _ => Error::Io,
    }
}

pub(super) fn timestamp(seconds: i64, nanoseconds: i64) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds: nanoseconds.clamp(0, 999_999_999) as u32,
    }
}

#[cfg(unix)]
pub(super) fn attrs_of(meta: &Metadata) -> Attrs {
    use cap_std::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_socket() {
        FileKind::Socket
    } else if ft.is_block_device() {
        FileKind::BlockDevice
    } else if ft.is_char_device() {
        FileKind::CharDevice
    } else {
        FileKind::Regular
    };
    Attrs {
        kind,
        size: meta.size(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        nlink: meta.nlink().try_into().unwrap_or(u32::MAX),
        atime: timestamp(meta.atime(), meta.atime_nsec()),
        mtime: timestamp(meta.mtime(), meta.mtime_nsec()),
        ctime: timestamp(meta.ctime(), meta.ctime_nsec()),
        rdev: Device {
            major: rustix::fs::major(meta.rdev()),
            minor: rustix::fs::minor(meta.rdev()),
        },
        change: Some(format!(
            "{}:{}.{}:{}",
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.size()
        )),
    }
}

#[cfg(not(unix))]
pub(super) fn attrs_of(meta: &Metadata) -> Attrs {
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Regular
    };
    let ts = |t: io::Result<cap_std::time::SystemTime>| {
        let d = t
            .ok()
            .and_then(|t| t.into_std().duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        timestamp(d.as_secs() as i64, d.subsec_nanos().into())
    };
    let mode = match (kind, meta.permissions().readonly()) {
        (FileKind::Directory, false) => 0o755,
        (FileKind::Directory, true) => 0o555,
        (_, false) => 0o644,
        (_, true) => 0o444,
    };
    let mtime = ts(meta.modified());
    Attrs {
        kind,
        size: meta.len(),
        mode,
        uid: 0,
        gid: 0,
        nlink: 1,
        atime: ts(meta.accessed()),
        ctime: mtime,
        mtime,
        rdev: Device { major: 0, minor: 0 },
        change: Some(format!(
            "{}.{}:{}",
            mtime.seconds,
            mtime.nanoseconds,
            meta.len()
        )),
    }
}

#[cfg(unix)]
pub(super) fn set_dir_mode(builder: &mut cap_std::fs::DirBuilder, mode: u32) {
    use cap_std::fs::DirBuilderExt;
    builder.mode(mode & 0o7777);
}

#[cfg(not(unix))]
pub(super) fn set_dir_mode(_: &mut cap_std::fs::DirBuilder, _: u32) {}

#[cfg(unix)]
pub(super) fn chown_at(
    parent: &Dir,
    name: &OsStr,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Error> {
    use rustix::fs::{chownat, AtFlags, Gid, Uid};
    chownat(
        parent,
        name,
        uid.map(Uid::from_raw),
        gid.map(Gid::from_raw),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| map_io(e.into()))
}

#[cfg(unix)]
pub(super) fn symlink_at(target: &str, parent: &Dir, name: &OsStr) -> Result<(), Error> {
    rustix::fs::symlinkat(target, parent, name).map_err(|e| map_io(e.into()))
}

#[cfg(not(unix))]
pub(super) fn symlink_at(target: &str, parent: &Dir, name: &OsStr) -> Result<(), Error> {
    use cap_fs_ext::DirExt;
    parent.symlink(target, name).map_err(map_io)
}

#[cfg(unix)]
pub(super) fn mknod_at(
    parent: &Dir,
    name: &OsStr,
    kind: FileKind,
    mode: u32,
    device: Device,
) -> Result<(), Error> {
    use rustix::fs::{makedev, mknodat, FileType, Mode};
    let file_type = match kind {
        FileKind::Fifo => FileType::Fifo,
        FileKind::Socket => FileType::Socket,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::CharDevice => FileType::CharacterDevice,
        _ => return Err(Error::Invalid),
    };
    let dev = makedev(device.major, device.minor);
    mknodat(
        parent,
        name,
        file_type,
        Mode::from_raw_mode(mode & 0o7777),
        dev,
    )
    .map_err(|e| map_io(e.into()))
}

#[cfg(not(unix))]
pub(super) fn mknod_at(_: &Dir, _: &OsStr, _: FileKind, _: u32, _: Device) -> Result<(), Error> {
    Err(Error::NotSupported)
}

#[cfg(not(unix))]
pub(super) fn chown_at(_: &Dir, _: &OsStr, _: Option<u32>, _: Option<u32>) -> Result<(), Error> {
    Err(Error::NotSupported)
}

#[cfg(unix)]
pub(super) fn fs_stats(dir: &Dir) -> Result<FsStats, Error> {
    let st = rustix::fs::fstatvfs(dir).map_err(|e| map_io(e.into()))?;
    let frsize = st.f_frsize;
    Ok(FsStats {
        total_bytes: st.f_blocks * frsize,
        free_bytes: st.f_bfree * frsize,
        available_bytes: st.f_bavail * frsize,
        total_files: st.f_files,
        free_files: st.f_ffree,
        available_files: st.f_favail,
    })
}

#[cfg(not(unix))]
pub(super) fn fs_stats(_: &Dir) -> Result<FsStats, Error> {
    Err(Error::NotSupported)
}

/// Reads at `offset` into `buf`'s spare room, extending it, until it holds `want` bytes at
/// most; how many bytes were read. On Unix the memory is not zeroed first: for a 1 MiB READ
/// that saved a 1 MiB memset per call (docs/BENCHMARKS.md).
pub(super) fn read_more(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    offset: u64,
    want: usize,
) -> io::Result<usize> {
    let room = want.saturating_sub(buf.len());
    let n = read_uninit_at(file, &mut buf.spare_capacity_mut()[..room], offset)?;
    // SAFETY: the read initialised the `n` bytes after the vector's end.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(unix)]
pub(super) fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, offset)
}
