//! Directory markers: the zero-byte objects whose keys end in "/" ("photos/") that S3 tools make
//! for empty directories. `object_store` paths cannot end in "/", so this module sends the few
//! requests markers need (PUT of nothing, DELETE) itself, over object_store's HTTP client
//! and signed by object_store's SigV4 authorizer with the mount's credentials.

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::credentials::Credentials;
use crate::config::S3Grant;
use crate::plugin::bindings::types::Error;

/// What S3 leaves unencoded in a key's path: the unreserved characters and "/".
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

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
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|_| Error::Invalid)?;
        if let Some(credential) = &self.credential {
            AwsAuthorizer::new(credential, "s3", &self.region).authorize(&mut request, None);
        }
        let response = self.http.execute(request).await.map_err(|e| {
            tracing::warn!(key = full_key, "directory marker request failed: {e}");
            Error::Io
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(response),
            404 => Err(Error::NotFound),
            401 | 403 => Err(Error::Access),
            status => {
                tracing::warn!(key = full_key, status, "directory marker request refused");
                Err(Error::Io)
            }
        }
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
