//! Native tests of whole mounts against `tests/hub/fakehub`, the local Hub + Xet CAS server.
//!
//! There is no host here: `net` sends requests through [`send`], a minimal HTTP/1.1 client
//! that stands in for the host's `http` import (adding the Hub token when the plugin asks for
//! the bearer, refusing hosts put on a deny list as the allow-list would). The repo is seeded
//! with the real `huggingface_hub` + `hf_xet` clients, so the plugin reads what the reference
//! implementation wrote. Skipped (with a note) when the fakehub venv is missing.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nfsgw_plugin_sdk::http::{HttpError, Request, Response};
use nfsgw_plugin_sdk::Data;
use nfsgw_plugin_sdk::Error;

const TOKEN: &str = "hf_test_token";

thread_local! {
    /// Hosts ("127.0.0.1:PORT") the stand-in host refuses, as a missing allow-list entry.
    static DENIED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// A lying CAS: URLs containing the first string are sent with the second instead.
    static SWAP: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
    /// Every host the Hub token was sent to.
    static TOKEN_HOSTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn unreachable(e: impl std::fmt::Display) -> HttpError {
    HttpError::Unreachable(e.to_string())
}

/// What the host's `http.send` does, for plain http:// test servers.
pub fn send(req: &Request, hub_token: bool) -> Result<Response, HttpError> {
    let url = SWAP.with(|s| match &*s.borrow() {
        Some((from, to)) => req.url.replace(from, to),
        None => req.url.clone(),
    });
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::Denied(format!("{url} is not http")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if DENIED.with(|d| d.borrow().iter().any(|h| h == host)) {
        return Err(HttpError::Denied(format!(
            "host {host} is not in the mount's allow_hosts"
        )));
    }
    let mut stream = TcpStream::connect(host).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(unreachable)?;
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.body.len()
    );
    for (name, value) in &req.headers {
        assert!(
            !(hub_token && name.eq_ignore_ascii_case("authorization")),
            "the plugin set Authorization on a request carrying the Hub token"
        );
        head += &format!("{name}: {value}\r\n");
    }
    if hub_token {
        head += &format!("Authorization: Bearer {TOKEN}\r\n");
        TOKEN_HOSTS.with(|t| t.borrow_mut().push(host.to_string()));
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).map_err(unreachable)?;
    stream.write_all(&req.body).map_err(unreachable)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(unreachable)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| unreachable("no header end"))?;
    let text = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unreachable("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(n) = crate::urls::header(&headers, "content-length") {
        body.truncate(n.parse().unwrap_or(body.len()));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A scratch directory, removed when dropped (also when a test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("nfsgw-hub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running fakehub; killed when dropped.
struct FakeHub {
    child: Child,
    endpoint: String,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("NFSGW_HUB_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nfsgw/hub-venv"))
        })?;
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

fn tests_hub() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hub")
}

fn start(python: &Path, data: &Path, extra: &[&str]) -> FakeHub {
    let mut child = Command::new(python)
        .current_dir(tests_hub())
        .args(["-m", "fakehub", "--data"])
        .arg(data)
        .args(["--token", TOKEN, "--page-size", "3"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fakehub");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(line.trim().strip_prefix("fakehub ready ").expect(&line)).unwrap();
    FakeHub {
        endpoint: info["endpoint"].as_str().unwrap().to_string(),
        child,
    }
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn config(pairs: &[(&str, &str)]) -> crate::config::Config {
    let v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::config::parse(&v).unwrap()
}

fn open(pairs: &[(&str, &str)]) -> Result<crate::mount::Mount, String> {
    let cfg = config(pairs);
    let client = crate::net::Client::new(&cfg.endpoint, None);
    match cfg.target.clone() {
        crate::config::Target::Repo { kind, id, revision } => {
            crate::repo::open(cfg, client, kind, id, &revision)
        }
        crate::config::Target::Bucket { id } => crate::bucket::open(cfg, client, &id),
    }
}

fn read_all(m: &mut crate::mount::Mount, path: &str, offset: u64, len: u32) -> (Vec<u8>, bool) {
    let r = m.read(path, offset, len).unwrap();
    match r.data {
        Data::Bytes(b) => (b, r.eof),
        _ => panic!("the hub plugin answers reads with bytes"),
    }
}

fn create_bucket(endpoint: &str, id: &str) {
    let created = send(
        &Request {
            method: "POST".into(),
            url: format!("{endpoint}/api/buckets/{id}"),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            timeout_ms: None,
        },
        true,
    )
    .unwrap();
    assert_eq!(created.status, 200);
}

/// Xet tokens the server has issued so far.
fn tokens_issued(endpoint: &str) -> u64 {
    let v = stats(endpoint);
    v["auth"]["xet_tokens_issued"]
        .as_u64()
        .or_else(|| v["xet_tokens_issued"].as_u64())
        .unwrap_or_else(|| panic!("no token count in {v}"))
}

/// Requests the server has answered on `route` ("repo_tree:GET") so far.
fn requests(endpoint: &str, route: &str) -> u64 {
    stats(endpoint)[route].as_u64().unwrap_or(0)
}

fn stats(endpoint: &str) -> serde_json::Value {
    let r = send(
        &Request {
            method: "GET".into(),
            url: format!("{endpoint}/_fakehub/stats"),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        },
        true,
    )
    .unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

fn names(m: &mut crate::mount::Mount, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = m.list_dir(dir, cursor.as_deref(), 2).unwrap();
        out.extend(page.entries.into_iter().map(|e| e.name));
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

#[test]
fn against_fakehub() {
    let Some(python) = venv_python() else {
        eprintln!("SKIPPED: no fakehub venv (run tests/hub/setup.sh)");
        return;
    };
    let scratch = Scratch::new("test");
    let tmp = &scratch.0;
    let (data, src, hf_home) = (tmp.join("data"), tmp.join("src"), tmp.join("hf_home"));
    std::fs::create_dir_all(src.join("dir")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("notes.md", b"# test model\n".to_vec()),
        ("small.bin", noise(100, 1)),
        ("dir/w.bin", noise(3 << 20, 2)),
        ("dir/a b.txt", b"spaces in names\n".to_vec()),
        ("dir/x1.txt", b"one\n".to_vec()),
        ("dir/x2.txt", b"two\n".to_vec()),
        ("dir/x3.txt", b"three\n".to_vec()),
    ];
    for (p, content) in &files {
        std::fs::write(src.join(p), content).unwrap();
    }
    let hub = start(&python, &data, &[]);
    let ep = hub.endpoint.clone();
    let seed = Command::new(&python)
        .env("HF_ENDPOINT", &ep)
        .env("HF_TOKEN", TOKEN)
        .env("HF_HOME", &hf_home)
        .arg("-c")
        .arg(
            "import sys; from huggingface_hub import HfApi\n\
             api = HfApi()\n\
             api.create_repo('tester/m')\n\
             api.upload_folder(folder_path=sys.argv[1], repo_id='tester/m')\n",
        )
        .arg(&src)
        .status()
        .unwrap();
    assert!(seed.success(), "seeding the repo with huggingface_hub");

    // ---- repo mount
    let mut m = open(&[("endpoint", &ep), ("repo", "tester/m")]).unwrap();
    let mut root = names(&mut m, "");
    root.sort();
    assert_eq!(root, [".gitattributes", "dir", "notes.md", "small.bin"]);
    assert_eq!(names(&mut m, "dir").len(), 5, "paged by Link (3 per page)");

    // The first page of a directory needs one page of the Hub's listing, a lookup none, and a
    // walk through the whole directory keeps no more entries than the bound.
    let mut fresh = open(&[
        ("endpoint", &ep),
        ("repo", "tester/m"),
        ("listing_cache_entries", "4"),
    ])
    .unwrap();
    let trees = requests(&ep, "repo_tree:GET");
    let first = fresh.list_dir("dir", None, 2).unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(requests(&ep, "repo_tree:GET"), trees + 1);
    assert_eq!(
        fresh.stat("dir/x3.txt").unwrap().size,
        6,
        "on the second Hub page"
    );
    assert_eq!(fresh.stat("dir/nope").unwrap_err(), Error::NotFound);
    assert_eq!(requests(&ep, "repo_tree:GET"), trees + 1, "paths-info");
    let (mut cursor, mut seen) = (first.next, first.entries.len());
    while let Some(c) = cursor {
        let p = fresh.list_dir("dir", Some(&c), 2).unwrap();
        seen += p.entries.len();
        assert!(
            fresh.listings.entries() <= 4,
            "{}",
            fresh.listings.entries()
        );
        cursor = p.next;
    }
    assert_eq!(seen, 5);
    assert_eq!(requests(&ep, "repo_tree:GET"), trees + 2);
    let forged = format!("0:{}/api/models/other/repo/tree/x", ep);
    assert_eq!(
        fresh.list_dir("dir", Some(&forged), 2).unwrap_err(),
        Error::Invalid
    );
    for (p, content) in &files {
        let a = m.stat(p).unwrap();
        assert_eq!(a.size, content.len() as u64, "{p}");
        let (whole, eof) = read_all(&mut m, p, 0, 4 << 20);
        assert!(eof && whole == *content, "{p}: whole read");
    }
    assert!(m.lookup("dir/w.bin").unwrap().id.xet_hash().is_some());
    assert!(m.lookup("notes.md").unwrap().id.xet_hash().is_none());
    let w = &files[2].1;
    let (part, eof) = read_all(&mut m, "dir/w.bin", 1_234_567, 1 << 20);
    assert!(!eof && part == w[1_234_567..1_234_567 + (1 << 20)]);
    let (tail, eof) = read_all(&mut m, "dir/w.bin", w.len() as u64 - 10, 100);
    assert!(eof && tail == w[w.len() - 10..]);
    assert_eq!(
        read_all(&mut m, "dir/w.bin", 5 << 20, 10),
        (Vec::new(), true)
    );
    // Sequential reads are served from the read-ahead window.
    let issued = tokens_issued(&ep);
    let mut off = 0;
    while off < w.len() {
        let (piece, _) = read_all(&mut m, "dir/w.bin", off as u64, 1 << 20);
        assert!(piece == w[off..(off + (1 << 20)).min(w.len())]);
        off += piece.len();
    }
    assert_eq!(tokens_issued(&ep), issued);

    // Xet tokens are cached, and renewed when the CAS refuses one.
    let issued = tokens_issued(&ep);
    // (w.bin is kept whole in the window now: small.bin, not from its start, misses it.)
    let small = &files[1].1;
    read_all(&mut m, "small.bin", 10, 10);
    assert_eq!(tokens_issued(&ep), issued, "the read token is reused");
    m.cas.spoil_tokens();
    let (part, _) = read_all(&mut m, "small.bin", 20, 10);
    assert!(part == small[20..30]);
    assert_eq!(tokens_issued(&ep), issued + 1, "renewed once after a 401");

    // A Xet file through `resolve`: a redirect to the CDN (another origin), without the token.
    let crate::mount::Source::Repo { kind, id, sha } = &m.source else {
        unreachable!()
    };
    let via_cdn = m
        .resolve_range(*kind, id, sha, "dir/w.bin", 10, 20)
        .unwrap();
    assert!(via_cdn == w[10..20]);

    // A CAS that serves another file's data: caught when a read covers the whole file.
    let w_hash = m.lookup("dir/w.bin").unwrap().id.xet_hash().unwrap();
    let small_hash = m.lookup("small.bin").unwrap().id.xet_hash().unwrap();
    SWAP.with(|s| *s.borrow_mut() = Some((small_hash.clone(), w_hash.clone())));
    let lied = m.read("small.bin", 0, 1000);
    let (unverified, _) = read_all(&mut m, "small.bin", 10, 40);
    SWAP.with(|s| *s.borrow_mut() = None);
    assert_eq!(
        lied.unwrap_err(),
        Error::Io,
        "whole-file read fails verification"
    );
    assert!(unverified == w[10..50], "a partial read is not verified");
    let (mid, _) = read_all(&mut m, "dir/a b.txt", 7, 3);
    assert_eq!(mid, b"in ");
    assert_eq!(m.stat("nope").unwrap_err(), Error::NotFound);
    assert_eq!(m.list_dir("notes.md", None, 10).unwrap_err(), Error::NotDir);
    assert_eq!(m.read("dir", 0, 10).unwrap_err(), Error::IsDir);

    // init errors
    let e = open(&[
        ("endpoint", &ep),
        ("repo", "tester/m"),
        ("revision", "nope"),
    ])
    .err();
    assert!(e.unwrap().contains("revision not found"));
    let e = open(&[("endpoint", &ep), ("repo", "tester/none")]).err();
    assert!(e.unwrap().contains("not found"));
    let e = open(&[("endpoint", "http://127.0.0.1:1"), ("repo", "a/b")]).err();
    assert!(e.unwrap().contains("cannot reach the Hub"));
    let host = ep.trim_start_matches("http://").to_string();
    DENIED.with(|d| d.borrow_mut().push(host.clone()));
    let e = open(&[("endpoint", &ep), ("repo", "tester/m")]).err();
    DENIED.with(|d| d.borrow_mut().clear());
    assert!(e.unwrap().contains("allow_hosts"));

    // a CAS without v2 reconstructions
    let v1 = start(&python, &data, &["--disable-v2"]);
    let mut m1 = open(&[("endpoint", &v1.endpoint), ("repo", "tester/m")]).unwrap();
    let (part, _) = read_all(&mut m1, "dir/w.bin", 100, 200_000);
    assert!(part == w[100..200_100]);
    let (whole, _) = read_all(&mut m1, "small.bin", 0, 1000);
    assert_eq!(whole, files[1].1);
    let v1_host = v1.endpoint.trim_start_matches("http://").to_string();
    drop(v1);

    // ---- bucket mount
    create_bucket(&ep, "tester/b");
    let mut b = open(&[("endpoint", &ep), ("bucket", "tester/b")]).unwrap();
    assert!(names(&mut b, "").is_empty());
    let big = noise(9 << 20, 3);
    let a = b
        .store("a/big.bin", big.len() as u64, &mut |o, l| {
            Ok(big[o as usize..(o as usize + l as usize).min(big.len())].to_vec())
        })
        .unwrap();
    assert_eq!(a.size, big.len() as u64);
    assert_eq!(b.stat("a/big.bin").unwrap().change, a.change);
    let (whole, eof) = read_all(&mut b, "a/big.bin", 0, 10 << 20);
    assert!(eof && whole == big, "whole bucket file, verified");
    let (part, _) = read_all(&mut b, "a/big.bin", 8 << 20, 4096);
    assert!(part == big[8 << 20..(8 << 20) + 4096]);

    let e = b.create("empty.txt", true).unwrap();
    assert_eq!(e.size, 0);
    assert_eq!(b.stat("empty.txt").unwrap().size, 0);
    assert_eq!(read_all(&mut b, "empty.txt", 0, 10), (Vec::new(), true));
    assert_eq!(b.create("empty.txt", true).unwrap_err(), Error::Exists);
    assert_eq!(b.create("empty.txt", false).unwrap().size, 0);

    b.mkdir("d").unwrap();
    assert_eq!(b.mkdir("d").unwrap_err(), Error::Exists);
    assert!(names(&mut b, "").contains(&"d".to_string()));
    b.rename("d", "d2").unwrap();
    assert_eq!(b.stat("d").unwrap_err(), Error::NotFound);
    b.rmdir("d2").unwrap();
    assert_eq!(b.stat("d2").unwrap_err(), Error::NotFound);

    b.rename("a/big.bin", "b/moved.bin").unwrap();
    assert_eq!(b.stat("a/big.bin").unwrap_err(), Error::NotFound);
    assert_eq!(
        b.stat("a").unwrap_err(),
        Error::NotFound,
        "a bucket keeps no empty dirs"
    );
    b.rename("b", "c").unwrap();
    let (part, _) = read_all(&mut b, "c/moved.bin", 5, 10);
    assert!(part == big[5..15]);
    assert_eq!(b.rmdir("c").unwrap_err(), Error::NotEmpty);
    assert_eq!(b.remove("c").unwrap_err(), Error::IsDir);
    b.remove("c/moved.bin").unwrap();
    assert_eq!(b.stat("c/moved.bin").unwrap_err(), Error::NotFound);
    let mut left = names(&mut b, "");
    left.sort();
    assert_eq!(left, ["empty.txt"]);

    // A directory of several Hub pages (3 entries each): created into, looked up, listed once
    // each, including a directory made here that later got a file on a later page.
    b.mkdir("many").unwrap();
    b.mkdir("many/zz").unwrap();
    for f in ["f1", "f2", "f3", "f4", "f5"] {
        b.create(&format!("many/{f}"), true).unwrap();
    }
    b.create("many/zz/in", true).unwrap();
    assert_eq!(b.create("many/f4", true).unwrap_err(), Error::Exists);
    let mut many = names(&mut b, "many");
    many.sort();
    assert_eq!(many, ["f1", "f2", "f3", "f4", "f5", "zz"]);
    // With every page of it kept, creates in it list it no more (they once did, each time).
    let trees = requests(&ep, "bucket_tree:GET");
    for f in ["f6", "f7", "f8"] {
        b.create(&format!("many/{f}"), true).unwrap();
    }
    assert_eq!(names(&mut b, "many").len(), 9);
    assert_eq!(requests(&ep, "bucket_tree:GET"), trees);
    b.remove("many/zz/in").unwrap();
    assert_eq!(
        b.lookup("many/zz").unwrap().kind,
        crate::tree::Kind::Dir,
        "made here, so still there"
    );
    assert_eq!(b.rmdir("many").unwrap_err(), Error::NotEmpty);
    for f in ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"] {
        b.remove(&format!("many/{f}")).unwrap();
    }
    b.rmdir("many/zz").unwrap();
    b.rmdir("many").unwrap();
    assert_eq!(names(&mut b, ""), ["empty.txt"]);

    let hub_host = ep.trim_start_matches("http://").to_string();
    TOKEN_HOSTS.with(|t| {
        let hubs = [&hub_host, &v1_host];
        assert!(
            t.borrow().iter().all(|h| hubs.contains(&h)),
            "the token went only to Hubs"
        )
    });
    drop(hub);
}

/// A file of two xorbs (over 64 MiB): uploaded, then read across the xorb boundary and whole.
#[test]
fn multi_xorb_bucket_file() {
    let Some(python) = venv_python() else {
        eprintln!("SKIPPED: no fakehub venv (run tests/hub/setup.sh)");
        return;
    };
    let scratch = Scratch::new("big");
    let hub = start(&python, &scratch.0.join("data"), &[]);
    create_bucket(&hub.endpoint, "tester/big");
    let mut b = open(&[("endpoint", &hub.endpoint), ("bucket", "tester/big")]).unwrap();
    let big = noise(70 << 20, 4);
    b.store("big.bin", big.len() as u64, &mut |o, l| {
        Ok(big[o as usize..(o as usize + l as usize).min(big.len())].to_vec())
    })
    .unwrap();
    let at = (64 << 20) - 1000;
    let (part, _) = read_all(&mut b, "big.bin", at as u64, 1 << 20);
    assert!(part == big[at..at + (1 << 20)], "across the xorb boundary");
    let (whole, eof) = read_all(&mut b, "big.bin", 0, 80 << 20);
    assert!(eof && whole == big, "whole, verified");
    drop(hub);
}
