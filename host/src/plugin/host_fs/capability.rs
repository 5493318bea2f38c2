//! The `host-fs` interface as plugins call it: each import runs its `Grants` call on the
//! bounded blocking pool (`crate::blocking`), never on the server's async workers, and books
//! the wait as host time, which the plugin's call deadline does not count.

use super::super::bindings::nfsgw::backend::host_fs::Host;
use super::super::bindings::types::{
    Attrs, Device, DirPage, Error, FileKind, FsStats, Made, Renamed, SetAttrs,
};
use super::super::runtime::HostState;
use super::Grants;

/// The capability as plugins call it: every call works on the store's grants, on the bounded
/// blocking pool. The time it waits there does not count against the plugin's deadline.
impl Host for HostState {
    async fn stat(&mut self, path: String) -> Result<Attrs, Error> {
        self.on_pool(move |g| g.stat(&path)).await
    }
    async fn read_dir(
        &mut self,
        path: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<DirPage, Error> {
        self.on_pool(move |g| g.read_dir(&path, after.as_deref(), limit))
            .await
    }
    async fn read(
        &mut self,
        path: String,
        offset: u64,
        len: u32,
    ) -> Result<(Vec<u8>, bool), Error> {
        self.on_pool(move |g| g.read(&path, offset, len.into()))
            .await
    }
    async fn write(&mut self, path: String, offset: u64, data: Vec<u8>) -> Result<Attrs, Error> {
        self.on_pool(move |g| g.write(&path, offset, &data)).await
    }
    async fn create(&mut self, path: String, mode: u32, exclusive: bool) -> Result<Made, Error> {
        self.on_pool(move |g| g.create(&path, mode, exclusive))
            .await
    }
    async fn mkdir(&mut self, path: String, mode: u32) -> Result<Made, Error> {
        self.on_pool(move |g| g.mkdir(&path, mode)).await
    }
    async fn remove_file(&mut self, path: String) -> Result<Option<Attrs>, Error> {
        self.on_pool(move |g| g.remove_file(&path)).await
    }
    async fn remove_dir(&mut self, path: String) -> Result<Option<Attrs>, Error> {
        self.on_pool(move |g| g.remove_dir(&path)).await
    }
    async fn rename(&mut self, source: String, destination: String) -> Result<Renamed, Error> {
        self.on_pool(move |g| g.rename(&source, &destination)).await
    }
    async fn symlink(&mut self, path: String, target: String) -> Result<Made, Error> {
        self.on_pool(move |g| g.symlink(&path, &target)).await
    }
    async fn readlink(&mut self, path: String) -> Result<String, Error> {
        self.on_pool(move |g| g.readlink(&path)).await
    }
    async fn link(&mut self, existing: String, path: String) -> Result<Made, Error> {
        self.on_pool(move |g| g.link(&existing, &path)).await
    }
    async fn mknod(
        &mut self,
        path: String,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Result<Made, Error> {
        self.on_pool(move |g| g.mknod(&path, kind, mode, device))
            .await
    }
    async fn setattr(&mut self, path: String, changes: SetAttrs) -> Result<Attrs, Error> {
        self.on_pool(move |g| g.setattr(&path, changes)).await
    }
    async fn sync(&mut self, path: String) -> Result<(), Error> {
        self.on_pool(move |g| g.sync(&path)).await
    }
    async fn statfs(&mut self, path: String) -> Result<FsStats, Error> {
        self.on_pool(move |g| g.statfs(&path)).await
    }
}

impl HostState {
    /// Runs one `host-fs` call on the blocking pool; a call still stuck at the pool's deadline
    /// fails with `io`, and the plugin goes on.
    async fn on_pool<R, F>(&mut self, call: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&Grants) -> Result<R, Error> + Send + 'static,
    {
        let grants = self.grants.clone();
        let started = std::time::Instant::now();
        let outcome = crate::blocking::run(crate::blocking::DEADLINE, move || call(&grants)).await;
        self.host_time += started.elapsed();
        outcome.map_err(|_| Error::Io)?
    }
}
