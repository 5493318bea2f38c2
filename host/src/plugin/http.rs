//! The `http` capability: outbound HTTP(S) requests for a plugin, to the hosts its mount allows.
//!
//! The mount's `allow_hosts` list decides where a plugin may connect; everything else is refused
//! before any connection is made (WASI sockets stay off, so this is the plugin's only way out).
//! The host makes the request with its own client, follows no redirects (a 3xx goes back to the
//! plugin, and a follow-up request is checked again), caps the response body, and adds a granted
//! secret as a bearer token only on the host's side of the boundary and only to hosts the secret
//! is bound to. The plugin may not set the headers the host or the connection owns (`Host`,
//! cookies, proxy credentials, hop-by-hop and forwarding headers), nor `Authorization` on a
//! request that carries a secret: a request that tries is refused. (Elsewhere a plugin may
//! present a credential it was given, as the `hub` plugin does with the Xet tokens the Hub
//! hands it.) A response body is held in the mount's budget of host buffers while it arrives,
//! and may be no larger than the plugin's memory. The wait is booked as host time, which the
//! plugin's call deadline does not count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::Resource;

use super::bindings::nfsgw::backend::http::{Host, HttpError, Request, Response};
use super::memory::Reservation;
use super::runtime::HostState;
use super::secrets::{Secret, SecretHandle};
use crate::config::HostPattern;

