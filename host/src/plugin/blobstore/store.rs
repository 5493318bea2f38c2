//! One mount's S3 bucket, as the host reaches it with `object_store`.
//!
//! `BlobStore` owns the signed client for the bucket a mount grants, confines every key to the
//! grant's prefix, retries transient failures (object_store's retry policy, bounded so an outage
//! answers within seconds rather than minutes), and maps failures onto the plugin interface's
//! errors. Keys ending in "/" (directory markers) cannot be named by `object_store` paths; they
//! go through `markers`, which signs its requests with the same credentials, and so do
//! listings. Every key, the plugin's and the bucket's alike, must be a key a file system can
//! show (`valid_key`): a listed key that is not ("a/../b/", "a//b", a segment over 255 bytes)
//! is left out of the page, so it can neither escape the mount nor fail its directory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartId, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig,
};
use tokio::task::JoinSet;

use super::credentials::Credentials;
use super::markers::Markers;
use super::stream::{Registry, Stream};
use super::upload_log::UploadLog;
use crate::buffer_pool::BufferPool;
use crate::config::S3Grant;
use crate::copy_file::{CopyFile, ALIGN};
use crate::plugin::bindings::types::{Error, Timestamp};

/// Objects at most this large are uploaded with one PUT; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 8 << 20;
/// The smallest part of a multipart upload, and S3's part-count limit.
const MIN_PART: u64 = 8 << 20;
pub(super) const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once, at most.
pub(super) const UPLOAD_CONCURRENCY: usize = 8;
/// The longest segment of a key: the longest name NFS clients take.
const MAX_SEGMENT: usize = 255;
/// The longest key S3 stores.
const MAX_KEY: usize = 1024;

/// Whether `key` (a directory's ending in "/") is a path of names: not empty, no empty, "."
/// or ".." segment, no NUL, no segment over `MAX_SEGMENT` bytes, at most `MAX_KEY` bytes.
pub(super) fn valid_key(key: &str) -> bool {
    let body = key.strip_suffix('/').unwrap_or(key);
    !body.is_empty()
        && key.len() <= MAX_KEY
        && body.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && !segment.contains('\0')
                && segment.len() <= MAX_SEGMENT
        })
}

/// The key `key` has under `prefix`: NAMETOOLONG when S3 could not store it (the client's
/// path is longer than S3 keys go), INVAL when it is no path of names.
fn full_key(prefix: &str, key: &str) -> Result<String, Error> {
    let full = format!("{prefix}{key}");
    if full.len() > MAX_KEY {
        return Err(Error::NameTooLong);
    }
    if !valid_key(key) {
        return Err(Error::Invalid);
    }
    Ok(full)
}

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

/// What the store says of one object; keys are relative to the grant's prefix.
#[derive(Clone, Debug)]
pub struct Meta {
    pub key: String,
    pub size: u64,
    pub modified: Timestamp,
    pub etag: Option<String>,
}

/// A page of a listing.
pub struct Page {
    pub objects: Vec<Meta>,
    /// Common prefixes, each ending in "/".
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

pub struct BlobStore {
    s3: AmazonS3,
    markers: Markers,
    /// "" or a prefix ending in "/".
    prefix: String,
    /// Where the bucket is, for messages.
    pub describe: String,
    /// Streaming uploads of files still being written, by the key they are meant for.
    streams: Registry,
    /// The multipart uploads started and not yet completed or aborted.
    uploads: Arc<UploadLog>,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanoseconds: t.timestamp_subsec_nanos(),
    }
}

/// The interface's error for a store failure; the failure itself is logged.
pub fn map_error(op: &str, key: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Error::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } => Error::Exists,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            tracing::warn!(op, key, "the object store refused: {e}");
            Error::Access
        }
        E::NotSupported { .. } | E::NotImplemented { .. } => Error::NotSupported,
        e => {
            tracing::warn!(op, key, "object store request failed: {e}");
            Error::Io
        }
    }
}

