//! Streaming multipart uploads: the parts of a staged file that is still being written,
//! uploaded while it is written.
//!
//! The gateway starts a `Stream` for a staged file once its sequentially written prefix is long
//! enough, under the key it expects the plugin's `commit` to upload to, and *claims* the
//! finished parts of that prefix as the writes go on (`claim_to`). Claimed parts are read from
//! the staged file and uploaded in the background, a few at a time, to one multipart upload.
//! When the plugin's `commit` then calls `blobstore.upload` for the same key and the same staged
//! file, `BlobStore::upload` adopts the stream (`finish`): it uploads only the parts not claimed
//! yet and completes the upload. A stream that is cancelled (the gateway saw a write into a
//! claimed part, a truncation below it, a removal or a rename) never completes: its multipart
//! upload is aborted once its parts in flight have ended, and the whole-file upload is used.
//!
//! Soundness rests on the gateway: it claims and checks writes against the claimed length under
//! the staged copy's own lock, so a part's bytes, read after its claim, stay the staged copy's
//! bytes unless the stream is cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use object_store::multipart::PartId;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartId, PutPayload};
use tokio::task::JoinSet;

use super::store::{map_error, Client};
use super::upload::{part_buffers, read_range, MAX_PARTS, UPLOAD_CONCURRENCY};
use super::upload_log::{Record, UploadLog};
use crate::buffer_pool::BufferPool;
use crate::copy_file::CopyFile;
use crate::wit_types::Error;

/// The part size of streamed uploads (the smallest part `upload` uses).
pub const STREAM_PART: u64 = 8 << 20;

/// The streams of one store, by plugin key.
pub(super) type Registry = Arc<Mutex<HashMap<String, Arc<Stream>>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Taking claims.
    Open,
    /// Adopted by an upload, which owns it from now on.
    Sealed,
    /// Completed, or cancelled and aborted (or being aborted).
    Over,
}

struct Inner {
    phase: Phase,
    /// Parts cover `[0, claimed)`.
    claimed: u64,
    parts: JoinSet<Result<(usize, PartId), Error>>,
}

pub struct Stream {
    s3: Arc<dyn Client>,
    key: String,
    path: ObjectPath,
    file: Arc<CopyFile>,
    mount: String,
    runtime: tokio::runtime::Handle,
    registry: Weak<Mutex<HashMap<String, Arc<Stream>>>>,
    /// The multipart upload, created by the first part.
    id: tokio::sync::OnceCell<MultipartId>,
    /// Where the upload is recorded while it is open, and its record.
    uploads: Arc<UploadLog>,
    record: Mutex<Option<Record>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// The buffers parts are read into.
    buffers: Arc<BufferPool>,
    cancelled: AtomicBool,
    adopted: AtomicBool,
    inner: Mutex<Inner>,
}

