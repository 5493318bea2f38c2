//! The admin HTTP listener (`server.admin`, off by default) and `nfsgw status`, its client.
//! The listener answers `GET /metrics` with every metric in the Prometheus/OpenMetrics text
//! format (`metrics`) and `GET /status` with a JSON summary of the running instance: version,
//! uptime, addresses, and per mount its plugin, access, squash options, request and error
//! counts and instance pool. It is HTTP/1.1 through hyper, with nothing to change: everything
//! else is 404, and any method but GET (or HEAD) 405, except `POST /flush`, which uploads every
//! staged write now and answers how many files are still staged. `nfsgw status` fetches
//! `/status` and prints it for people; `nfsgw flush` posts `/flush`.
//!
//! Its clients are untrusted until they show the token: with `server.admin_token_env` set, every
//! request must carry `Authorization: Bearer <token>` or is answered 401 before anything else
//! (the config refuses a non-loopback address without a token). A connection serves one
//! request: it must send its headers within [`HEADER_TIMEOUT`] and is answered within
//! [`REQUEST_DEADLINE`] (a flush within [`FLUSH_DEADLINE`]); at most [`MAX_CONNECTIONS`] are
//! served at once, and more wait to be accepted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::gateway::Gateway;

/// Admin connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request other than a flush may take to be answered.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long `POST /flush` waits for the uploads; what is left stays staged and is retried.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(3600);
/// How long `nfsgw status` waits for an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/status` reports.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub version: String,
    pub uptime_seconds: u64,
    /// Where NFSv3 and MOUNT are served.
    pub listen: String,
    /// Where the portmapper answers, if it does.
    pub portmap: Option<String>,
    pub mounts: Vec<MountStatus>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct MountStatus {
    pub name: String,
    pub plugin: String,
    pub read_only: bool,
    pub root_squash: bool,
    pub all_squash: bool,
    /// NFSv3 calls addressed to this mount.
    pub requests: u64,
    /// Those answered with an error status.
    pub errors: u64,
    /// Plugin calls that trapped, timed out or panicked.
    pub plugin_failures: u64,
    /// The largest number of plugin instances, and how many are alive now (idle or busy).
    pub instances_max: usize,
    pub instances_live: usize,
    /// Files written but not yet uploaded (whole-object mounts), and their bytes.
    #[serde(default)]
    pub staged_files: usize,
    #[serde(default)]
    pub staged_bytes: u64,
}

/// What `POST /flush` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Flushed {
    /// Files still staged after the attempt (their uploads failed).
    pub left: usize,
}

/// What the listener reports on.
pub struct Instance {
    pub gateway: Arc<Gateway>,
    pub listen: SocketAddr,
    pub portmap: Option<SocketAddr>,
    pub started: Instant,
}

impl Instance {
    pub fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            listen: self.listen.to_string(),
            portmap: self.portmap.map(|a| a.to_string()),
            mounts: self
                .gateway
                .mounts()
                .iter()
                .map(|m| {
                    let (requests, errors) = m.metrics.totals();
                    let (instances_max, instances_live) = m.pool();
                    let (staged_files, staged_bytes) = m.pending_uploads();
                    MountStatus {
                        name: m.name.clone(),
                        plugin: m.plugin_name.clone(),
                        read_only: m.is_read_only(),
                        root_squash: m.squash.root,
                        all_squash: m.squash.all,
                        requests,
                        errors,
                        plugin_failures: crate::metrics::plugin_failures(&m.name),
                        instances_max,
                        instances_live,
                        staged_files,
                        staged_bytes,
                    }
                })
                .collect(),
        }
    }
}

/// A bound admin listener, ready to serve.
pub struct Admin {
    listener: TcpListener,
    instance: Arc<Instance>,
    /// The bearer token every request must carry, if one is configured.
    token: Option<Arc<str>>,
}

