//! Hostile plugins, and hostile buckets behind them: the plugin sandbox bounds what a plugin
//! can take and where its requests go. Each case is played by an ordinary user (uid 1000)
//! through NFS against a mount that squashes root: the faulty test plugin (tests/plugins/faulty)
//! sets headers the host owns, sends a secret to a second allowed host, floods its log and
//! stderr, takes a response body larger than its memory or its mount's host buffers, or comes
//! as a component with a second memory or a large table; and a bucket (moto) holds directory
//! markers whose keys are no file names. Each must be refused or survived, with the mount still
//! serving.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use nfs3_types::nfs3::nfsstat3;
use tempfile::TempDir;

use crate::harness::{
    faulty_wasm, read_http_head, spawn, tempdir, toml_str, Client, Server, INSECURE,
};
use crate::s3_server::{MotoServer, BUCKET, KEY_ID_ENV, SECRET_ENV};

/// What the faulty plugin's hello.txt holds.
const HELLO: &[u8] = b"hello from a faulty plugin\n";
/// An ordinary user.
const USER: Option<(u32, u32)> = Some((1000, 1000));

/// A copy of the faulty plugin (`wasm`, or the plugin as built) in a directory of its own.
fn plugin_file(wasm: &[u8]) -> (TempDir, String) {
    let dir = tempdir("nfsgw-hostile-plugin-");
    let path = dir.path().join("faulty.wasm");
    std::fs::write(&path, wasm).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// The `[[mount]]` table of the faulty plugin at /faulty; `keys` go into the mount's table,
/// `tables` after it (`[mount.limits]`, `[mount.secrets]`...).
fn faulty_mount(plugin: &str, keys: &str, tables: &str) -> String {
    format!(
        "[[mount]]\nname = \"faulty\"\nplugin = {}\n{INSECURE}{keys}\n{tables}",
        toml_str(plugin)
    )
}

/// Mounts /faulty as the ordinary user.
async fn mount_as_user(server: &Server) -> Client {
    server
        .try_mount_as("/faulty", USER)
        .await
        .unwrap_or_else(|e| panic!("mount: {e:?}\n{}", server.stderr()))
}

/// LOOKUP of `name` in the root: what the plugin answered.
async fn probe(nfs: &mut Client, name: &str) -> Result<(), nfsstat3> {
    let root = nfs.root.clone();
    nfs.lookup(&root, name).await.map(drop)
}

/// The mount still serves: hello.txt reads back.
async fn assert_still_serving(nfs: &mut Client, server: &mut Server) {
    server.assert_alive();
    assert_eq!(nfs.read_path("hello.txt").await, HELLO);
}

/// A loopback HTTP server: it answers every request 200 with a body of `body_len` bytes
/// (announced in Content-Length or not) and keeps the request heads it saw.
struct Listener {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    fn start(body_len: usize, announce_length: bool) -> Listener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    seen.lock().unwrap().push(read_http_head(&mut conn));
                    let length = if announce_length {
                        format!("Content-Length: {body_len}\r\n")
                    } else {
                        String::new()
                    };
                    let reply = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    let block = vec![b'z'; 64 << 10];
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(block.len());
                        if conn.write_all(&block[..n]).is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        Listener { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The value of the secret `token`.
const TOKEN: &str = "sekrit-value";

/// A server with the faulty plugin allowed to reach `hosts` (loopback ports) and granted the
/// secret `token` without `hosts`.
async fn with_outbound(hosts: &[u16]) -> (Server, Client, TempDir) {
    let (dir, plugin) = plugin_file(faulty_wasm());
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let allow: Vec<String> = hosts.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let server = Server::start(&faulty_mount(
        &plugin,
        &format!("allow_hosts = [{}]\n", allow.join(", ")),
        &format!(
            "[mount.secrets]\ntoken = {{ file = {} }}\n",
            toml_str(token.to_str().unwrap())
        ),
    ));
    let nfs = mount_as_user(&server).await;
    (server, nfs, dir)
}

#[tokio::test]
async fn a_plugin_cannot_set_host_authorization_or_cookie_headers() {
    let endpoint = Listener::start(0, true);
    let (mut server, mut nfs, _dir) = with_outbound(&[endpoint.port]).await;
    for header in ["host", "authorization", "cookie", "proxy-authorization"] {
        assert_eq!(
            probe(&mut nfs, &format!("http-hdr-{header}-{}", endpoint.port)).await,
            Err(nfsstat3::NFS3ERR_ACCES),
            "a request setting {header:?} was not refused"
        );
    }
    assert!(
        endpoint.heads().is_empty(),
        "refused requests reached the endpoint: {:?}",
        endpoint.heads()
    );
    // The same request without a header of the host's goes through, with the secret.
    assert_eq!(
        probe(&mut nfs, &format!("http-hdr-accept-{}", endpoint.port)).await,
        Ok(())
    );
    // (A LOOKUP may stat more than once: each stat is a request.)
    let heads = endpoint.heads();
    assert!(!heads.is_empty());
    for head in &heads {
        assert!(
            head.contains(&format!("authorization: bearer {TOKEN}")),
            "{head}"
        );
        assert!(head.contains("accept: nfsgw-probe"), "{head}");
    }
    assert_still_serving(&mut nfs, &mut server).await;
}

#[tokio::test]
async fn a_secret_without_hosts_goes_only_to_the_mounts_endpoint() {
    let (endpoint, second) = (Listener::start(0, true), Listener::start(0, true));
    let (mut server, mut nfs, _dir) = with_outbound(&[endpoint.port, second.port]).await;
    // The first allowed host is the mount's endpoint: the secret goes there.
    assert_eq!(
        probe(&mut nfs, &format!("http-{}", endpoint.port)).await,
        Ok(())
    );
    assert!(!endpoint.heads().is_empty());
    assert!(
        endpoint
            .heads()
            .iter()
            .all(|h| h.contains(&format!("authorization: bearer {TOKEN}"))),
        "{:?}",
        endpoint.heads()
    );
    // The second allowed host: refused with the secret, reachable without it.
    assert_eq!(
        probe(&mut nfs, &format!("http-{}", second.port)).await,
        Err(nfsstat3::NFS3ERR_ACCES),
        "the secret was sent to a second allowed host"
    );
    assert_eq!(
        probe(&mut nfs, &format!("http-anon-{}", second.port)).await,
        Ok(())
    );
    let heads = second.heads();
    assert!(!heads.is_empty());
    assert!(heads.iter().all(|h| !h.contains(TOKEN)), "{heads:?}");
    assert_still_serving(&mut nfs, &mut server).await;
}

#[tokio::test]
async fn a_plugin_that_floods_its_log_and_stderr_leaves_a_bounded_server_log() {
    let (_dir, plugin) = plugin_file(faulty_wasm());
    let mut server = Server::start(&faulty_mount(
        &plugin,
        "",
        "[mount.limits]\ncall_timeout_ms = 120000\n",
    ));
    let mut nfs = mount_as_user(&server).await;
    let before = server.stderr().len();
    // Each call writes 8 MiB to the log capability and 8 MiB to stderr, and a 1 MiB line on
    // each: 51 MiB in all.
    for _ in 0..3 {
        assert_eq!(probe(&mut nfs, "spam").await, Err(nfsstat3::NFS3ERR_NOENT));
    }
    assert_still_serving(&mut nfs, &mut server).await;
    let log = server.stderr();
    let grown = log.len() - before;
    assert!(
        grown < 4 << 20,
        "the server's log grew by {grown} bytes for 51 MiB of plugin output"
    );
    assert!(log.contains("bytes cut]"), "long lines were not cut");
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "a line of the server's log is longer than a cut plugin line"
    );
}

/// Asks the faulty plugin (`memory_mb = 32`, these extra `limits`) for a response body from
/// `listener`: the plugin must be told it is too large, and the mount go on serving.
async fn assert_body_refused(listener: &Listener, limits: &str) {
    let (_dir, plugin) = plugin_file(faulty_wasm());
    let mut server = Server::start(&faulty_mount(
        &plugin,
        &format!("allow_hosts = [\"127.0.0.1:{}\"]\n", listener.port),
        &format!("[mount.limits]\nmemory_mb = 32\n{limits}"),
    ));
    let mut nfs = mount_as_user(&server).await;
    assert_eq!(
        probe(&mut nfs, &format!("http-big-{}", listener.port)).await,
        Err(nfsstat3::NFS3ERR_FBIG),
        "the plugin was not told its response was too large"
    );
    assert!(!listener.heads().is_empty());
    assert_still_serving(&mut nfs, &mut server).await;
}

#[tokio::test]
async fn a_response_body_larger_than_the_plugins_memory_is_refused() {
    // 64 MiB, announced, for a plugin with 32 MiB of memory.
    assert_body_refused(&Listener::start(64 << 20, true), "").await;
}

#[tokio::test]
async fn a_response_body_larger_than_the_mounts_host_buffers_is_refused() {
    // 8 MiB, not announced, for a mount with 4 MiB of host buffers.
    assert_body_refused(&Listener::start(8 << 20, false), "host_buffers_mb = 4\n").await;
}

// ---------------------------------------------------------------------------------------------
// Components with more than one memory, or a large table: the faulty plugin, rewritten.

fn read_leb(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

fn leb(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Gives a section's new content (by its id and content), or None to keep it.
type SectionEdit<'a> = dyn FnMut(u8, &[u8]) -> Option<Vec<u8>> + 'a;

/// Rewrites the sections of a binary (a component or a core module: an 8-byte preamble, then
/// sections) with `edit`, which returns a section's new content or None to keep it.
fn edit_sections(binary: &[u8], edit: &mut SectionEdit) -> Vec<u8> {
    let mut out = binary[..8].to_vec();
    let mut at = 8;
    while at < binary.len() {
        let id = binary[at];
        at += 1;
        let size = read_leb(binary, &mut at) as usize;
        let content = &binary[at..at + size];
        at += size;
        let content = edit(id, content).unwrap_or_else(|| content.to_vec());
        out.push(id);
        out.extend(leb(content.len() as u64));
        out.extend(content);
    }
    out
}

/// The faulty plugin with `edit` applied to the sections of its core modules (section 1 of a
/// component); panics unless `edit` changed something.
fn faulty_with(edit: &mut SectionEdit) -> Vec<u8> {
    let mut changed = false;
    let patched = edit_sections(faulty_wasm(), &mut |id, module| {
        if id != 1 {
            return None;
        }
        let edited = edit_sections(module, &mut |id, content| {
            let new = edit(id, content);
            changed |= new.is_some();
            new
        });
        Some(edited)
    });
    assert!(changed, "the faulty plugin has no section to rewrite");
    patched
}

/// The faulty plugin whose main module has a second memory of `mib` MiB.
fn faulty_with_second_memory(mib: u64) -> Vec<u8> {
    let mut done = false;
    faulty_with(&mut |id, content| {
        if id != 5 || done {
            return None;
        }
        done = true;
        let mut at = 0;
        let count = read_leb(content, &mut at);
        let mut new = leb(count + 1);
        new.extend_from_slice(&content[at..]);
        new.push(0x00); // limits: a minimum only
        new.extend(leb(mib * 16)); // 64 KiB pages
        Some(new)
    })
}

/// The faulty plugin whose first table starts with `elements` elements.
fn faulty_with_large_table(elements: u64) -> Vec<u8> {
    let mut done = false;
    faulty_with(&mut |id, content| {
        if id != 4 || done {
            return None;
        }
        done = true;
        let mut at = 0;
        let count = read_leb(content, &mut at);
        let reftype = content[at];
        let flags = content[at + 1];
        at += 2;
        assert!(flags <= 1, "table limits flags {flags:#x}");
        read_leb(content, &mut at);
        if flags == 1 {
            read_leb(content, &mut at);
        }
        let mut new = leb(count);
        new.extend([reftype, 0x00]);
        new.extend(leb(elements));
        new.extend_from_slice(&content[at..]);
        Some(new)
    })
}

#[tokio::test]
async fn a_second_memory_counts_against_memory_mb_with_the_first() {
    // 20 MiB in the second memory: the first may grow by a megabyte, not by 16.
    let (_dir, plugin) = plugin_file(&faulty_with_second_memory(20));
    let mut server = Server::start(&faulty_mount(
        &plugin,
        "",
        "[mount.limits]\nmemory_mb = 32\ninstances = 1\n",
    ));
    let mut nfs = mount_as_user(&server).await;
    assert_eq!(probe(&mut nfs, "grow-1").await, Ok(()));
    assert_eq!(
        probe(&mut nfs, "grow-16").await,
        Err(nfsstat3::NFS3ERR_NOSPC),
        "two memories grew past memory_mb together"
    );
    assert_still_serving(&mut nfs, &mut server).await;
}

#[test]
fn a_table_larger_than_memory_mb_is_refused() {
    // 8 M elements of a pointer each: 64 MiB of host memory, for a mount of 32.
    let (_dir, plugin) = plugin_file(&faulty_with_large_table(8 << 20));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n\n{}",
        faulty_mount(&plugin, "", "[mount.limits]\nmemory_mb = 32\n")
    );
    match spawn(&config) {
        Ok(server) => panic!(
            "nfsgw started a plugin whose table is larger than memory_mb\n{}",
            server.stderr()
        ),
        Err(exited) => assert!(
            exited.stderr.contains("instantiating the plugin failed"),
            "{exited}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// A bucket with directory markers whose keys are no file names.

/// PUTs `key` (already percent-encoded for the URL path) into moto's bucket, unsigned.
fn put_raw(moto: &MotoServer, key: &str, body: &[u8]) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    write!(
        stream,
        "PUT /{BUCKET}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        moto.port,
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "PUT {key}: {reply}");
}

#[tokio::test]
async fn marker_keys_that_are_no_names_never_show_up_as_entries() {
    let moto = MotoServer::start();
    put_raw(&moto, "a/ok.txt", b"fine");
    let long = "n".repeat(300);
    for marker in [
        "a/%2E%2E/b/".to_string(),
        "a/%2Fb/".to_string(),
        "%2E%2E/".to_string(),
        "a/%2E/".to_string(),
        "%2Fetc/".to_string(),
        format!("a/{long}/"),
    ] {
        put_raw(&moto, &marker, b"");
    }
    let mut server = Server::start(&format!(
        "[[mount]]\nname = \"bucket\"\nplugin = \"s3\"\n{INSECURE}\n[mount.s3]\nbucket = {}\n\
         endpoint = {}\npath_style = true\nallow_http = true\naccess_key_id_env = {}\n\
         secret_access_key_env = {}\n",
        toml_str(BUCKET),
        toml_str(moto.endpoint()),
        toml_str(KEY_ID_ENV),
        toml_str(SECRET_ENV),
    ));
    let mut nfs = server
        .try_mount_as("/bucket", USER)
        .await
        .unwrap_or_else(|e| panic!("mount: {e:?}\n{}", server.stderr()));
    let root = nfs.root.clone();
    assert_eq!(
        nfs.readdir_names(&root).await,
        Ok(vec!["a".to_string()]),
        "the root of a bucket holding \"../\" and \"/etc/\""
    );
    let a = nfs.lookup(&root, "a").await.unwrap();
    assert_eq!(
        nfs.readdir_names(&a).await,
        Ok(vec!["ok.txt".to_string()]),
        "a directory holding \"a/../b/\", \"a//b/\", \"a/./\" and a 300-byte name"
    );
    assert_eq!(nfs.read_path("a/ok.txt").await, b"fine");
    server.assert_alive();
}
