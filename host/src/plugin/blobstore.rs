//! The `blobstore` capability: the object store a mount grants, offered to its plugin.
//!
//! The plugin names keys; the host, holding the endpoint and credentials, does the requests
//! (with the native client of `crate::objstore`), signs them, and confines them to the grant's prefix. The time spent waiting is
//! booked as host time, which the plugin's call deadline does not count. What the host holds
//! for a call's answer (a blob read, a listing page) is held in the mount's budget of host
//! buffers as it arrives, and may be no larger than the plugin's memory: a call asking for more
//! fails with `too-big`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::Resource;

use crate::objstore::{BlobStore, Meta};

use super::bindings::nfsgw::backend::blobstore::{Host, ListPage, ObjectMeta};
use super::bindings::types::Error;
use super::memory::Reservation;
use super::runtime::HostState;
use super::staged_file::StagedFile;

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> ObjectMeta {
        ObjectMeta {
            key: m.key,
            size: m.size,
            modified: m.modified,
            etag: m.etag,
        }
    }
}

impl HostState {
    /// An admission check for the bytes a call's answer holds: within the plugin's memory and
    /// the mount's budget, which the returned reservation holds until it is dropped.
    fn answer_budget(&self) -> (Reservation, usize) {
        (self.buffers.reservation(), self.memory_limit)
    }

    /// Runs a request against the mount's store and books the wait as host time.
    async fn with_store<R, F, Fut>(&mut self, request: F) -> Result<R, Error>
    where
        F: FnOnce(Arc<BlobStore>) -> Fut,
        Fut: std::future::Future<Output = Result<R, Error>>,
    {
        let Some(store) = self.blobs.clone() else {
            tracing::warn!(mount = %self.mount, "the plugin asked for an object store its mount does not grant");
            return Err(Error::Access);
        };
        let started = Instant::now();
        let result = request(store).await;
        self.host_time += started.elapsed();
        result
    }
}

impl Host for HostState {
    async fn list(
        &mut self,
        prefix: String,
        recursive: bool,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<ListPage, Error> {
        let (mut held, most) = self.answer_budget();
        self.with_store(|s| async move {
            let admit = |n: usize| n <= most && held.cover(n);
            let page = s.list(&prefix, recursive, cursor, limit, admit).await?;
            Ok(ListPage {
                objects: page.objects.into_iter().map(Into::into).collect(),
                prefixes: page.prefixes,
                next: page.next,
            })
        })
        .await
    }

    async fn head(&mut self, key: String) -> Result<ObjectMeta, Error> {
        self.with_store(|s| async move { s.head(&key).await.map(Into::into) })
            .await
    }

    async fn get(&mut self, key: String, offset: u64, len: u32) -> Result<Vec<u8>, Error> {
        let (mut held, most) = self.answer_budget();
        self.with_store(|s| async move {
            let admit = |n: usize| n <= most && held.cover(n);
            let (bytes, _) = s
                .get_admitted(&key, offset, len.into(), Vec::new(), admit)
                .await?;
            Ok(bytes)
        })
        .await
    }

    async fn put(
        &mut self,
        key: String,
        data: Vec<u8>,
        exclusive: bool,
    ) -> Result<ObjectMeta, Error> {
        self.with_store(|s| async move {
            s.put(&key, Bytes::from(data), exclusive)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn upload(
        &mut self,
        key: String,
        file: Resource<StagedFile>,
    ) -> Result<ObjectMeta, Error> {
        let staged = self.table.get(&file).map_err(|_| Error::Invalid)?;
        let (handle, size) = (staged.file.clone(), staged.size);
        self.with_store(|s| async move { s.upload(&key, handle, size).await.map(Into::into) })
            .await
    }

    async fn copy(&mut self, source: String, destination: String) -> Result<(), Error> {
        self.with_store(|s| async move { s.copy(&source, &destination).await })
            .await
    }

    async fn delete(&mut self, key: String) -> Result<(), Error> {
        self.with_store(|s| async move { s.delete(&key).await })
            .await
    }
}