impl Stream {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        s3: Arc<dyn Client>,
        uploads: Arc<UploadLog>,
        key: &str,
        path: ObjectPath,
        file: Arc<CopyFile>,
        mount: &str,
        runtime: tokio::runtime::Handle,
        registry: &Registry,
    ) -> Stream {
        Stream {
            s3,
            uploads,
            record: Mutex::new(None),
            key: key.to_string(),
            path,
            file,
            mount: mount.to_string(),
            runtime,
            registry: Arc::downgrade(registry),
            id: tokio::sync::OnceCell::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(UPLOAD_CONCURRENCY)),
            buffers: part_buffers(STREAM_PART),
            cancelled: AtomicBool::new(false),
            adopted: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                phase: Phase::Open,
                claimed: 0,
                parts: JoinSet::new(),
            }),
        }
    }

    /// The staged file this stream reads.
    pub(super) fn file(&self) -> &Arc<CopyFile> {
        &self.file
    }

    /// Claims the parts up to `end` (a multiple of the part size): they will not change, so
    /// they are uploaded now. False when the stream takes no more claims (adopted, cancelled,
    /// or the upload would need too many parts).
    pub fn claim_to(self: &Arc<Self>, end: u64) -> bool {
        debug_assert_eq!(end % STREAM_PART, 0);
        let mut inner = self.inner.lock().unwrap();
        if inner.phase != Phase::Open || end / STREAM_PART > MAX_PARTS {
            return false;
        }
        while inner.claimed < end {
            let offset = inner.claimed;
            self.spawn_part(&mut inner, offset, STREAM_PART, true);
            inner.claimed += STREAM_PART;
        }
        true
    }

    fn spawn_part(self: &Arc<Self>, inner: &mut Inner, offset: u64, len: u64, early: bool) {
        let this = self.clone();
        let index = (offset / STREAM_PART) as usize;
        inner
            .parts
            .spawn_on(this.put_part(index, offset, len, early), &self.runtime);
    }

    async fn put_part(
        self: Arc<Self>,
        index: usize,
        offset: u64,
        len: u64,
        early: bool,
    ) -> Result<(usize, PartId), Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Io)?;
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(Error::Busy);
        }
        let id = self
            .id
            .get_or_try_init(|| async {
                let id = self
                    .s3
                    .create_multipart(&self.path)
                    .await
                    .map_err(|e| map_error("upload", &self.key, e))?;
                let record = self.uploads.record(&self.path, &id).await;
                *self.record.lock().unwrap() = Some(record);
                Ok::<_, Error>(id)
            })
            .await?;
        let data = read_range(self.file.clone(), offset, len, &self.buffers).await?;
        let part = self
            .s3
            .put_part(&self.path, id, index, PutPayload::from_bytes(data))
            .await
            .map_err(|e| map_error("upload", &self.key, e))?;
        if early {
            crate::metrics::upload_part_early(&self.mount);
        }
        Ok((index, part))
    }

    fn unregister(self: &Arc<Self>) {
        if let Some(registry) = self.registry.upgrade() {
            let mut streams = registry.lock().unwrap();
            if streams.get(&self.key).is_some_and(|s| Arc::ptr_eq(s, self)) {
                streams.remove(&self.key);
            }
        }
    }

    /// Drops the stream: it never completes, and its multipart upload is aborted once the
    /// parts in flight have ended. An adopted stream is left to its upload, which sees this.
    pub fn cancel(self: &Arc<Self>) {
        self.cancelled.store(true, Ordering::SeqCst);
        let mut inner = self.inner.lock().unwrap();
        if inner.phase != Phase::Open {
            return;
        }
        inner.phase = Phase::Over;
        let parts = std::mem::take(&mut inner.parts);
        drop(inner);
        self.unregister();
        let this = self.clone();
        self.runtime.spawn(async move { this.abort(parts).await });
    }

    /// Waits for `parts` to end, then aborts the multipart upload if there is one.
    async fn abort(&self, mut parts: JoinSet<Result<(usize, PartId), Error>>) {
        while parts.join_next().await.is_some() {}
        crate::metrics::upload_stream(&self.mount, false);
        if let Some(id) = self.id.get() {
            match self.s3.abort_multipart(&self.path, id).await {
                Ok(()) => self.clear_record().await,
                // Left recorded: the next start aborts it.
                Err(e) => {
                    tracing::warn!(key = %self.key, "aborting a streamed multipart upload failed: {e}")
                }
            }
        }
    }

    /// Forgets the upload's record: it was completed or aborted.
    async fn clear_record(&self) {
        let record = self.record.lock().unwrap().take();
        if let Some(record) = record {
            record.clear().await;
        }
    }

    /// Adopts the stream for an upload of the file's first `size` bytes: uploads the parts not
    /// claimed yet and completes. False when it cannot be adopted (cancelled, parts beyond
    /// `size` claimed, a part failed): then nothing was completed, and the caller uploads the
    /// whole file itself.
    pub async fn finish(self: &Arc<Self>, size: u64) -> bool {
        self.adopted.store(true, Ordering::SeqCst);
        let sealed = {
            let mut inner = self.inner.lock().unwrap();
            if inner.phase != Phase::Open
                || self.cancelled.load(Ordering::SeqCst)
                || inner.claimed == 0
                || inner.claimed > size
                || size.div_ceil(STREAM_PART) > MAX_PARTS
            {
                None
            } else {
                inner.phase = Phase::Sealed;
                let mut offset = inner.claimed;
                while offset < size {
                    let len = STREAM_PART.min(size - offset);
                    self.spawn_part(&mut inner, offset, len, false);
                    offset += len;
                }
                Some(std::mem::take(&mut inner.parts))
            }
        };
        let Some(mut parts) = sealed else {
            self.cancel();
            return false;
        };
        self.unregister();

        let count = size.div_ceil(STREAM_PART) as usize;
        let mut ids: Vec<Option<PartId>> = vec![None; count];
        let mut failed = false;
        while let Some(joined) = parts.join_next().await {
            match joined {
                Ok(Ok((index, part))) => ids[index] = Some(part),
                _ => failed = true,
            }
        }
        let ids: Option<Vec<PartId>> = ids.into_iter().collect();
        let completed = match (failed || self.cancelled.load(Ordering::SeqCst), ids) {
            (false, Some(ids)) => {
                let id = self.id.get().expect("a part created the upload");
                match self.s3.complete_multipart(&self.path, id, ids).await {
                    Ok(_) => {
                        self.clear_record().await;
                        true
                    }
                    Err(e) => {
                        map_error("upload", &self.key, e);
                        false
                    }
                }
            }
            _ => false,
        };
        self.inner.lock().unwrap().phase = Phase::Over;
        if completed {
            crate::metrics::upload_stream(&self.mount, true);
            tracing::debug!(key = %self.key, size, "completed a streamed upload");
        } else {
            self.abort(JoinSet::new()).await;
        }
        completed
    }

    /// True once an upload adopted this stream (whatever came of it).
    pub fn adopted(&self) -> bool {
        self.adopted.load(Ordering::SeqCst)
    }
}
