//! One mount's S3 bucket, as the host reaches it with `object_store`.
//!
//! `BlobStore` owns the signed client for the bucket a mount grants, confines every key to the
//! grant's prefix, retries transient failures (object_store's retry policy, bounded so an outage
//! answers within seconds rather than minutes), and maps failures onto the plugin interface's
//! errors. Keys ending in "/" (directory markers) cannot be named by `object_store` paths; they
//! go through `markers`, which signs its requests with the same credentials.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::credentials::Credentials;
use super::markers::Markers;
use super::stream::{Registry, Stream};
use crate::buffer_pool::BufferPool;
use crate::config::S3Grant;
use crate::copy_file::{CopyFile, ALIGN};
use crate::plugin::bindings::types::{Error, Timestamp};

/// Objects at most this large are uploaded with one PUT; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 8 << 20;
/// The smallest part of a multipart upload, and S3's part-count limit.
const MIN_PART: u64 = 8 << 20;
pub(super) const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once.
pub(super) const UPLOAD_CONCURRENCY: usize = 8;

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
    /// references.
    pub fn new(grant: &S3Grant, credentials: Credentials) -> anyhow::Result<BlobStore> {
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
        })
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
        let opts = PaginatedListOptions {
            delimiter: Some("/".into()),
            max_keys: Some(1),
            ..Default::default()
        };
        match self.s3.list_paginated(Some(&self.prefix), opts).await {
            Ok(_) => Ok(()),
            Err(e) => anyhow::bail!("{} cannot be listed: {e}", self.describe),
        }
    }

    /// The full key of a plugin's key; refuses keys that are no keys.
    fn full(&self, key: &str) -> Result<String, Error> {
        let body = key.strip_suffix('/').unwrap_or(key);
        if key.is_empty() || key.starts_with('/') || body.split('/').any(str::is_empty) {
            return Err(Error::Invalid);
        }
        Ok(format!("{}{key}", self.prefix))
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

    pub async fn list(
        &self,
        prefix: &str,
        recursive: bool,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page, Error> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let opts = PaginatedListOptions {
            delimiter: (!recursive).then(|| "/".into()),
            max_keys: Some(limit.clamp(1, 1000) as usize),
            page_token: cursor,
            ..Default::default()
        };
        let page = self
            .s3
            .list_paginated(Some(&full_prefix), opts)
            .await
            .map_err(|e| map_error("list", prefix, e))?;
        // object_store drops a key's trailing "/": the object that comes back as the listed
        // prefix itself is that prefix's directory marker.
        let marker = full_prefix.strip_suffix('/');
        let objects = page
            .result
            .objects
            .into_iter()
            .map(|m| {
                let is_marker = Some(m.location.as_ref()) == marker;
                let mut meta = self.meta(m);
                if is_marker {
                    meta.key.push('/');
                }
                meta
            })
            .collect();
        let prefixes = page
            .result
            .common_prefixes
            .into_iter()
            .map(|p| format!("{}/", self.relative(p.as_ref())))
            .collect();
        Ok(Page {
            objects,
            prefixes,
            next: page.page_token,
        })
    }

    pub async fn head(&self, key: &str) -> Result<Meta, Error> {
        if key.ends_with('/') {
            // A marker sorts first among the keys under its prefix, so a one-key listing finds
            // it (some servers cannot HEAD a key ending in "/").
            self.full(key)?;
            let page = self.list(key, false, None, 1).await?;
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
        mut buf: Vec<u8>,
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
                buf.reserve_exact(len.min(meta.size.saturating_sub(offset)) as usize);
                let mut body = result.into_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| map_error("get", key, e))?;
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
        let part = MIN_PART.max(size.div_ceil(MAX_PARTS));
        let upload = self
            .s3
            .put_multipart(&path)
            .await
            .map_err(|e| map_error("upload", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part as usize);
        let buffers = part_buffers(part);
        let mut offset = 0;
        while offset < size {
            let n = part.min(size - offset);
            let chunk = match read_range(file.clone(), offset, n, &buffers).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                return Err(map_error("upload", key, e));
            }
            writer.put(chunk);
            offset += n;
        }
        writer
            .finish()
            .await
            .map_err(|e| map_error("upload", key, e))?;
        self.head(key).await
    }

    /// Starts a streaming multipart upload of `file`, which is being written, for `key`
    /// (see `stream`); `mount` names it in metrics. None when the key is no key or no runtime
    /// runs. A stream already started for the key is cancelled.
    pub fn start_stream(&self, key: &str, file: Arc<CopyFile>, mount: &str) -> Option<Arc<Stream>> {
        let path = self.path(key).ok()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let stream = Arc::new(Stream::new(
            self.s3.clone(),
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
    BufferPool::new((UPLOAD_CONCURRENCY + 1) * (part as usize + 2 * ALIGN))
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
