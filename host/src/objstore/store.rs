//! One mount's S3 bucket, as the host reaches it with `object_store`.
//!
//! `BlobStore` owns the signed client for the bucket a mount grants, confines every key to the
//! grant's prefix, retries transient failures (object_store's retry policy, bounded so an outage
//! answers within seconds rather than minutes), and maps failures onto the plugin interface's
//! errors. Keys ending in "/" (directory markers) cannot be named by `object_store` paths; they
//! go through `markers`, which signs its requests with the same credentials, and so do
//! listings. Every key, the plugin's and the bucket's alike, must be a key a file system can
//! show (`keys::valid_key`): a listed key that is not ("a/../b/", "a//b", a segment over 255
//! bytes) is left out of the page, so it can neither escape the mount nor fail its directory.
//! Uploads of staged files are in `upload`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};

use super::credentials::Credentials;
use super::faults::FaultyStore;
use super::keys::{full_key, valid_key};
use super::markers::Markers;
use super::stream::Registry;
use super::upload_log::UploadLog;
use crate::config::S3Grant;
use crate::wit_types::{Error, Timestamp};

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

/// The requests the host makes of a bucket, as `object_store` has them: its S3 client, or the
/// failure-injecting one around it (`faults`).
pub(super) trait Client: ObjectStore + MultipartStore {}

impl<T: ObjectStore + MultipartStore> Client for T {}

pub struct BlobStore {
    pub(super) s3: Arc<dyn Client>,
    markers: Markers,
    /// "" or a prefix ending in "/".
    prefix: String,
    /// Where the bucket is, for messages.
    pub describe: String,
    /// Streaming uploads of files still being written, by the key they are meant for.
    pub(super) streams: Registry,
    /// The multipart uploads started and not yet completed or aborted.
    pub(super) uploads: Arc<UploadLog>,
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
            .with_client_options(client_options(grant));
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
        let markers = Markers::new(grant, endpoint, credentials, client_options(grant))?;
        Ok(BlobStore {
            describe: format!("s3://{bucket}/{prefix} at {}", endpoint.unwrap_or("AWS")),
            s3: Arc::new(s3),
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

    /// From now on, the requests of the grant's fault plan (`s3.faults`, a testing knob) fail,
    /// wait or hang as it says; called once the startup checks have passed, so that the plan
    /// is about serving.
    pub fn inject_faults(&mut self, grant: &S3Grant) {
        if let Some(plan) = &grant.faults {
            tracing::warn!(store = %self.describe, ?plan, "object-store requests will fail on purpose (`s3.faults`)");
            let timeout = Duration::from_millis(grant.request_timeout_ms);
            self.s3 = Arc::new(FaultyStore::new(self.s3.clone(), plan.clone(), timeout));
        }
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

    pub(super) fn path(&self, key: &str) -> Result<ObjectPath, Error> {
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

pub(super) fn client_options(grant: &S3Grant) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(grant.allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_millis(grant.request_timeout_ms))
}