/// The largest response body a plugin can receive (an Xet xorb is at most 64 MiB).
const MAX_BODY: usize = 128 << 20;
/// A request's time limit unless the plugin asks for another.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Headers only the host sets: the target and framing of the request, the connection, cookies,
/// proxy credentials, and what proxies would take for the client's own word.
const HOST_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "cookie2",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Refuses headers the plugin may not set; `Authorization` is the host's alone on a request
/// that carries a secret (`with_secret`).
fn check_headers(headers: &[(String, String)], with_secret: bool) -> Result<(), HttpError> {
    for (name, _) in headers {
        let name = name.trim().to_ascii_lowercase();
        if HOST_HEADERS.contains(&name.as_str()) {
            return Err(HttpError::Denied(format!(
                "the plugin may not set the {name:?} header: the host sets it"
            )));
        }
        if with_secret && name == "authorization" {
            return Err(HttpError::Denied(
                "the plugin may not set \"authorization\" on a request that carries a secret"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The hosts a mount (or one secret) may reach.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<HostPattern>);

impl AllowList {
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<AllowList> {
        patterns
            .into_iter()
            .map(HostPattern::parse)
            .collect::<Result<_>>()
            .map(AllowList)
    }

    /// `host` as in a URL (lower case, IPv6 without brackets).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|p| p.matches(host, port))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list of just its first entry (none when it is empty).
    pub fn first(&self) -> AllowList {
        AllowList(self.0.iter().take(1).cloned().collect())
    }

    pub fn only(pattern: HostPattern) -> AllowList {
        AllowList(vec![pattern])
    }
}

/// A mount's way out: its allow-list and an HTTP client that follows no redirects.
pub struct Outbound {
    allow: AllowList,
    client: reqwest::Client,
}

impl Outbound {
    pub fn new(allow: AllowList) -> Result<Outbound> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nfsgw/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound { allow, client })
    }

    /// Sends one request after checking its host (and the secret's) against the allow-lists
    /// and its headers; the response body may be at most `max_body` bytes and is held in
    /// `held` as it arrives.
    pub async fn send(
        &self,
        request: Request,
        bearer: Option<&Secret>,
        held: &mut Reservation,
        max_body: usize,
    ) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| HttpError::Denied(format!("{:?} is not a URL: {e}", request.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Denied(format!(
                "{}: only http and https URLs are allowed",
                url.scheme()
            )));
        }
        let Some(host) = url.host_str() else {
            return Err(HttpError::Denied("the URL has no host".into()));
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        if !self.allow.allows(&host, port) {
            return Err(HttpError::Denied(format!(
                "{host}:{port} is not in the mount's `allow_hosts`"
            )));
        }
        if bearer.is_some_and(|s| !s.may_go_to(&host, port)) {
            return Err(HttpError::Denied(format!(
                "the secret may not be sent to {host}:{port} (its `hosts` do not list it, or it \
                 has no `hosts` and this is not the mount's endpoint)"
            )));
        }
        check_headers(&request.headers, bearer.is_some())?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpError::Denied(format!("{:?} is not a method", request.method)))?;
        let mut builder = self.client.request(method, url).timeout(
            request
                .timeout_ms
                .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(ms.into())),
        );
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(secret) = bearer {
            let mut value =
                reqwest::header::HeaderValue::try_from(format!("Bearer {}", secret.reveal()))
                    .map_err(|_| {
                        HttpError::Denied("the secret is not a valid header value".into())
                    })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| HttpError::Unreachable(describe(&e)))?;
        let max_body = max_body.min(MAX_BODY);
        let fits = |n: usize, held: &mut Reservation| n <= max_body && held.cover(n);
        if let Some(n) = response.content_length() {
            if !fits(usize::try_from(n).unwrap_or(usize::MAX), held) {
                return Err(HttpError::TooLarge);
            }
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::Unreachable(describe(&e)))?
        {
            if !fits(body.len() + chunk.len(), held) {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A reqwest error with its causes, minus the URL (which may carry a presigned query).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Host for HostState {
    async fn send(
        &mut self,
        request: Request,
        bearer: Option<Resource<SecretHandle>>,
    ) -> Result<Response, HttpError> {
        let Some(outbound) = self.outbound.clone() else {
            return Err(HttpError::Denied(
                "the mount allows no outbound hosts (`allow_hosts`)".into(),
            ));
        };
        let secret = match bearer {
            Some(handle) => match self.table.get(&handle) {
                Ok(SecretHandle(secret)) => Some(Arc::clone(secret)),
                Err(_) => return Err(HttpError::Denied("not a secret handle".into())),
            },
            None => None,
        };
        let started = Instant::now();
        let mut held = self.buffers.reservation();
        let result = outbound
            .send(request, secret.as_deref(), &mut held, self.memory_limit)
            .await;
        self.host_time += started.elapsed();
        if let Err(HttpError::TooLarge) = &result {
            tracing::warn!(mount = %self.mount, "plugin request refused: the response body is larger than the plugin's memory or the mount's free `host_buffers_mb`");
        }
        if let Err(HttpError::Denied(why)) = &result {
            tracing::warn!(mount = %self.mount, "plugin request refused: {why}");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::secrets::Secrets;
    use super::*;

    fn allow(patterns: &[&str]) -> AllowList {
        AllowList::parse(patterns.iter().copied()).unwrap()
    }

    #[test]
    fn patterns_match_hosts_subdomains_and_ports() {
        let list = allow(&["huggingface.co", "*.hf.co", "127.0.0.1:8080", "[::1]:9"]);
        assert!(list.allows("huggingface.co", 443));
        assert!(!list.allows("evil-huggingface.co", 443));
        assert!(list.allows("cas-bridge.xethub.hf.co", 443));
        assert!(!list.allows("hf.co", 443), "*.domain is subdomains only");
        assert!(!list.allows("hf.co.evil.test", 443));
        assert!(list.allows("127.0.0.1", 8080));
        assert!(!list.allows("127.0.0.1", 8081));
        assert!(list.allows("::1", 9));
        assert!(!allow(&[]).allows("localhost", 80));
    }

    fn get(url: &str) -> Request {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            timeout_ms: Some(5_000),
        }
    }

    fn with_header(url: &str, name: &str) -> Request {
        Request {
            headers: vec![(name.into(), "plugin-made".into())],
            ..get(url)
        }
    }

    /// Sends with a budget of 1 MiB of host buffers.
    async fn send(
        out: &Outbound,
        request: Request,
        bearer: Option<&Secret>,
    ) -> Result<Response, HttpError> {
        let budget = super::super::memory::HostBuffers::new(1 << 20);
        let mut held = budget.reservation();
        out.send(request, bearer, &mut held, 1 << 20).await
    }

    /// A one-shot HTTP server that answers 200 and returns the request head it got.
    async fn one_shot() -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            let reply = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/\r\nX-Thing: 1\r\nContent-Length: 2\r\n\r\nok";
            conn.write_all(reply).await.unwrap();
            String::from_utf8_lossy(&head).to_lowercase()
        });
        (port, task)
    }

    #[tokio::test]
    async fn requests_go_only_to_allowed_hosts_and_carry_the_secret_there() {
        let (port, seen) = one_shot().await;
        let out = Outbound::new(allow(&[&format!("127.0.0.1:{port}")])).unwrap();
        let secrets = Secrets::for_test("t", "s3cr3t", allow(&[&format!("127.0.0.1:{port}")]));
        let secret = secrets.get("t").unwrap();
        let reply = send(
            &out,
            get(&format!("http://127.0.0.1:{port}/x")),
            Some(&secret),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 302, "redirects are not followed");
        assert!(reply.headers.contains(&("x-thing".into(), "1".into())));
        assert_eq!(reply.body, b"ok");
        let head = seen.await.unwrap();
        assert!(head.contains("authorization: bearer s3cr3t"), "{head}");

        for url in [
            format!("http://127.0.0.1:{}/x", port.wrapping_add(1)),
            "http://localhost/x".into(),
            "file:///etc/passwd".into(),
        ] {
            match send(&out, get(&url), None).await {
                Err(HttpError::Denied(_)) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_secret_bound_to_other_hosts_is_not_sent() {
        let out = Outbound::new(allow(&["127.0.0.1"])).unwrap();
        let secrets = Secrets::for_test("t", "s3cr3t", allow(&["hub.test"]));
        let secret = secrets.get("t").unwrap();
        match send(&out, get("http://127.0.0.1:9/x"), Some(&secret)).await {
            Err(HttpError::Denied(why)) => assert!(why.contains("secret"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn headers_the_host_owns_are_refused_and_authorization_where_secrets_go() {
        let out = Outbound::new(allow(&["127.0.0.1"])).unwrap();
        let secrets = Secrets::for_test("t", "s3cr3t", allow(&["127.0.0.1:9"]));
        let secret = secrets.get("t").unwrap();
        let url = "http://127.0.0.1:9/x";
        for name in [
            "Host",
            "cookie",
            "Proxy-Authorization",
            "Transfer-Encoding",
            " connection",
        ] {
            match send(&out, with_header(url, name), None).await {
                Err(HttpError::Denied(why)) => assert!(why.contains("header"), "{why}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // Authorization: never with the secret.
        match send(&out, with_header(url, "Authorization"), Some(&secret)).await {
            Err(HttpError::Denied(why)) => assert!(why.contains("authorization"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Without it a plugin may present a credential of its own (a Xet token): the request
        // is sent (and fails to connect: nothing listens on port 9).
        if let Err(HttpError::Denied(why)) =
            send(&out, with_header(url, "Authorization"), None).await
        {
            panic!("{why}");
        }
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for body_announced in [true, false] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let head: &[u8] = if body_announced {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                };
                let _ = conn.write_all(head).await;
                let _ = conn.write_all(&vec![b'z'; 2 << 20]).await;
            }
        });
        let out = Outbound::new(allow(&[&format!("127.0.0.1:{port}")])).unwrap();
        for _ in 0..2 {
            let url = format!("http://127.0.0.1:{port}/x");
            match send(&out, get(&url), None).await {
                Err(HttpError::TooLarge) => {}
                other => panic!("{:?}", other.map(|r| r.body.len())),
            }
        }
    }
}
