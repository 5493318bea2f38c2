//! Opening things beneath a grant without following a single symlink.
//!
//! A granted directory is shared with clients, who make symlinks in it, and may be changed on
//! the host between two calls. So no host-side call may follow a symlink anywhere in a path:
//! not in a directory component (a directory swapped for a link between a check and an open)
//! and not at the end (a READ of a symlink's handle must not read its target). On Linux a
//! path is opened with one `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); elsewhere, and
//! on kernels without `openat2`, directories are walked one component at a time, each opened
//! no-follow. Files are opened for data only when the opened file proves regular: a FIFO,
//! socket or device is opened non-blocking (so the open cannot hang) and then refused.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::{Component, Path};

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;

use super::map_io;
use crate::plugin::bindings::types::Error;

/// How a regular file is opened for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A directory containing the object a path names: the grant itself or one opened beneath it.
pub enum Parent<'a> {
    Grant(&'a Dir),
    Opened(Dir),
}

impl Deref for Parent<'_> {
    type Target = Dir;

    fn deref(&self) -> &Dir {
        match self {
            Parent::Grant(dir) => dir,
            Parent::Opened(dir) => dir,
        }
    }
}

/// The directory at `rel` ("." for the grant itself).
pub fn dir(grant: &Dir, rel: &Path) -> io::Result<Dir> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Some(opened) = linux::open_beneath(grant, rel, flags, Mode::empty()) {
            return opened.map(|fd| Dir::from_std_file(File::from(fd)));
        }
    }
    walk(grant, rel)
}

/// The directory holding what `rel` names, and its last component ("." names the grant).
pub fn parent<'a>(grant: &'a Dir, rel: &'a Path) -> io::Result<(Parent<'a>, &'a OsStr)> {
    let name = match rel.file_name() {
        Some(name) => name,
        None if rel == Path::new(".") => OsStr::new("."),
        None => return Err(io::ErrorKind::InvalidInput.into()),
    };
    match rel.parent() {
        Some(up) if !up.as_os_str().is_empty() => Ok((Parent::Opened(dir(grant, up)?), name)),
        _ => Ok((Parent::Grant(grant), name)),
    }
}

/// Walks `rel` one component at a time, refusing a symlink at each step.
fn walk(grant: &Dir, rel: &Path) -> io::Result<Dir> {
    let mut at: Option<Dir> = None;
    for component in rel.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => {
                let next = at.as_ref().unwrap_or(grant).open_dir_nofollow(name)?;
                at = Some(next);
            }
            _ => return Err(io::ErrorKind::InvalidInput.into()),
        }
    }
    match at {
        Some(dir) => Ok(dir),
        None => grant.try_clone(),
    }
}

/// Opens the regular file at `rel` for data. A symlink anywhere in the path, a FIFO, a socket
/// or a device is `invalid` (a directory is `is-dir`), and the open itself never blocks.
pub fn regular_file(grant: &Dir, rel: &Path, access: Access) -> Result<File, Error> {
    let file = open_for_data(grant, rel, access).map_err(|e| match e.raw_os_error() {
        // ELOOP: a symlink where the path needed none; ENXIO: a FIFO without a reader or a
        // device without a driver.
        Some(code) if is_loop_or_no_device(code) => Error::Invalid,
        _ => map_io(e),
    })?;
    let kind = file.metadata().map_err(map_io)?.file_type();
    if kind.is_file() {
        Ok(file)
    } else if kind.is_dir() {
        Err(Error::IsDir)
    } else {
        Err(Error::Invalid)
    }
}

#[cfg(unix)]
fn is_loop_or_no_device(code: i32) -> bool {
    use rustix::io::Errno;
    let errno = Errno::from_raw_os_error(code);
    errno == Errno::LOOP || errno == Errno::NXIO
}

#[cfg(not(unix))]
fn is_loop_or_no_device(_: i32) -> bool {
    false
}

#[cfg(unix)]
fn open_for_data(grant: &Dir, rel: &Path, access: Access) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = match access {
        Access::Read => OFlags::RDONLY,
        Access::Write => OFlags::WRONLY,
    } | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    #[cfg(target_os = "linux")]
    {
        if let Some(opened) = linux::open_beneath(grant, rel, flags, Mode::empty()) {
            return opened.map(File::from);
        }
    }
    let (parent, name) = parent(grant, rel)?;
    Ok(rustix::fs::openat(&*parent, name, flags, Mode::empty())?.into())
}

#[cfg(not(unix))]
fn open_for_data(grant: &Dir, rel: &Path, access: Access) -> io::Result<File> {
    use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
    let (parent, name) = parent(grant, rel)?;
    let mut options = cap_std::fs::OpenOptions::new();
    match access {
        Access::Read => options.read(true),
        Access::Write => options.write(true),
    };
    options.follow(FollowSymlinks::No);
    Ok(parent.open_with(name, &options)?.into_std())
}

/// Creates the regular file `name` in `parent`, which must not exist (a symlink there counts
/// as existing), with exactly `mode`.
pub fn create_file(parent: &Dir, name: &OsStr, mode: u32) -> io::Result<File> {
    #[cfg(unix)]
    {
        use rustix::fs::{fchmod, Mode, OFlags};
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let fd = rustix::fs::openat(parent, name, flags, mode)?;
        // The process umask narrowed the mode; the client already applied its own.
        fchmod(&fd, mode)?;
        Ok(fd.into())
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        Ok(parent.open_with(name, &options)?.into_std())
    }
}

