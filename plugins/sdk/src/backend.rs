//! The [`Backend`] trait a Rust plugin implements: one associated function for each function the
//! interface's `backend` exports, with the same arguments. The four every plugin needs (`init`,
//! `stat`, `list_dir`, `read`) and `statfs` have no default; every other one has the answer of a
//! plugin that does not declare its capability (the host never calls it then), so a plugin
//! writes only what it supports. Every `Backend` is the generated bindings' `Guest`, which is
//! what [`export!`](crate::export) wants. `Made::alone` and `Renamed::unknown` answer a change
//! without the attributes of the directories it changed.

use crate::exports::nfsgw::backend::backend::Guest;
use crate::staging::StagedFile;
use crate::{
    Attrs, Device, DirPage, Error, FileKind, FsStats, Made, MountInfo, ReadResult, Renamed,
    SetAttrs,
};

/// A mount's file system, as the interface's `backend` (see `wit/backend.wit` for each call).
/// The calls that add, remove or rename names answer the attributes of the directories they
/// changed when they are at hand (`host_fs` always has them), or none, and the host stats.
pub trait Backend {
    /// The mount's `[mount.config]` as string pairs; what the plugin supports, or a sentence
    /// for the user when the mount cannot start.
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String>;

    fn stat(path: String) -> Result<Attrs, Error>;

    fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error>;

    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error>;

    fn statfs() -> Result<FsStats, Error>;

    /// Capability `write`; staged-writes plugins never get it.
    fn write(_path: String, _offset: u64, _data: Vec<u8>) -> Result<Attrs, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `create`.
    fn create(_path: String, _mode: u32, _exclusive: bool) -> Result<Made, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `mkdir`.
    fn mkdir(_path: String, _mode: u32) -> Result<Made, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `remove`.
    fn remove(_path: String) -> Result<Option<Attrs>, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `remove`.
    fn rmdir(_path: String) -> Result<Option<Attrs>, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `rename`.
    fn rename(_source: String, _destination: String) -> Result<Renamed, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `symlink`.
    fn symlink(_path: String, _target: String) -> Result<Made, Error> {
        Err(Error::NotSupported)
    }

    /// Without symbolic links, nothing is one: `invalid`, as POSIX readlink of a file.
    fn readlink(_path: String) -> Result<String, Error> {
        Err(Error::Invalid)
    }

    /// Capability `hard-link`.
    fn link(_existing: String, _path: String) -> Result<Made, Error> {
        Err(Error::NotSupported)
    }

    /// Capability `special-files`.
    fn mknod(_path: String, _kind: FileKind, _mode: u32, _device: Device) -> Result<Made, Error> {
        Err(Error::NotSupported)
    }

    /// Capabilities `set-mode`, `set-owner`, `set-times`, `truncate`.
    fn setattr(_path: String, _changes: SetAttrs) -> Result<Attrs, Error> {
        Err(Error::NotSupported)
    }

    /// Nothing to make durable: staged-writes plugins, whose data the host keeps until
    /// `commit`, and plugins that store nothing.
    fn sync(_path: String) -> Result<(), Error> {
        Ok(())
    }

    /// For `staged-writes` plugins.
    fn commit(_path: String, _staged: &StagedFile) -> Result<Attrs, Error> {
        Err(Error::NotSupported)
    }
}

impl Made {
    /// A new entry's attributes without its directory's, which the host then stats.
    pub fn alone(attrs: Attrs) -> Made {
        Made { attrs, dir: None }
    }
}

impl Renamed {
    /// A rename that answers neither directory's attributes: the host stats them.
    pub fn unknown() -> Renamed {
        Renamed {
            source_dir: None,
            destination_dir: None,
        }
    }
}

impl<B: Backend> Guest for B {
    fn init(config: Vec<(String, String)>) -> Result<MountInfo, String> {
        B::init(config)
    }
    fn stat(path: String) -> Result<Attrs, Error> {
        B::stat(path)
    }
    fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error> {
        B::list_dir(path, cursor, limit)
    }
    fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> {
        B::read(path, offset, len)
    }
    fn write(path: String, offset: u64, data: Vec<u8>) -> Result<Attrs, Error> {
        B::write(path, offset, data)
    }
    fn create(path: String, mode: u32, exclusive: bool) -> Result<Made, Error> {
        B::create(path, mode, exclusive)
    }
    fn mkdir(path: String, mode: u32) -> Result<Made, Error> {
        B::mkdir(path, mode)
    }
    fn remove(path: String) -> Result<Option<Attrs>, Error> {
        B::remove(path)
    }
    fn rmdir(path: String) -> Result<Option<Attrs>, Error> {
        B::rmdir(path)
    }
    fn rename(source: String, destination: String) -> Result<Renamed, Error> {
        B::rename(source, destination)
    }
    fn symlink(path: String, target: String) -> Result<Made, Error> {
        B::symlink(path, target)
    }
    fn readlink(path: String) -> Result<String, Error> {
        B::readlink(path)
    }
    fn link(existing: String, path: String) -> Result<Made, Error> {
        B::link(existing, path)
    }
    fn mknod(path: String, kind: FileKind, mode: u32, device: Device) -> Result<Made, Error> {
        B::mknod(path, kind, mode, device)
    }
    fn setattr(path: String, changes: SetAttrs) -> Result<Attrs, Error> {
        B::setattr(path, changes)
    }
    fn sync(path: String) -> Result<(), Error> {
        B::sync(path)
    }
    fn statfs() -> Result<FsStats, Error> {
        B::statfs()
    }
    fn commit(path: String, staged: &StagedFile) -> Result<Attrs, Error> {
        B::commit(path, staged)
    }
}
