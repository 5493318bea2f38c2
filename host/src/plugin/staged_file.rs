//! The `staging` capability: a staged file lent to a plugin's `commit`.
//!
//! The gateway keeps the data written to files of whole-object mounts in local staged copies.
//! When it flushes one, it puts a `StagedFile` in the calling store's resource table and passes
//! it to `commit`; the plugin can read it, or (better) hand it back to a host capability such as
//! `blobstore.upload`, which moves the bytes natively.

use std::sync::Arc;

use crate::copy_file::CopyFile;
use crate::positioned_io::read_exact_at;

use wasmtime::component::Resource;

use super::bindings::nfsgw::backend::staging::{Host, HostStagedFile};
use super::bindings::types::Error;
use super::runtime::HostState;

/// A staged file as a plugin sees it: its content up to `size`.
pub struct StagedFile {
    pub file: Arc<CopyFile>,
    pub size: u64,
}

impl Host for HostState {}

impl HostStagedFile for HostState {
    fn size(&mut self, file: Resource<StagedFile>) -> u64 {
        self.table.get(&file).map_or(0, |f| f.size)
    }

    fn read(
        &mut self,
        file: Resource<StagedFile>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, Error> {
        let staged = self.table.get(&file).map_err(|_| Error::Invalid)?;
        let end = staged.size.min(offset.saturating_add(len.into()));
        let mut buf = vec![0; end.saturating_sub(offset) as usize];
        read_exact_at(staged.file.file(), &mut buf, offset).map_err(|e| {
            tracing::error!(mount = %self.mount, "reading a staged file failed: {e}");
            Error::Io
        })?;
        Ok(buf)
    }

    fn drop(&mut self, file: Resource<StagedFile>) -> wasmtime::Result<()> {
        self.table.delete(file)?;
        Ok(())
    }
}
