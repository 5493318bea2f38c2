//! Outbound HTTP through the host's `http` import: who gets which credentials, retries of
//! transient failures, and the mapping of failures to the interface's errors (each with a log
//! line naming the URL's path, never its query: presigned URLs carry signatures there).
//!
//! The Hub token (an opaque secret handle) is attached only to requests to the Hub endpoint's
//! own origin; CAS requests carry the Xet token the plugin was given, and presigned transfer
//! URLs carry nothing.

use std::time::Duration;

use crate::urls::{header, origin, without_query};
#[cfg(not(test))]
use nfsgw_plugin_sdk::http;
use nfsgw_plugin_sdk::http::{HttpError, Request, Response};
#[cfg(not(test))]
use nfsgw_plugin_sdk::log;
use nfsgw_plugin_sdk::log::Level;
use nfsgw_plugin_sdk::secrets::Secret;
use nfsgw_plugin_sdk::Error;

/// The pauses before the second and third attempts of a request that failed transiently (429,
/// 500, 502, 503, 504, unreachable).
const BACKOFF_MS: [u64; 2] = [150, 600];

/// Whether a request may carry the Hub token.
#[derive(Clone, Copy)]
pub enum Auth {
    /// The Hub token, if the mount grants one and the URL is on the Hub endpoint's origin.
    Hub,
    /// Not the Hub token: presigned URLs, and CAS calls (which carry a Xet token header).
    None,
}

/// A request; the body is moved in, not copied (xorbs are up to 64 MiB).
pub fn request(method: &str, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
    Request {
        method: method.to_string(),
        url: url.to_string(),
        headers,
        timeout_ms: timeout_ms(body.len()),
        body,
    }
}

/// Sets `Authorization: Bearer <token>` (a Xet token), replacing any such header.
pub fn set_bearer(request: &mut Request, token: &str) {
    request
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    request
        .headers
        .push(("Authorization".to_string(), format!("Bearer {token}")));
}

/// Why a request failed, after retries.
#[derive(Debug)]
pub enum Failure {
    /// An HTTP error status, with the Hub's `X-Error-Code` and message when it sent them.
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    Unreachable(String),
    /// A success status with a body that is not what the API documents.
    Malformed(String),
    /// The Hub answered, and refused some of a batch's operations.
    Rejected(String),
    /// Refused by the host's allow-list (or not an http(s) URL).
    Denied(String),
    TooLarge,
}

impl Failure {
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The interface error for this failure.
    pub fn error(&self) -> Error {
        match self {
            Failure::Status { status: 404, .. } => Error::NotFound,
            Failure::Status {
                status: 401 | 403, ..
            } => Error::Access,
            Failure::Status {
                status: 429 | 503, ..
            } => Error::Busy,
            Failure::Denied(_) => Error::Access,
            _ => Error::Io,
        }
    }

    /// A short description: "404 (EntryNotFound: x does not exist)", "unreachable: …".
    pub fn describe(&self) -> String {
        match self {
            Failure::Status {
                status,
                code,
                message,
            } => {
                let detail = match (code, message) {
                    (Some(c), Some(m)) => format!(" ({c}: {m})"),
                    (Some(c), None) => format!(" ({c})"),
                    (None, Some(m)) => format!(" ({m})"),
                    (None, None) => String::new(),
                };
                format!("HTTP {status}{detail}")
            }
            Failure::Unreachable(why) => format!("unreachable: {why}"),
            Failure::Malformed(what) => format!("unexpected answer: {what}"),
            Failure::Rejected(why) => format!("refused: {why}"),
            Failure::Denied(why) => {
                format!("denied by the host ({why}); the mount's `allow_hosts` must list this host")
            }
            Failure::TooLarge => "the response is larger than the host accepts".to_string(),
        }
    }
}

pub fn log(level: Level, message: &str) {
    #[cfg(not(test))]
    log::log(level, message);
    #[cfg(test)]
    eprintln!("[{level:?}] {message}");
}

/// Logs a failed request and turns it into the interface's error.
pub fn fail(method: &str, url: &str, failure: &Failure) -> Error {
    let level = match failure {
        Failure::Status { status: 404, .. } => Level::Debug,
        _ => Level::Warn,
    };
    log(
        level,
        &format!("{method} {}: {}", without_query(url), failure.describe()),
    );
    failure.error()
}

/// The HTTP client of one plugin instance.
pub struct Client {
    hub_origin: String,
    token: Option<Secret>,
}

/// The host's default (60 s) for small requests; uploads get 60 s more per 16 MiB, so a
/// 64 MiB xorb has 5 minutes even at about 220 KiB/s.
fn timeout_ms(body_len: usize) -> Option<u32> {
    (body_len >= 1 << 20).then(|| 60_000 + 60_000 * (body_len as u32).div_ceil(16 << 20))
}

fn transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

fn status_failure(r: &Response) -> Failure {
    let message = header(&r.headers, "x-error-message")
        .map(str::to_string)
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            // `{"error": "…"}`, or a bucket batch's `{"failed": [{"path", "error"}, …]}`.
            let error = v
                .get("error")
                .or_else(|| v.get("failed")?.get(0)?.get("error"));
            error?.as_str().map(str::to_string)
        });
    Failure::Status {
        status: r.status,
        code: header(&r.headers, "x-error-code").map(str::to_string),
        message,
    }
}

impl Client {
    pub fn new(endpoint: &str, token: Option<Secret>) -> Client {
        Client {
            hub_origin: origin(endpoint).unwrap_or(endpoint).to_string(),
            token,
        }
    }