impl BlobStore {
    /// Builds the client for a grant; `credentials` were resolved by the host from the grant's
    /// references, and `uploads` records the multipart uploads it starts.
    pub fn new(
        grant: &S3Grant,
        credentials: Credentials,
        uploads: UploadLog,
    ) -> anyhow::Result<BlobStore> {
        let bucket = grant.bucket.get_ref();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&grant.region)
            .with_allow_http(grant.allow_http)
            .with_virtual_hosted_style_request(!grant.path_style)
            .with_retry(retry_policy())
            .with_client_options(client_options(grant.allow_http));
        if let Some(endpoint) = &grant.endpoint {
            builder = builder.with_endpoint(endpoint.get_ref());
        }
        match &credentials {
            Credentials::Keys {
                key_id,
                secret,
                token,
            } => {
                builder = builder
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret);
                if let Some(token) = token {
                    builder = builder.with_token(token);
                }
            }
            Credentials::Anonymous => builder = builder.with_skip_signature(true),
        }
        let s3 = builder.build()?;
        let mut prefix = grant.prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let endpoint = grant.endpoint.as_ref().map(|e| e.get_ref().as_str());
        let markers = Markers::new(
            grant,
            endpoint,
            credentials,
            client_options(grant.allow_http),
        )?;
        Ok(BlobStore {
            describe: format!("s3://{bucket}/{prefix} at {}", endpoint.unwrap_or("AWS")),
            s3,
            markers,
            prefix,
            streams: Registry::default(),
            uploads: Arc::new(uploads),
        })
    }

    /// Aborts the multipart uploads that earlier runs left open (a crash, a kill): their parts
    /// would otherwise stay in the bucket, unseen and billed. One that cannot be aborted now
    /// stays recorded for the next start. Answers how many were aborted.
    pub async fn abort_leftover_uploads(&self) -> usize {
        let mut aborted = 0;
        for left in self.uploads.leftovers().await {
            match self.s3.abort_multipart(&left.path, &left.id).await {
                // An upload the store no longer knows was completed or aborted already.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    left.record.clear().await;
                    aborted += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %left.path, "cannot abort a multipart upload left open by an earlier run; trying again at the next start: {e}");
                }
            }
        }
        if aborted > 0 {
            tracing::info!(store = %self.describe, aborted, "aborted multipart uploads left open by an earlier run");
        }
        aborted
    }

    /// Checks at startup that the bucket answers and takes the credentials, with a message that
    /// says what is wrong.
    pub async fn verify(&self) -> anyhow::Result<()> {
        // A HEAD of a key nobody uses tells refused credentials (401/403) from the rest.
        let probe = ObjectPath::from(format!("{}.nfsgw-probe", self.prefix));
        match self.s3.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(object_store::Error::Unauthenticated { source, .. })
            | Err(object_store::Error::PermissionDenied { source, .. }) => {
                anyhow::bail!("{} refused the credentials: {source}", self.describe)
            }
            Err(e) => anyhow::bail!("{} cannot be reached: {e}", self.describe),
        }
        match self
            .markers
            .list(&self.prefix, false, None, 1, |_| true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => anyhow::bail!("{} cannot be listed: {e:?}", self.describe),
        }
    }

    /// The full key of a plugin's key; refuses keys that are no keys.
    fn full(&self, key: &str) -> Result<String, Error> {
        full_key(&self.prefix, key)
    }

    fn path(&self, key: &str) -> Result<ObjectPath, Error> {
        ObjectPath::parse(self.full(key)?).map_err(|_| Error::Invalid)
    }

    /// A key of the store made relative to the grant's prefix.
    fn relative(&self, full: &str) -> String {
        full.strip_prefix(&self.prefix).unwrap_or(full).to_string()
    }

    fn meta(&self, m: object_store::ObjectMeta) -> Meta {
        Meta {
            key: self.relative(m.location.as_ref()),
            size: m.size,
            modified: timestamp(m.last_modified),
            etag: m.e_tag,
        }
    }

    /// One page of the keys under `prefix`, with each piece of the page's body admitted by
    /// `admit` first (see `Markers::list`). Keys that are not `valid_key`s are left out.
    pub async fn list(
        &self,
        prefix: &str,
        recursive: bool,
        cursor: Option<String>,
        limit: u32,
        admit: impl FnMut(usize) -> bool,
    ) -> Result<Page, Error> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let page = self
            .markers
            .list(
                &full_prefix,
                recursive,
                cursor.as_deref(),
                limit.clamp(1, 1000),
                admit,
            )
            .await?;
        let mut skipped = Vec::new();
        let mut keep = |full: String| {
            let key = full.strip_prefix(&self.prefix).map(str::to_string);
            match key {
                Some(key) if valid_key(&key) => Some(key),
                _ => {
                    skipped.push(full);
                    None
                }
            }
        };
        let objects = page
            .objects
            .into_iter()
            .filter_map(|o| {
                Some(Meta {
                    key: keep(o.key)?,
                    size: o.size,
                    modified: timestamp(o.modified),
                    etag: o.etag,
                })
            })
            .collect();
        let prefixes = page.prefixes.into_iter().filter_map(&mut keep).collect();
        if !skipped.is_empty() {
            tracing::warn!(
                bucket = %self.describe,
                count = skipped.len(),
                first = ?skipped[0],
                "keys that are no file names were left out of a listing"
            );
        }
        Ok(Page {
            objects,
            prefixes,
            next: page.next,
        })
    }

    pub async fn head(&self, key: &str) -> Result<Meta, Error> {
        if key.ends_with('/') {
            // A marker sorts first among the keys under its prefix, so a one-key listing finds
            // it (some servers cannot HEAD a key ending in "/").
            self.full(key)?;
            let page = self.list(key, false, None, 1, |_| true).await?;
            return page
                .objects
                .into_iter()
                .find(|m| m.key == key)
                .ok_or(Error::NotFound);
        }
        let m = self
            .s3
            .head(&self.path(key)?)
            .await
            .map_err(|e| map_error("head", key, e))?;
        Ok(self.meta(m))
    }

    /// Up to `len` bytes from `offset`, appended to `buf` as the body arrives, and what the
    /// store says of the object. A range past the end is empty.
    pub async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: Vec<u8>,
    ) -> Result<(Vec<u8>, Meta), Error> {
        self.get_admitted(key, offset, len, buf, |_| true).await
    }

    /// `get_range`, with the bytes to hold admitted by `admit` (given the total) before they
    /// are allocated: `TooBig` when it refuses.
    pub async fn get_admitted(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        mut buf: Vec<u8>,
        mut admit: impl FnMut(usize) -> bool,
    ) -> Result<(Vec<u8>, Meta), Error> {
        let path = self.path(key)?;
        if len == 0 {
            return Ok((buf, self.head(key).await?));
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(offset..offset.saturating_add(len))),
            ..Default::default()
        };
        match self.s3.get_opts(&path, opts).await {
            Ok(result) => {
                let meta = self.meta(result.meta.clone());
                let expected = len.min(meta.size.saturating_sub(offset));
                let expected = usize::try_from(expected).unwrap_or(usize::MAX);
                if !admit(buf.len().saturating_add(expected)) {
                    return Err(Error::TooBig);
                }
                buf.reserve_exact(expected);
                let mut body = result.into_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| map_error("get", key, e))?;
                    if !admit(buf.len() + chunk.len()) {
                        return Err(Error::TooBig);
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok((buf, meta))
            }
            // S3 refuses (416) a range that starts at or after the end: that is an empty read
            // at EOF, which only the object's size can tell from a real failure.
            Err(object_store::Error::Generic { source, .. }) => {
                let meta = self.head(key).await?;
                if offset >= meta.size {
                    Ok((buf, meta))
                } else {
                    tracing::warn!(key, "ranged get failed: {source}");
                    Err(Error::Io)
                }
            }
            Err(e) => Err(map_error("get", key, e)),
        }
    }

    pub async fn put(&self, key: &str, data: Bytes, exclusive: bool) -> Result<Meta, Error> {
        if key.ends_with('/') {
            let full = self.full(key)?;
            if exclusive && self.head(key).await.is_ok() {
                return Err(Error::Exists);
            }
            self.markers.put_empty(&full).await?;
            // Not read back: some servers (s3s-fs) store markers but never list them.
            return Ok(Meta {
                key: key.to_string(),
                size: 0,
                modified: timestamp(chrono::Utc::now()),
                etag: None,
            });
        }
        let path = self.path(key)?;
        let opts = PutOptions {
            mode: if exclusive {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..Default::default()
        };
        self.s3
            .put_opts(&path, PutPayload::from_bytes(data), opts)
            .await
            .map_err(|e| map_error("put", key, e))?;
        self.head(key).await
    }

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

    pub async fn copy(&self, source: &str, destination: &str) -> Result<(), Error> {
        if source.ends_with('/') || destination.ends_with('/') {
            if !(source.ends_with('/') && destination.ends_with('/')) {
                return Err(Error::Invalid);
            }
            // A marker has no content: copying it is making the other one.
            self.head(source).await?;
            return self.markers.put_empty(&self.full(destination)?).await;
        }
        self.s3
            .copy(&self.path(source)?, &self.path(destination)?)
            .await
            .map_err(|e| map_error("copy", source, e))
    }

    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        if key.ends_with('/') {
            return self.markers.delete(&self.full(key)?).await;
        }
        match self.s3.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error("delete", key, e)),
        }
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