impl Admin {
    pub async fn bind(
        addr: SocketAddr,
        instance: Instance,
        token: Option<String>,
    ) -> Result<Admin> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("server.admin: cannot listen on {addr}"))?;
        Ok(Admin {
            listener,
            instance: Arc::new(instance),
            token: token.map(Arc::from),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn serve(self) -> Result<()> {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (stream, _) = self
                .listener
                .accept()
                .await
                .context("accepting an admin connection")?;
            let instance = self.instance.clone();
            let token = self.token.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (instance, token) = (instance.clone(), token.clone());
                    async move { Ok::<_, Infallible>(answer(&instance, token.as_deref(), req).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(stream), service);
                // The response must be taken too: a client that stops reading is dropped.
                let lifetime = HEADER_TIMEOUT + FLUSH_DEADLINE + REQUEST_DEADLINE;
                let _ = tokio::time::timeout(lifetime, connection).await;
                drop(slot);
            });
        }
    }
}

/// Whether a request with these headers carries the bearer token (compared in constant time),
/// or none is needed.
fn authorized(headers: &hyper::HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    given.len() == token.len()
        && given
            .iter()
            .zip(token.as_bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Answers one request: 401 without the token, then `/flush` or the read-only pages, each
/// within its deadline.
async fn answer(
    instance: &Instance,
    token: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if !authorized(req.headers(), token) {
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "this admin listener needs its token: Authorization: Bearer <token>\n".into(),
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer realm=\"nfsgw\""),
        );
        return response;
    }
    if req.method() == Method::POST && req.uri().path() == "/flush" {
        return match tokio::time::timeout(FLUSH_DEADLINE, instance.gateway.flush_all(1)).await {
            Ok(left) => {
                let json = serde_json::to_string(&Flushed { left }).expect("plain data");
                text(StatusCode::OK, "application/json", json + "\n")
            }
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!(
                    "the flush did not finish within {FLUSH_DEADLINE:?}; what is left stays \
                     staged and is uploaded in the background\n"
                ),
            ),
        };
    }
    // The pages are built in place, but a deadline keeps the promise if that ever changes.
    tokio::time::timeout(REQUEST_DEADLINE, async { respond(instance, &req) })
        .await
        .unwrap_or_else(|_| {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "the answer took too long\n".into(),
            )
        })
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn respond(instance: &Instance, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET, and POST /flush\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::render(),
        ),
        "/status" => {
            let json = serde_json::to_string_pretty(&instance.status()).expect("plain data");
            text(StatusCode::OK, "application/json", json + "\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "nfsgw serves /metrics, /status and POST /flush\n".into(),
        ),
    }
}

/// Fetches `/status` from the admin listener at `addr`, with the token if it is given.
pub async fn fetch_status(addr: SocketAddr, token: Option<&str>) -> Result<Status> {
    let body = call(addr, token, Method::GET, "/status", CLIENT_TIMEOUT).await?;
    serde_json::from_slice::<Status>(&body)
        .with_context(|| format!("{addr} answered /status with something nfsgw did not write"))
}

/// Asks the instance at `addr` to upload every staged write now; waits as long as the listener
/// does ([`FLUSH_DEADLINE`]).
pub async fn request_flush(addr: SocketAddr, token: Option<&str>) -> Result<Flushed> {
    let wait = FLUSH_DEADLINE + REQUEST_DEADLINE;
    let body = call(addr, token, Method::POST, "/flush", wait).await?;
    serde_json::from_slice::<Flushed>(&body)
        .with_context(|| format!("{addr} answered /flush with something nfsgw did not write"))
}

/// One request to the admin listener at `addr`: the body of a 200 answer.
async fn call(
    addr: SocketAddr,
    token: Option<&str>,
    method: Method,
    path: &str,
    timeout: Duration,
) -> Result<Bytes> {
    let nothing = || {
        format!(
            "no nfsgw admin listener answers on {addr}: is nfsgw running, with `admin = \
             \"{addr}\"` in its config's [server] table?"
        )
    };
    let get = async {
        let stream = TcpStream::connect(addr).await.with_context(nothing)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(nothing)?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, addr.to_string());
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await.with_context(nothing)?;
        let code = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if code == StatusCode::UNAUTHORIZED {
            bail!(
                "{addr} refused {path}: it needs the admin token. Set the environment variable \
                 named by the config's `admin_token_env` (give --config), or name the variable \
                 with --token-env"
            );
        }
        if code != StatusCode::OK {
            bail!("{addr} answered {path} with {code}: is it an nfsgw admin listener?");
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| anyhow::anyhow!("{addr} did not answer within {timeout:?}"))?
}

fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `nfsgw status`'s text.
pub fn render(status: &Status) -> String {
    let mut out = format!(
        "nfsgw {}, up {}\nNFSv3 + MOUNT on {}\nportmapper: {}\n\n",
        status.version,
        duration(status.uptime_seconds),
        status.listen,
        status.portmap.as_deref().unwrap_or("off"),
    );
    let width = status
        .mounts
        .iter()
        .map(|m| m.name.len() + 1)
        .chain([6])
        .max()
        .unwrap_or(6);
    out += &format!(
        "{:<width$}  {:<10} {:<10} {:<11} {:>9} {:>7} {:>9} {:>9} {:>7}\n",
        "MOUNT",
        "PLUGIN",
        "ACCESS",
        "SQUASH",
        "REQUESTS",
        "ERRORS",
        "FAILURES",
        "INSTANCES",
        "STAGED"
    );
    for m in &status.mounts {
        let access = if m.read_only {
            "read-only"
        } else {
            "read-write"
        };
        let squash = match (m.all_squash, m.root_squash) {
            (true, _) => "all",
            (false, true) => "root",
            (false, false) => "none",
        };
        let plugin = std::path::Path::new(&m.plugin)
            .file_name()
            .map_or(m.plugin.clone(), |n| n.to_string_lossy().into_owned());
        out += &format!(
            "{:<width$}  {:<10} {:<10} {:<11} {:>9} {:>7} {:>9} {:>9} {:>7}\n",
            format!("/{}", m.name),
            plugin,
            access,
            squash,
            m.requests,
            m.errors,
            m.plugin_failures,
            format!("{}/{}", m.instances_live, m.instances_max),
            m.staged_files,
        );
    }
    out += "\nFAILURES: plugin calls that trapped or timed out. INSTANCES: alive / largest pool.\n";
    let (files, bytes) = status
        .mounts
        .iter()
        .fold((0, 0), |(f, b), m| (f + m.staged_files, b + m.staged_bytes));
    out += &format!(
        "STAGED: files written but not uploaded yet ({files} file(s), {bytes} bytes in all).\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_renders_one_line_per_mount() {
        let status = Status {
            version: "0.1.0".into(),
            uptime_seconds: 3725,
            listen: "127.0.0.1:20490".into(),
            portmap: None,
            mounts: vec![MountStatus {
                name: "data".into(),
                plugin: "local".into(),
                read_only: false,
                root_squash: true,
                all_squash: false,
                requests: 42,
                errors: 3,
                plugin_failures: 1,
                instances_max: 4,
                instances_live: 3,
                staged_files: 2,
                staged_bytes: 1000,
            }],
        };
        let text = render(&status);
        assert!(text.starts_with("nfsgw 0.1.0, up 1h 2m\n"), "{text}");
        assert!(text.contains("portmapper: off"), "{text}");
        let line = text.lines().find(|l| l.starts_with("/data")).expect(&text);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "/data",
                "local",
                "read-write",
                "root",
                "42",
                "3",
                "1",
                "3/4",
                "2"
            ]
        );
        assert!(text.contains("(2 file(s), 1000 bytes in all)"), "{text}");
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let with = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let none = hyper::HeaderMap::new();
        assert!(authorized(&none, None));
        assert!(authorized(&with("Bearer anything"), None));
        assert!(authorized(&with("Bearer s3cret"), Some("s3cret")));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "bearer s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!authorized(&with(wrong), Some("s3cret")), "{wrong}");
        }
        assert!(!authorized(&none, Some("s3cret")));
    }

    #[tokio::test]
    async fn status_says_clearly_when_nothing_listens() {
        // A port that was free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = format!("{:#}", fetch_status(port, None).await.unwrap_err());
        assert!(err.contains("no nfsgw admin listener answers"), "{err}");
    }
}