    /// Sends a request, retrying transient failures. A status of 400 or more is a failure;
    /// 1xx–3xx come back to the caller (redirects are its to follow).
    pub fn send(&self, request: &Request, auth: Auth) -> Result<Response, Failure> {
        let hub_token =
            matches!(auth, Auth::Hub) && origin(&request.url) == Some(self.hub_origin.as_str());
        let mut attempt = 0;
        loop {
            let failure = match self.transport(request, hub_token) {
                Ok(r) if r.status < 400 => return Ok(r),
                Ok(r) if transient(r.status) => status_failure(&r),
                Ok(r) => return Err(status_failure(&r)),
                Err(HttpError::Unreachable(why)) => Failure::Unreachable(why),
                Err(HttpError::Denied(why)) => return Err(Failure::Denied(why)),
                Err(HttpError::TooLarge) => return Err(Failure::TooLarge),
            };
            let Some(pause) = BACKOFF_MS.get(attempt) else {
                return Err(failure);
            };
            log(
                Level::Debug,
                &format!(
                    "{} {}: {}; trying again",
                    request.method,
                    without_query(&request.url),
                    failure.describe()
                ),
            );
            std::thread::sleep(Duration::from_millis(*pause));
            attempt += 1;
        }
    }

    /// Sends one request through the host, with the Hub token as bearer when `hub_token`.
    #[cfg(not(test))]
    fn transport(&self, request: &Request, hub_token: bool) -> Result<Response, HttpError> {
        let bearer = if hub_token { self.token.as_ref() } else { None };
        http::send(request, bearer)
    }

    /// Native unit tests have no host: requests go to the test server directly.
    #[cfg(test)]
    fn transport(&self, request: &Request, hub_token: bool) -> Result<Response, HttpError> {
        debug_assert!(self.token.is_none(), "no secret handles in native tests");
        crate::testing::send(request, hub_token)
    }

    /// A GET that follows up to four redirects. The Hub token goes only to the Hub's origin:
    /// a redirect elsewhere (a CDN) is fetched without it.
    pub fn get_following(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Response, Failure> {
        let mut url = url.to_string();
        let mut hops = 0;
        loop {
            let r = self.send(
                &request("GET", &url, headers.clone(), Vec::new()),
                Auth::Hub,
            )?;
            if !(300..400).contains(&r.status) {
                return Ok(r);
            }
            match header(&r.headers, "location") {
                Some(location) if hops < 4 => url = crate::urls::resolve_location(&url, location),
                _ => return Err(status_failure(&r)),
            }
            hops += 1;
        }
    }
}

/// The sentence `init` shows the user when its first call to the Hub fails; `what` names the
/// repo or bucket ("model ns/name at revision main").
pub fn init_error(endpoint: &str, what: &str, failure: &Failure) -> String {
    let host = origin(endpoint)
        .and_then(|o| o.split("://").nth(1))
        .unwrap_or(endpoint);
    match failure {
        Failure::Unreachable(why) => format!("cannot reach the Hub at {endpoint}: {why}"),
        Failure::Denied(why) => format!(
            "the host refused to connect to {host} ({why}): the mount's `allow_hosts` must list \
             {host} (and the Xet CAS and transfer hosts the Hub points to)"
        ),
        Failure::Status {
            status: 401 | 403, ..
        } => format!(
            "the Hub refused the token ({}) for {what}: check the `token` secret in \
             [mount.secrets]",
            failure.describe()
        ),
        Failure::Status {
            status: 404, code, ..
        } => match code.as_deref() {
            Some("RevisionNotFound") => format!("{what}: revision not found on {endpoint}"),
            Some("RepoNotFound") => format!(
                "{what}: not found on {endpoint} (or it is private and the mount grants no \
                 `token` secret that may read it)"
            ),
            _ => format!("{what}: not found on {endpoint} ({})", failure.describe()),
        },
        _ => format!(
            "the Hub at {endpoint} failed for {what}: {}",
            failure.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_timeouts() {
        assert_eq!(timeout_ms(1000), None);
        assert_eq!(timeout_ms(1 << 20), Some(120_000));
        assert_eq!(timeout_ms(64 << 20), Some(300_000));
    }

    #[test]
    fn failures() {
        let r = Response {
            status: 422,
            headers: Vec::new(),
            body: br#"{"failed":[{"path":"a","error":"unknown xet hash"}]}"#.to_vec(),
        };
        let f = status_failure(&r);
        assert_eq!(f.describe(), "HTTP 422 (unknown xet hash)");
        assert_eq!(f.error(), Error::Io);
        let r = Response {
            status: 404,
            headers: vec![
                ("x-error-code".into(), "EntryNotFound".into()),
                ("x-error-message".into(), "gone".into()),
            ],
            body: Vec::new(),
        };
        assert_eq!(
            status_failure(&r).describe(),
            "HTTP 404 (EntryNotFound: gone)"
        );
        assert_eq!(status_failure(&r).error(), Error::NotFound);
        let busy = Failure::Status {
            status: 503,
            code: None,
            message: None,
        };
        assert_eq!(busy.error(), Error::Busy);
        assert_eq!(Failure::Denied("x".into()).error(), Error::Access);
        assert!(
            init_error("http://h:1", "bucket a/b", &Failure::Denied("no".into()))
                .contains("`allow_hosts` must list h:1")
        );
    }
}