/// Transient failures are retried for a few seconds: long enough to ride out a blip, short
/// enough that a client hears of an outage (staged data stays staged and is retried later).
fn retry_policy() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(15),
    }
}

pub(super) fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_paths_of_names() {
        for good in [
            "a",
            "a/b.txt",
            "a/b/",
            "dir/",
            "a/.hidden",
            "a/...",
            &"n".repeat(255),
        ] {
            assert!(valid_key(good), "{good:?} refused");
        }
        let long_segment = format!("a/{}", "n".repeat(256));
        let long_key = "abcdefgh/".repeat(114);
        for bad in [
            "",
            "/",
            "/a",
            "a//b",
            "a//b/",
            "a/../b/",
            "../",
            "a/./",
            ".",
            "a/..",
            "a\0b",
            &long_segment,
            &long_key,
        ] {
            assert!(!valid_key(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_path_longer_than_s3_keys_is_a_name_too_long() {
        let fits = "abcdefgh/".repeat(113) + "x";
        assert_eq!(full_key("p/", &fits), Ok(format!("p/{fits}")));
        let over = "abcdefgh/".repeat(114);
        assert_eq!(full_key("", &over), Err(Error::NameTooLong));
        assert_eq!(
            full_key(&"p".repeat(1020), "abcde"),
            Err(Error::NameTooLong)
        );
        assert_eq!(full_key("p/", "a//b"), Err(Error::Invalid));
    }

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
