//! Writing file data: WRITE and COMMIT go straight to the backend, or, for backends that take
//! whole files (`staged-writes`), into the file's staged copy (filled from the backend first),
//! which the flusher hands to the backend's `commit` once the file has been idle for the
//! mount's flush delay, and `flush_all` at shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::handles::split;
use super::staging::Staged;
use super::{
    blocking, parent_of, permissions, regular_file, Caller, FileId, Gateway, Mount, STREAM_LAG,
};
use crate::backend::types::{Attrs, Capabilities, Error, FileKind};
use crate::buffer_pool::BufferPool;

impl Gateway {
    pub async fn write(
        &self,
        caller: &Caller,
        id: FileId,
        offset: u64,
        data: Bytes,
    ) -> Result<Attrs, Error> {
        let (_, mount, path) = self.mount_of(id).await?;
        mount.allow(Capabilities::WRITE)?;
        let current = self.getattr(id).await?;
        regular_file(&current)?;
        permissions::write(caller, &current)?;
        mount.check_size(offset.checked_add(data.len() as u64).ok_or(Error::TooBig)?)?;
        let ino = split(id).1;
        if mount.staging.is_some() {
            // The key and mount name are only needed (and copied) when parts may stream.
            let streaming = mount
                .streaming()
                .map(|store| (store, path.to_string(), mount.name.clone()));
            return self
                .staged_change(mount, ino, &path, current, move |staged| {
                    staged.write(offset, &data)?;
                    if let Some((store, key, name)) = &streaming {
                        let part = crate::objstore::STREAM_PART;
                        staged.stream_step(part, STREAM_LAG, || {
                            store.start_stream(key, staged.file.clone(), name)
                        });
                    }
                    Ok(())
                })
                .await;
        }
        let attrs = mount.backend.write(&path, offset, data).await?;
        mount.attrs.put(ino, attrs.clone());
        Ok(attrs)
    }

