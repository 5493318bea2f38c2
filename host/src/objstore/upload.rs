//! Uploads of staged files: one PUT for a small file, else a multipart upload whose parts are
//! read from the file as they are sent, a few at a time within a memory bound, with holes of a
//! sparse file sent as zeros without reading them; a streamed upload started while the file
//! was written (`stream`) is adopted when it can be. The object appears whole at completion
//! or not at all; an upload that fails is aborted, or left recorded in the upload log for the
//! next start to abort.

use std::sync::Arc;

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartId, ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

use super::store::{map_error, BlobStore, Meta};
use super::stream::Stream;
use crate::buffer_pool::BufferPool;
use crate::copy_file::{CopyFile, ALIGN};
use crate::wit_types::Error;

/// Objects at most this large are uploaded with one PUT; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 8 << 20;
/// The smallest part of a multipart upload, and S3's part-count limit.
const MIN_PART: u64 = 8 << 20;
pub(super) const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once, at most.
pub(super) const UPLOAD_CONCURRENCY: usize = 8;

/// S3's largest part.
const MAX_PART: u64 = 5 << 30;
/// Bytes of parts one upload holds in memory at once, unless one part is larger.
const IN_FLIGHT_BYTES: u64 = 256 << 20;

/// The part size of a multipart upload of `size` bytes: the smallest that stays within S3's
/// part count. `TooBig` when even S3's largest parts cannot hold the file.
pub(super) fn part_size(size: u64) -> Result<u64, Error> {
    let part = MIN_PART
        .max(size.div_ceil(MAX_PARTS))
        .next_multiple_of(ALIGN as u64);
    if part > MAX_PART {
        return Err(Error::TooBig);
    }
    Ok(part)
}

/// Parts of this size sent at once: as many as `IN_FLIGHT_BYTES` holds, at least one.
pub(super) fn concurrency(part: u64) -> usize {
    (IN_FLIGHT_BYTES / part.max(1)).clamp(1, UPLOAD_CONCURRENCY as u64) as usize
}

impl BlobStore {
    /// Uploads `size` bytes of `file` under `key`: one PUT when small, else a multipart upload
    /// with parts read from the file as they are sent.
    ///
    /// A stream started for this key and this staged file (`start_stream`) is adopted: only
    /// its unclaimed parts are uploaded then. When it cannot be, the whole file is uploaded.
    pub async fn upload(&self, key: &str, file: Arc<CopyFile>, size: u64) -> Result<Meta, Error> {
        let path = self.path(key)?;
        let stream = {
            let mut streams = self.streams.lock().unwrap();
            let ours = streams
                .get(key)
                .is_some_and(|s| Arc::ptr_eq(s.file(), &file));
            if ours {
                streams.remove(key)
            } else {
                None
            }
        };
        if let Some(stream) = stream {
            if stream.finish(size).await {
                return self.head(key).await;
            }
            tracing::info!(
                key,
                "a streamed upload could not be used; uploading the whole file"
            );
        }
        if size <= SINGLE_PUT_MAX {
            let data = read_range(file, 0, size, &BufferPool::new(0)).await?;
            self.s3
                .put(&path, PutPayload::from_bytes(data))
                .await
                .map_err(|e| map_error("upload", key, e))?;
            return self.head(key).await;
        }
        let part = part_size(size)?;
        let id = self
            .s3
            .create_multipart(&path)
            .await
            .map_err(|e| map_error("upload", key, e))?;
        let record = self.uploads.record(&path, &id).await;
        match self.upload_parts(key, &path, &id, file, size, part).await {
            Ok(()) => record.clear().await,
            Err(e) => {
                match self.s3.abort_multipart(&path, &id).await {
                    Ok(()) => record.clear().await,
                    // Left recorded: the next start aborts it.
                    Err(abort) => {
                        tracing::warn!(key, "aborting a failed multipart upload failed: {abort}")
                    }
                }
                return Err(e);
            }
        }
        self.head(key).await
    }