/// Sets the mode of what `rel` names, never of a symlink's target (a symlink has no mode of
/// its own to set: `not-supported`).
#[cfg(target_os = "linux")]
pub fn set_mode(grant: &Dir, rel: &Path, mode: u32) -> Result<(), Error> {
    use rustix::fs::{FileType, Mode, OFlags};
    // A path-only descriptor of the object itself; chmod through its /proc link reaches that
    // very inode, so nothing can be swapped in between the check and the change.
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match linux::open_beneath(grant, rel, flags, Mode::empty()) {
        Some(opened) => opened,
        None => {
            let (parent, name) = parent(grant, rel).map_err(map_io)?;
            rustix::fs::openat(&*parent, name, flags, Mode::empty()).map_err(io::Error::from)
        }
    }
    .map_err(map_io)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| map_io(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
        return Err(Error::NotSupported);
    }
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(mode & 0o7777))
        .map_err(|e| map_io(e.into()))
}

#[cfg(all(unix, not(target_os = "linux")))]
pub fn set_mode(grant: &Dir, rel: &Path, mode: u32) -> Result<(), Error> {
    use rustix::fs::{chmodat, AtFlags, Mode};
    let (parent, name) = parent(grant, rel).map_err(map_io)?;
    chmodat(
        &*parent,
        name,
        Mode::from_raw_mode(mode & 0o7777),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| map_io(e.into()))
}

#[cfg(not(unix))]
pub fn set_mode(grant: &Dir, rel: &Path, mode: u32) -> Result<(), Error> {
    let (parent, name) = parent(grant, rel).map_err(map_io)?;
    let mut perms = parent.symlink_metadata(name).map_err(map_io)?.permissions();
    perms.set_readonly(mode & 0o222 == 0);
    parent.set_permissions(name, perms).map_err(map_io)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cap_std::fs::Dir;
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;

    /// Cleared when the kernel has no `openat2` (before 5.6): callers then walk instead.
    static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

    /// `rel` opened with `flags` in one call that follows no symlink and stays beneath
    /// `grant`; `None` when this kernel cannot, or when a rename raced the lookup.
    pub fn open_beneath(
        grant: &Dir,
        rel: &Path,
        flags: OFlags,
        mode: Mode,
    ) -> Option<io::Result<OwnedFd>> {
        if !OPENAT2_WORKS.load(Ordering::Relaxed) {
            return None;
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match openat2(grant, rel, flags, mode, resolve) {
            Ok(fd) => Some(Ok(fd)),
            Err(Errno::NOSYS) => {
                OPENAT2_WORKS.store(false, Ordering::Relaxed);
                None
            }
            Err(Errno::AGAIN) => None,
            Err(e) => Some(Err(e.into())),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn grant() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_symlinked_directory_component_is_not_followed() {
        let (tmp, g) = grant();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        std::fs::write(tmp.path().join("real/f"), b"secret").unwrap();
        symlink("real", tmp.path().join("link")).unwrap();
        assert!(dir(&g, Path::new("link")).is_err());
        assert!(parent(&g, Path::new("link/f")).is_err());
        assert_eq!(
            regular_file(&g, Path::new("link/f"), Access::Read).unwrap_err(),
            Error::Invalid
        );
        assert!(regular_file(&g, Path::new("real/f"), Access::Read).is_ok());
    }

    #[test]
    fn the_walk_refuses_a_symlinked_component_too() {
        let (tmp, g) = grant();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        symlink("a", tmp.path().join("s")).unwrap();
        assert!(walk(&g, Path::new("a/b")).is_ok());
        assert!(walk(&g, Path::new("s/b")).is_err());
        assert!(walk(&g, Path::new("s")).is_err());
    }

    #[test]
    fn a_symlink_at_the_end_is_never_opened_for_data() {
        let (tmp, g) = grant();
        std::fs::write(tmp.path().join("target"), b"secret").unwrap();
        symlink("target", tmp.path().join("link")).unwrap();
        for access in [Access::Read, Access::Write] {
            assert_eq!(
                regular_file(&g, Path::new("link"), access).unwrap_err(),
                Error::Invalid
            );
        }
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let (tmp, g) = grant();
        rustix::fs::mknodat(
            &g,
            "fifo",
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap();
        for access in [Access::Read, Access::Write] {
            assert_eq!(
                regular_file(&g, Path::new("fifo"), access).unwrap_err(),
                Error::Invalid
            );
        }
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        assert_eq!(
            regular_file(&g, Path::new("d"), Access::Read).unwrap_err(),
            Error::IsDir
        );
    }

    #[test]
    fn set_mode_changes_the_object_and_never_a_symlinks_target() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, g) = grant();
        let target = tmp.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        symlink("target", tmp.path().join("link")).unwrap();
        assert!(set_mode(&g, Path::new("link"), 0o777).is_err());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
        set_mode(&g, Path::new("target"), 0o640).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
    }

    #[test]
    fn create_file_refuses_an_existing_symlink_and_sets_the_exact_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, g) = grant();
        symlink("elsewhere", tmp.path().join("link")).unwrap();
        assert!(create_file(&g, OsStr::new("link"), 0o644).is_err());
        assert!(!tmp.path().join("elsewhere").exists());
        let file = create_file(&g, OsStr::new("new"), 0o666).unwrap();
        assert_eq!(
            file.metadata().unwrap().permissions().mode() & 0o7777,
            0o666
        );
    }
}
