//! The requests `object_store` cannot make for us, sent over its HTTP client and signed by its
//! SigV4 authorizer with the mount's credentials.
//!
//! Directory markers are the zero-byte objects whose keys end in "/" ("photos/") that S3 tools
//! make for empty directories; `object_store` paths cannot end in "/", so their PUT and DELETE
//! are made here. Listings are made here too (ListObjectsV2), because `object_store` fails a
//! whole page when one key in it is not a path it accepts ("a/../b/", "a//b/"): this one hands
//! back every key as the bucket spells it, for the store to judge one by one. A page's body is
//! read up to `MAX_LIST_BODY`, each piece admitted by the caller's budget.

use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::ClientOptions;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::credentials::Credentials;
use crate::config::S3Grant;
use crate::wit_types::Error;

/// What S3 leaves unencoded in a key's path: the unreserved characters and "/".
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// What a query value leaves unencoded: the unreserved characters.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The pauses before each retry of a request that failed in transit or with a 429 or 5xx
/// status (its requests are idempotent).
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1600),
];
/// The largest listing page body read (a page of 1,000 keys of 1 KiB is about 1.5 MB).
const MAX_LIST_BODY: usize = 8 << 20;

/// One page of a listing, keys as the bucket spells them (full keys, not relative).
pub struct RawPage {
    pub objects: Vec<RawObject>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

pub struct RawObject {
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
    pub etag: Option<String>,
}

/// ListObjectsV2's answer, the parts used.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    common_prefixes: Vec<CommonPrefix>,
    next_continuation_token: Option<String>,
    /// "url" when the server encoded keys and prefixes as asked.
    encoding_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: u64,
    last_modified: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "ETag")]
    etag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix {
    prefix: String,
}

pub struct Markers {
    http: HttpClient,
    /// The bucket's URL, ending in "/": keys are appended.
    base: String,
    region: String,
    credential: Option<AwsCredential>,
}

impl Markers {
    pub fn new(
        grant: &S3Grant,
        endpoint: Option<&str>,
        credentials: Credentials,
        options: ClientOptions,
    ) -> anyhow::Result<Markers> {
        let bucket = grant.bucket.get_ref();
        let base = match endpoint {
            Some(endpoint) if grant.path_style => {
                format!("{}/{bucket}/", endpoint.trim_end_matches('/'))
            }
            Some(endpoint) => {
                let (scheme, host) = endpoint
                    .split_once("://")
                    .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint:?} is not a URL"))?;
                format!("{scheme}://{bucket}.{}/", host.trim_end_matches('/'))
            }
            None if grant.path_style => {
                format!("https://s3.{}.amazonaws.com/{bucket}/", grant.region)
            }
            None => format!("https://{bucket}.s3.{}.amazonaws.com/", grant.region),
        };
        let credential = match credentials {
            Credentials::Keys {
                key_id,
                secret,
                token,
            } => Some(AwsCredential {
                key_id,
                secret_key: secret,
                token,
            }),
            Credentials::Anonymous => None,
        };
        Ok(Markers {
            http: ReqwestConnector::default().connect(&options)?,
            base,
            region: grant.region.clone(),
            credential,
        })
    }

    async fn send(
        &self,
        method: http::Method,
        full_key: &str,
    ) -> Result<http::Response<object_store::client::HttpResponseBody>, Error> {
        let url = format!("{}{}", self.base, utf8_percent_encode(full_key, KEY_SET));
        self.send_url(method, url, full_key).await
    }

    /// Sends a signed request without a body, retrying transient failures; `what` names it in
    /// logs.
    async fn send_url(
        &self,
        method: http::Method,
        url: String,
        what: &str,
    ) -> Result<http::Response<object_store::client::HttpResponseBody>, Error> {
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .body(HttpRequestBody::empty())
                .map_err(|_| Error::Invalid)?;
            if let Some(credential) = &self.credential {
                AwsAuthorizer::new(credential, "s3", &self.region).authorize(&mut request, None);
            }
            let transient = match self.http.execute(request).await {
                Ok(response) => match response.status().as_u16() {
                    200..=299 => return Ok(response),
                    404 => return Err(Error::NotFound),
                    401 | 403 => return Err(Error::Access),
                    status @ (429 | 500..=599) => format!("status {status}"),
                    status => {
                        tracing::warn!(key = what, status, "S3 request refused");
                        return Err(Error::Io);
                    }
                },
                Err(e) => e.to_string(),
            };
            let Some(pause) = pauses.next() else {
                tracing::warn!(key = what, "S3 request failed: {transient}");
                return Err(Error::Io);
            };
            tokio::time::sleep(*pause).await;
        }
    }

    /// One page of the keys under `full_prefix` (grouped at "/" unless `recursive`), at most
    /// `max_keys`, from `cursor` on. Every piece of the body is first admitted by `admit`
    /// (given the bytes held so far).
    pub async fn list(
        &self,
        full_prefix: &str,
        recursive: bool,
        cursor: Option<&str>,
        max_keys: u32,
        mut admit: impl FnMut(usize) -> bool,
    ) -> Result<RawPage, Error> {
        let encode = |v: &str| utf8_percent_encode(v, QUERY_SET).to_string();
        let mut query = String::new();
        if let Some(cursor) = cursor {
            query.push_str(&format!("continuation-token={}&", encode(cursor)));
        }
        if !recursive {
            query.push_str("delimiter=%2F&");
        }
        query.push_str(&format!(
            "encoding-type=url&list-type=2&max-keys={max_keys}&prefix={}",
            encode(full_prefix)
        ));
        let url = format!("{}?{query}", self.base);
        let response = self.send_url(http::Method::GET, url, full_prefix).await?;
        let mut body = Vec::new();
        let mut stream = response.into_body().bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::warn!(prefix = full_prefix, "listing failed: {e}");
                Error::Io
            })?;
            let total = body.len() + chunk.len();
            if total > MAX_LIST_BODY || !admit(total) {
                tracing::warn!(
                    prefix = full_prefix,
                    "a listing page is larger than the host holds for it"
                );
                return Err(Error::TooBig);
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| Error::Io)?;
        let result: ListBucketResult = quick_xml::de::from_str(text).map_err(|e| {
            tracing::warn!(prefix = full_prefix, "a listing page cannot be read: {e}");
            Error::Io
        })?;
        let encoded = result.encoding_type.as_deref() == Some("url");
        let decode = |v: String| {
            if !encoded {
                return v;
            }
            let plus_is_space = v.replace('+', " ");
            percent_decode_str(&plus_is_space)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok(RawPage {
            objects: result
                .contents
                .into_iter()
                .map(|c| RawObject {
                    key: decode(c.key),
                    size: c.size,
                    modified: c.last_modified,
                    etag: c.etag,
                })
                .collect(),
            prefixes: result
                .common_prefixes
                .into_iter()
                .map(|p| decode(p.prefix))
                .collect(),
            next: result.next_continuation_token,
        })
    }

    pub async fn put_empty(&self, full_key: &str) -> Result<(), Error> {
        self.send(http::Method::PUT, full_key).await.map(drop)
    }

    pub async fn delete(&self, full_key: &str) -> Result<(), Error> {
        match self.send(http::Method::DELETE, full_key).await {
            Ok(_) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