    /// Sends `file`'s first `size` bytes as the parts of upload `id`, a few at a time, and
    /// completes it; the object appears whole at completion or not at all.
    async fn upload_parts(
        &self,
        key: &str,
        path: &ObjectPath,
        id: &MultipartId,
        file: Arc<CopyFile>,
        size: u64,
        part: u64,
    ) -> Result<(), Error> {
        let buffers = part_buffers(part);
        // Parts in holes of a sparse file are sent from these zeros (calloc'd: pages the
        // kernel maps as zero until written), not read.
        let zeros = Bytes::from(vec![0; part as usize]);
        let count = size.div_ceil(part) as usize;
        let mut parts: Vec<Option<PartId>> = vec![None; count];
        let mut in_flight = JoinSet::new();
        let sent = |joined: Option<Result<Result<(usize, PartId), object_store::Error>, _>>,
                    parts: &mut Vec<Option<PartId>>| {
            match joined {
                Some(Ok(Ok((index, part)))) => {
                    parts[index] = Some(part);
                    Ok(())
                }
                Some(Ok(Err(e))) => Err(map_error("upload", key, e)),
                Some(Err(_)) | None => Err(Error::Io),
            }
        };
        for index in 0..count {
            while in_flight.len() >= concurrency(part) {
                sent(in_flight.join_next().await, &mut parts)?;
            }
            let offset = index as u64 * part;
            let n = part.min(size - offset);
            let chunk = read_part(file.clone(), offset, n, &buffers, &zeros).await?;
            let (s3, path, id) = (self.s3.clone(), path.clone(), id.clone());
            in_flight.spawn(async move {
                let payload = PutPayload::from_bytes(chunk);
                s3.put_part(&path, &id, index, payload)
                    .await
                    .map(|part| (index, part))
            });
        }
        while !in_flight.is_empty() {
            sent(in_flight.join_next().await, &mut parts)?;
        }
        let parts = parts
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::Io)?;
        self.s3
            .complete_multipart(path, id, parts)
            .await
            .map_err(|e| map_error("upload", key, e))?;
        Ok(())
    }

    /// Starts a streaming multipart upload of `file`, which is being written, for `key`
    /// (see `stream`); `mount` names it in metrics. None when the key is no key or no runtime
    /// runs. A stream already started for the key is cancelled.
    pub fn start_stream(&self, key: &str, file: Arc<CopyFile>, mount: &str) -> Option<Arc<Stream>> {
        let path = self.path(key).ok()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let stream = Arc::new(Stream::new(
            self.s3.clone(),
            self.uploads.clone(),
            key,
            path,
            file,
            mount,
            runtime,
            &self.streams,
        ));
        let old = self
            .streams
            .lock()
            .unwrap()
            .insert(key.to_string(), stream.clone());
        if let Some(old) = old {
            old.cancel();
        }
        Some(stream)
    }
}

/// A pool for the parts of one upload: it keeps as many as are sent at once, and one more.
pub(super) fn part_buffers(part: u64) -> Arc<BufferPool> {
    BufferPool::new((concurrency(part) + 1) * (part as usize + 2 * ALIGN))
}

/// Reads a part of a staged file on a blocking thread, into a buffer of `buffers`; a part
/// that lies in a hole of the file is a slice of `zeros` instead, and is not read.
async fn read_part(
    file: Arc<CopyFile>,
    offset: u64,
    len: u64,
    buffers: &Arc<BufferPool>,
    zeros: &Bytes,
) -> Result<Bytes, Error> {
    let in_hole = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || is_hole(file.file(), offset, len))
            .await
            .map_err(|_| Error::Io)?
    };
    if in_hole && len <= zeros.len() as u64 {
        return Ok(zeros.slice(..len as usize));
    }
    read_range(file, offset, len, buffers).await
}

/// Whether the `len` bytes at `offset` are a hole: the file stores no data there.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn is_hole(file: &std::fs::File, offset: u64, len: u64) -> bool {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
        Ok(data) => data >= offset.saturating_add(len),
        // No data at or after `offset`.
        Err(e) => e == rustix::io::Errno::NXIO,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn is_hole(_file: &std::fs::File, _offset: u64, _len: u64) -> bool {
    false
}

/// Reads a range of a staged file on a blocking thread, into a buffer of `buffers`.
pub(super) async fn read_range(
    file: Arc<CopyFile>,
    offset: u64,
    len: u64,
    buffers: &Arc<BufferPool>,
) -> Result<Bytes, Error> {
    let buffers = buffers.clone();
    tokio::task::spawn_blocking(move || {
        file.read_range(offset, len as usize, &buffers)
            .map_err(|e| {
                tracing::error!("reading a staged file failed: {e}");
                Error::Io
            })
    })
    .await
    .map_err(|_| Error::Io)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3s_limits_and_memory_stays_bounded() {
        assert_eq!(part_size(100 << 20).unwrap(), MIN_PART);
        for size in [5u64 << 40, 1 << 44, (MAX_PART - ALIGN as u64) * MAX_PARTS] {
            let part = part_size(size).unwrap();
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size}: {part}");
            assert!(
                part <= MAX_PART && part.is_multiple_of(ALIGN as u64),
                "{size}: {part}"
            );
            assert_eq!(concurrency(part), 1, "one huge part in memory at a time");
        }
        assert_eq!(part_size(u64::MAX), Err(Error::TooBig));
        assert_eq!(part_size(MAX_PART * MAX_PARTS + 1), Err(Error::TooBig));
        assert_eq!(concurrency(MIN_PART), UPLOAD_CONCURRENCY);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn holes_are_told_from_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let copy = CopyFile::open(&path, true).unwrap();
        copy.file().set_len(64 << 20).unwrap();
        copy.write_all_at(&[7; 4096], 32 << 20).unwrap();
        copy.file().sync_all().unwrap();
        assert!(is_hole(copy.file(), 0, 16 << 20));
        assert!(!is_hole(copy.file(), 16 << 20, (16 << 20) + 1));
        assert!(!is_hole(copy.file(), 32 << 20, 4096));
        assert!(
            is_hole(copy.file(), 48 << 20, 16 << 20),
            "the hole at the end"
        );
    }
}