    /// Changes a file's staged copy, staging it first (with the backend's content, unless the
    /// change truncates to nothing), and answers the file's attributes afterwards.
    pub(super) async fn staged_change<F>(
        &self,
        mount: &Mount,
        ino: u64,
        path: &str,
        current: Attrs,
        change: F,
    ) -> Result<Attrs, Error>
    where
        F: Fn(&Staged) -> Result<(), Error> + Send + Sync + 'static,
    {
        if current.kind != FileKind::Regular {
            return Err(Error::Invalid);
        }
        let staging = mount.staging.as_ref().ok_or(Error::NotSupported)?;
        let change = Arc::new(change);
        // A copy let go by an upload finishing meanwhile is staged afresh, once.
        for _ in 0..2 {
            let staged = staging.begin(ino, current.size).await?;
            let filled = staged
                .filled
                .get_or_try_init(|| Self::fill(mount, path, &staged));
            match filled.await {
                Ok(()) => {}
                // Let go meanwhile (removed, or its fill failed for another writer).
                Err(Error::Stale) => continue,
                Err(e) => {
                    staging.abandon(&staged).await;
                    return Err(e);
                }
            }
            let (copy, change) = (staged.clone(), change.clone());
            match blocking(move || change(&copy)).await {
                Err(Error::Stale) => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    let attrs = staged.overlay(current);
                    mount.attrs.put(ino, attrs.clone());
                    return Ok(attrs);
                }
            }
        }
        Err(Error::Busy)
    }

    /// Copies a file's content from the backend into its new staged copy.
    async fn fill(mount: &Mount, path: &str, staged: &Arc<Staged>) -> Result<(), Error> {
        const CHUNK: u32 = 4 << 20;
        let size = staged.backend_len;
        let buffers = BufferPool::new(CHUNK as usize);
        let mut offset = 0;
        while offset < size {
            let (bytes, eof) =
                Self::read_backend(mount, path, offset, CHUNK, &buffers, None).await?;
            let n = bytes.len() as u64;
            let copy = staged.clone();
            blocking(move || copy.write(offset, &bytes)).await?;
            offset += n;
            if eof || n == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Makes what was written to a file durable.
    pub async fn sync(&self, id: FileId) -> Result<(), Error> {
        let (_, mount, path) = self.mount_of(id).await?;
        mount.allow(Capabilities::WRITE)?;
        regular_file(&self.getattr(id).await?)?;
        if mount.staging.is_some() {
            // Staged data is durable once on the local disk; the upload follows.
            return match mount.staged(split(id).1) {
                Some(staged) => blocking(move || staged.sync()).await,
                None => Ok(()),
            };
        }
        mount.backend.sync(&path).await
    }

    /// Uploads one staged copy through the plugin's `commit`. True when the backend now holds
    /// the file's latest data and the copy was let go.
    async fn flush_staged(&self, mount: &Mount, staged: Arc<Staged>) -> Result<bool, Error> {
        let staging = mount.staging.as_ref().ok_or(Error::NotSupported)?;
        let _uploading = staged.upload.lock().await;
        if staged.is_retired() {
            // Another flush uploaded it while this one waited for the lock.
            return Ok(true);
        }
        let (size, generation) = staged.snapshot();
        let Some(path) = mount.inodes.path(staged.ino).await? else {
            tracing::warn!(mount = %mount.name, ino = staged.ino, "a staged file has no name any more; its data is dropped");
            staging.discard(staged.ino).await;
            return Ok(true);
        };
        let copy = staged.clone();
        if let Err(e) = blocking(move || copy.sync()).await {
            staging.failed(&staged);
            return Err(e);
        }
        let started = std::time::Instant::now();
        let streamed = staged.stream();
        let committed = mount.backend.commit(&path, staged.file.clone(), size).await;
        // The stream ends with the flush; later writes may start another.
        if let Some(stream) = staged.take_stream() {
            let unused = streamed.is_some_and(|s| Arc::ptr_eq(&s, &stream)) && !stream.adopted();
            stream.cancel();
            if unused && committed.is_ok() && !mount.streaming_off.swap(true, Ordering::Relaxed) {
                tracing::info!(mount = %mount.name, path = %path, "the plugin did not upload the file under its path; no more early uploads on this mount");
            }
        }
        match committed {
            Ok(attrs) => {
                let done = staging.uploaded(&staged, generation).await;
                tracing::info!(mount = %mount.name, path = %path, size, elapsed_ms = started.elapsed().as_millis() as u64, "uploaded");
                if done {
                    mount.attrs.put(staged.ino, attrs);
                } else {
                    mount.attrs.invalidate(staged.ino);
                }
                // A directory whose number cannot be read has nothing cached to change.
                let dir_path = parent_of(&path);
                if let Ok(dir) = mount.inodes.ino(dir_path).await {
                    Self::dir_changed(mount, dir, None);
                }
                Ok(done)
            }
            Err(e) => {
                let failures = staging.failed(&staged);
                crate::metrics::upload_failed(&mount.name);
                tracing::warn!(mount = %mount.name, path = %path, size, failures, error = ?e, "upload failed; the data stays staged and is tried again");
                Err(e)
            }
        }
    }

    /// Uploads what has been idle for its mount's flush delay; runs until the process ends.
    /// It sleeps until the next copy is due, and looks again at least every 200 ms for copies
    /// made meanwhile.
    pub async fn run_flusher(self: Arc<Self>) {
        const LOOK_AGAIN: Duration = Duration::from_millis(200);
        loop {
            let now = tokio::time::Instant::now();
            let next = self
                .mounts
                .iter()
                .filter_map(|m| m.staging.as_ref()?.next_due())
                .min()
                .map_or(now + LOOK_AGAIN, tokio::time::Instant::from_std);
            let wake = next.clamp(now + Duration::from_millis(1), now + LOOK_AGAIN);
            tokio::time::sleep_until(wake).await;
            for index in 0..self.mounts.len() {
                let Some(staging) = &self.mounts[index].staging else {
                    continue;
                };
                crate::metrics::flush_queue_set(&self.mounts[index].name, staging.pending().0);
                for staged in staging.due() {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _ = this.flush_staged(&this.mounts[index], staged).await;
                    });
                }
            }
        }
    }

    /// Staged files and bytes not yet uploaded, over every mount.
    pub fn pending_uploads(&self) -> (usize, u64) {
        self.mounts
            .iter()
            .map(Mount::pending_uploads)
            .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2))
    }

    /// Uploads every staged copy now, each tried up to `attempts` times. Returns how many
    /// files are still staged (they stay on disk and are uploaded at the next start).
    pub async fn flush_all(&self, attempts: u32) -> usize {
        for attempt in 1..=attempts {
            let mut failed = 0;
            for mount in &self.mounts {
                let Some(staging) = &mount.staging else {
                    continue;
                };
                for staged in staging.all() {
                    if self.flush_staged(mount, staged).await.is_err() {
                        failed += 1;
                    }
                }
            }
            let (left, bytes) = self.pending_uploads();
            if left == 0 {
                return 0;
            }
            tracing::warn!(
                attempt,
                failed,
                left,
                bytes,
                "staged files are still waiting for upload"
            );
            if attempt < attempts {
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
            }
        }
        self.pending_uploads().0
    }
}
