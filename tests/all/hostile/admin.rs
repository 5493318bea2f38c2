//! The admin listener as a hostile client meets it (issue #28, item 13; docs/SECURITY.md):
//! with `server.admin_token_env` set, `/metrics`, `/status`, `POST /flush` and every other
//! path answer 401 to a client without the token or with a wrong one, and work with it, for
//! raw HTTP and for `nfsgw status` and `nfsgw flush`; a non-loopback admin address without a
//! token stops startup with the key and line named; and clients that send half a request are
//! dropped after the header timeout, so they cannot hold every connection slot.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::harness::{self, Server};

/// The line nfsgw prints when its admin listener is up.
const ADMIN_PREFIX: &str = "nfsgw: admin listener on http://";
/// Admin connections the listener serves at once (`admin::MAX_CONNECTIONS`).
const MAX_CONNECTIONS: usize = 16;
/// Far longer than the listener's 5 s header timeout: only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

fn admin_addr(server: &Server) -> SocketAddr {
    server
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix(ADMIN_PREFIX))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin listener line in:\n{}", server.stdout()))
}

/// A server with an admin listener on a free loopback port; `keys` go into `[server]`.
fn server_with_admin(keys: &str) -> (Server, tempfile::TempDir) {
    let dir = harness::tempdir("nfsgw-admin-");
    let mount = harness::squashed_local_mount("data", dir.path(), "");
    let server = Server::start_with(&format!(
        "portmap = \"off\"\nadmin = \"127.0.0.1:0\"\n{keys}\n\n{mount}"
    ));
    (server, dir)
}

/// One HTTP/1.1 request on a fresh connection: the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin listener");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .unwrap_or_else(|e| panic!("{method} {path}: no whole answer within {PATIENCE:?}: {e}"));
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Runs `nfsgw` with these arguments; the admin token variables are only what `token` sets.
fn nfsgw(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(harness::nfsgw_binary());
    cmd.args(args)
        .env_remove(harness::ADMIN_TOKEN_ENV)
        .env_remove("NFSGW_ADMIN_TOKEN");
    if let Some(token) = token {
        cmd.env(harness::ADMIN_TOKEN_ENV, token);
    }
    harness::run_with_timeout(&mut cmd, PATIENCE)
}

#[test]
fn admin_pages_answer_401_without_the_token_and_work_with_it() {
    let (server, _dir) = server_with_admin(&format!(
        "admin_token_env = {}",
        harness::toml_str(harness::ADMIN_TOKEN_ENV)
    ));
    let addr = admin_addr(&server);
    let almost = &harness::ADMIN_TOKEN[..harness::ADMIN_TOKEN.len() - 1];
    let pages = [
        ("GET", "/metrics"),
        ("GET", "/status"),
        ("POST", "/flush"),
        ("GET", "/elsewhere"),
    ];
    for (method, path) in pages {
        for token in [None, Some("wrong"), Some(almost)] {
            let (code, body) = http(addr, method, path, token);
            assert_eq!(code, 401, "{method} {path} with token {token:?}: {body}");
            assert!(
                !body.contains("nfsgw_") && !body.contains("data"),
                "a refused request was told something: {body}"
            );
        }
    }
    let token = Some(harness::ADMIN_TOKEN);
    let (code, metrics) = http(addr, "GET", "/metrics", token);
    assert!(
        code == 200 && metrics.contains("# EOF"),
        "{code}: {metrics}"
    );
    let (code, status) = http(addr, "GET", "/status", token);
    assert!(
        code == 200 && status.contains("\"data\""),
        "{code}: {status}"
    );
    let (code, flushed) = http(addr, "POST", "/flush", token);
    assert!(
        code == 200 && flushed.contains("\"left\":0"),
        "{code}: {flushed}"
    );

    // The command-line clients send the token from the variable --token-env names.
    let at = addr.to_string();
    let status_args = [
        "status",
        "--admin",
        &at,
        "--token-env",
        harness::ADMIN_TOKEN_ENV,
    ];
    let out = nfsgw(&status_args, Some(harness::ADMIN_TOKEN));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("/data"), "{out:?}");
    let flush_args = [
        "flush",
        "--admin",
        &at,
        "--token-env",
        harness::ADMIN_TOKEN_ENV,
    ];
    let out = nfsgw(&flush_args, Some(harness::ADMIN_TOKEN));
    assert!(out.status.success(), "{out:?}");
    let out = nfsgw(&["status", "--admin", &at], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("needs the admin token"),
        "{out:?}"
    );
}

#[test]
fn a_public_admin_address_without_a_token_stops_startup() {
    let dir = harness::tempdir("nfsgw-admin-");
    let mount = harness::squashed_local_mount("data", dir.path(), "");
    // TEST-NET-1: never this machine's, so nothing is bound even if the check is missing.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\nadmin = \"192.0.2.1:9464\"\n\n{mount}"
    );
    match harness::spawn(&config) {
        Ok(_) => panic!("nfsgw started with a public admin listener and no token"),
        Err(exited) => {
            assert!(
                exited.stderr.contains("config.toml:4: key `admin`")
                    && exited.stderr.contains("admin_token_env"),
                "{exited}"
            );
        }
    }
}

#[test]
fn half_sent_requests_are_dropped_after_the_header_timeout() {
    let (server, _dir) = server_with_admin("");
    let addr = admin_addr(&server);
    // Every slot taken by a client that never finishes its headers.
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /status HTTP/1.1\r\nHost: nfsgw\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // A real client still gets its answer once those are dropped.
    let (code, body) = http(addr, "GET", "/status", None);
    assert_eq!(code, 200, "{body}");
    for (i, s) in stalled.iter_mut().enumerate() {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "half-sent request {i} was still held after {PATIENCE:?} ({e}): a slow client \
                 keeps an admin connection slot"
            ),
        }
        let text = String::from_utf8_lossy(&rest);
        assert!(
            !text.contains("\"mounts\""),
            "a half-sent request was answered: {text}"
        );
    }
}
