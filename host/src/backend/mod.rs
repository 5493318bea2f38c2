//! The typed backend seam: what the gateway core asks of whatever serves a mount.
//!
//! `Backend` has one async method per operation of the plugin interface (`wit/backend.wit`),
//! with the interface's own argument, result and error types (re-exported here as `types`), and
//! accessors for what a mount grants besides its calls: what `init` declared (`info`), the
//! object store and host directories that reads by reference name (`blobs`, `host_files`), and
//! the size of the backend's pool of workers (`pool`). The gateway holds an `Arc<dyn Backend>`
//! and never sees how it is served: `wasm` adapts a WebAssembly plugin (the runtime in
//! `crate::plugin` keeps its instances, deadlines and traps); `memory` is a native tree in
//! memory for tests and demos. Paths are relative to the mount's root, as in the interface.

pub mod memory;
pub mod wasm;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use crate::plugin::bindings::types;

use crate::copy_file::CopyFile;
use crate::objstore::BlobStore;
use crate::plugin::host_fs::Grants;
use types::{
    Attrs, Device, DirPage, Error, FileKind, FsStats, Made, MountInfo, ReadResult, Renamed,
    SetAttrs,
};

/// What a backend call answers, some time later.
pub type Reply<'a, T> = BoxFuture<'a, Result<T, Error>>;

/// One mount's backend. Each call is one operation of the plugin interface; the gateway has
/// already checked names, permissions and the declared capabilities. The calls that add,
/// remove or rename names answer, where the backend has them at hand, the attributes of the
/// directories they changed, so the gateway need not stat them again for the client's reply.
pub trait Backend: Send + Sync {
    /// What the backend declared when it started.
    fn info(&self) -> &MountInfo;
    /// The object store that blob ranges of `read` name, if the mount grants one.
    fn blobs(&self) -> Option<&Arc<BlobStore>>;
    /// The host directories that file ranges of `read` name.
    fn host_files(&self) -> &Arc<Grants>;
    /// (largest number of workers, workers alive now), for the admin status.
    fn pool(&self) -> (usize, usize);

    fn stat<'a>(&'a self, path: &'a str) -> Reply<'a, Attrs>;
    /// One page of a directory: `cursor` is none for the first page, else the previous
    /// page's `next`; `limit` is a hint for the page size.
    fn list_dir<'a>(
        &'a self,
        path: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> Reply<'a, DirPage>;
    fn read<'a>(&'a self, path: &'a str, offset: u64, len: u32) -> Reply<'a, ReadResult>;
    fn readlink<'a>(&'a self, path: &'a str) -> Reply<'a, String>;
    fn write<'a>(&'a self, path: &'a str, offset: u64, data: Bytes) -> Reply<'a, Attrs>;
    /// With `exclusive`, an existing entry is `Error::Exists`.
    fn create<'a>(&'a self, path: &'a str, mode: u32, exclusive: bool) -> Reply<'a, Made>;
    fn mkdir<'a>(&'a self, path: &'a str, mode: u32) -> Reply<'a, Made>;
    fn symlink<'a>(&'a self, path: &'a str, target: &'a str) -> Reply<'a, Made>;
    /// A fifo, socket, or block or character device; `device` matters for devices only.
    fn mknod<'a>(
        &'a self,
        path: &'a str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Reply<'a, Made>;
    fn link<'a>(&'a self, existing: &'a str, path: &'a str) -> Reply<'a, Made>;
    fn setattr<'a>(&'a self, path: &'a str, changes: SetAttrs) -> Reply<'a, Attrs>;
    /// Removes a file, symlink or other non-directory; answers its directory's attributes.
    fn remove<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>>;
    /// Removes an empty directory; answers its directory's attributes.
    fn rmdir<'a>(&'a self, path: &'a str) -> Reply<'a, Option<Attrs>>;
    /// Replaces `destination` when POSIX rename would.
    fn rename<'a>(&'a self, source: &'a str, destination: &'a str) -> Reply<'a, Renamed>;
    /// Makes what was written to the file durable.
    fn sync<'a>(&'a self, path: &'a str) -> Reply<'a, ()>;
    fn statfs(&self) -> Reply<'_, FsStats>;
    /// For `staged-writes` backends: stores the whole staged copy `file` (`size` bytes) of the
    /// file at `path`, and answers its attributes afterwards.
    fn commit<'a>(&'a self, path: &'a str, file: Arc<CopyFile>, size: u64) -> Reply<'a, Attrs>;
}
