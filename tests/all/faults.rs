//! Misbehaving plugins and bad configs: a plugin that traps, hangs or hogs memory fails only
//! its own call, and a config error stops the server with a message that says where.

use std::path::Path;
use std::time::{Duration, Instant};

use nfs3_types::nfs3::nfsstat3;
use tempfile::TempDir;

use crate::harness::{
    faulty_wasm, free_port, listening, local_mount, read_http_head, spawn, tempdir, toml_str,
    Client, Exited, Server,
};

/// What the faulty plugin's hello.txt holds.
const HELLO: &[u8] = b"hello from a faulty plugin\n";

/// A server with the faulty plugin at /faulty (500 ms call timeout, 32 MiB of memory, two
/// instances) next to a `local` mount at /data.
struct Faulty {
    faulty: Client,
    data: Client,
    server: Server,
    data_dir: TempDir,
    _plugin_dir: TempDir,
}

impl Faulty {
    async fn start() -> Faulty {
        let plugin_dir = tempdir("nfsgw-faulty-plugin-");
        let wasm = plugin_dir.path().join("faulty.wasm");
        std::fs::write(&wasm, faulty_wasm()).unwrap();
        let data_dir = tempdir("nfsgw-faulty-data-");
        let server = Server::start(&format!(
            "[[mount]]\nname = \"faulty\"\nplugin = {}\n{}[mount.limits]\ncall_timeout_ms = 500\n\
             memory_mb = 32\ninstances = 2\n\n{}",
            toml_str(wasm.to_str().unwrap()),
            crate::harness::NO_ROOT_SQUASH,
            local_mount("data", data_dir.path(), false, "")
        ));
        let faulty = server.mount("/faulty").await;
        let data = server.mount("/data").await;
        Faulty {
            faulty,
            data,
            server,
            data_dir,
            _plugin_dir: plugin_dir,
        }
    }

    /// Asks the plugin to misbehave: LOOKUP of `name` must fail with NFS3ERR_IO. Returns how
    /// long the call took.
    async fn provoke(&mut self, name: &str) -> Duration {
        let root = self.faulty.root.clone();
        let started = Instant::now();
        let result = self.faulty.lookup(&root, name).await;
        let took = started.elapsed();
        assert_eq!(
            result.map(|_| ()),
            Err(nfsstat3::NFS3ERR_IO),
            "LOOKUP {name} on the faulty plugin"
        );
        took
    }

    /// The server still serves: the faulty mount's hello.txt reads back, and the data mount
    /// takes a new file (checked on the host).
    async fn assert_still_serving(&mut self, tag: &str) {
        self.server.assert_alive();
        assert_eq!(
            self.faulty.read_path("hello.txt").await,
            HELLO,
            "after {tag}"
        );
        let listing = self.faulty.readdirplus_all(&self.faulty.root.clone()).await;
        assert_eq!(listing.unwrap().names(), ["hello.txt"], "after {tag}");
        let root = self.data.root.clone();
        let name = format!("after-{tag}");
        self.data.put(&root, &name, tag.as_bytes()).await;
        assert_eq!(self.data.read_path(&name).await, tag.as_bytes());
        assert_eq!(
            std::fs::read(self.data_dir.path().join(&name)).unwrap(),
            tag.as_bytes()
        );
    }
}

#[tokio::test]
async fn a_trapping_plugin_fails_only_its_own_calls() {
    let mut t = Faulty::start().await;
    t.assert_still_serving("start").await;
    // More traps than instances: each trapped instance must be replaced, not leaked.
    for i in 0..5 {
        t.provoke("trap").await;
        t.assert_still_serving(&format!("trap-{i}")).await;
    }
}

#[tokio::test]
async fn a_hanging_plugin_is_stopped_by_the_call_timeout() {
    let mut t = Faulty::start().await;
    for i in 0..3 {
        let took = t.provoke("hang").await;
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(10),
            "LOOKUP hang took {took:?} with call_timeout_ms = 500"
        );
        t.assert_still_serving(&format!("hang-{i}")).await;
    }

    // While one call hangs, the other instance and the other mount keep serving.
    let mut other = t.server.mount("/faulty").await;
    let root = other.root.clone();
    let hanging = tokio::spawn(async move {
        let result = other.lookup(&root, "hang").await;
        (result, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.assert_still_serving("during-hang").await;
    let served = Instant::now();
    let (result, hang_ended) = hanging.await.unwrap();
    assert_eq!(result.map(|_| ()), Err(nfsstat3::NFS3ERR_IO));
    assert!(
        served < hang_ended,
        "the other calls had to wait for the hanging one to time out"
    );
    t.assert_still_serving("after-concurrent-hang").await;
}

#[tokio::test]
async fn a_memory_hog_is_stopped_by_the_memory_limit() {
    let mut t = Faulty::start().await;
    for i in 0..3 {
        let took = t.provoke("hog").await;
        assert!(took < Duration::from_secs(10), "LOOKUP hog took {took:?}");
        t.assert_still_serving(&format!("hog-{i}")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Config errors: the process exits 1 with `nfsgw: <message>` and never listens.

/// Runs nfsgw on a config that must be refused; returns the error message (stderr from
/// "nfsgw: " on).
fn refused(config: &str, port: u16) -> String {
    let exited: Exited = match spawn(config) {
        Ok(server) => panic!(
            "nfsgw started (port {}) on a config it should refuse:\n{config}",
            server.port
        ),
        Err(exited) => exited,
    };
    assert_eq!(exited.status.code(), Some(1), "exit code\n{exited}");
    assert!(
        !exited.stdout.contains("serving"),
        "nfsgw said it serves\n{exited}"
    );
    assert!(
        !listening(port),
        "something listens on port {port}\n{exited}"
    );
    let at = exited
        .stderr
        .find("nfsgw: ")
        .unwrap_or_else(|| panic!("no `nfsgw: ` error line on stderr\n{exited}"));
    exited.stderr[at..].to_string()
}

/// Three lines, so that the line numbers the tests expect stay put.
fn header(port: u16) -> String {
    format!("[server]\nlisten = \"127.0.0.1:{port}\"\nportmap = \"off\"\n")
}

fn mount_text(name: &str, plugin: &str, root: &Path) -> String {
    format!(
        "[[mount]]\nname = \"{name}\"\nplugin = {}\n[mount.config]\nroot = {}\n",
        toml_str(plugin),
        toml_str(root.to_str().unwrap())
    )
}

#[test]
fn config_unknown_key_reports_its_line() {
    let (port, dir) = (free_port(), tempdir("nfsgw-cfg-"));
    // Line 7 holds the misspelt key.
    let config = format!(
        "{}[[mount]]\nname = \"data\"\nplugin = \"local\"\nread_onyl = true\n[mount.config]\n\
         root = {}\n",
        header(port),
        toml_str(dir.path().to_str().unwrap())
    );
    assert_eq!(config.lines().nth(6), Some("read_onyl = true"));
    let message = refused(&config, port);
    assert!(message.contains("read_onyl"), "{message}");
    assert!(message.contains("line 7"), "{message}");
    assert!(message.contains("config.toml"), "names the file: {message}");
}

#[test]
fn config_unknown_plugin_lists_the_bundled_ones() {
    let (port, dir) = (free_port(), tempdir("nfsgw-cfg-"));
    // `plugin` is on line 6.
    let config = format!(
        "{}{}",
        header(port),
        mount_text("data", "nosuch", dir.path())
    );
    assert_eq!(config.lines().nth(5), Some("plugin = \"nosuch\""));
    let message = refused(&config, port);
    assert!(message.contains("\"nosuch\""), "{message}");
    assert!(
        message.contains("bundled: hub, local, memory, s3;"),
        "lists the bundled plugins: {message}"
    );
    assert!(message.contains("config.toml:6"), "{message}");
}

#[test]
fn config_missing_root_directory_names_the_key() {
    let port = free_port();
    let missing = tempdir("nfsgw-cfg-").path().join("does-not-exist");
    let config = format!("{}{}", header(port), mount_text("data", "local", &missing));
    let message = refused(&config, port);
    assert!(message.contains("config.root"), "{message}");
    assert!(message.contains(missing.to_str().unwrap()), "{message}");
    assert!(message.contains("config.toml:8"), "{message}");
    assert!(message.contains("\"data\""), "names the mount: {message}");
}

#[test]
fn config_plugin_that_is_not_a_component_fails_clearly() {
    let dir = tempdir("nfsgw-cfg-");
    let core_module = dir.path().join("core-module.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not WebAssembly at all").unwrap();
    for plugin in [&core_module, &garbage] {
        let port = free_port();
        let config = format!(
            "{}{}",
            header(port),
            mount_text("data", plugin.to_str().unwrap(), dir.path())
        );
        let message = refused(&config, port);
        assert!(
            message.contains("not a valid WebAssembly component"),
            "{}: {message}",
            plugin.display()
        );
        assert!(message.contains(plugin.to_str().unwrap()), "{message}");
    }

    let port = free_port();
    let absent = dir.path().join("absent.wasm");
    let config = format!(
        "{}{}",
        header(port),
        mount_text("data", absent.to_str().unwrap(), dir.path())
    );
    let message = refused(&config, port);
    assert!(message.contains("cannot read"), "{message}");
    assert!(message.contains(absent.to_str().unwrap()), "{message}");
    assert!(message.contains("config.toml:6"), "{message}");
}

#[test]
fn config_duplicate_mount_name_points_at_both() {
    let (port, dir) = (free_port(), tempdir("nfsgw-cfg-"));
    let config = format!(
        "{}{}\n{}",
        header(port),
        mount_text("data", "local", dir.path()),
        mount_text("data", "local", dir.path())
    );
    assert_eq!(config.lines().nth(4), Some("name = \"data\""));
    assert_eq!(config.lines().nth(10), Some("name = \"data\""));
    let message = refused(&config, port);
    assert!(message.contains("already defined"), "{message}");
    assert!(
        message.contains("config.toml:11") && message.contains("config.toml:5"),
        "points at both lines: {message}"
    );
}

#[tokio::test]
async fn a_plugin_reaches_no_network_and_no_host_file_it_was_not_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let plugin_dir = tempdir("nfsgw-faulty-plugin-");
    let wasm = plugin_dir.path().join("faulty.wasm");
    std::fs::write(&wasm, faulty_wasm()).unwrap();
    let server = Server::start(&format!(
        "[[mount]]\nname = \"faulty\"\nplugin = {}\n{}[mount.config]\nprobe_port = \"{port}\"\n",
        toml_str(wasm.to_str().unwrap()),
        crate::harness::NO_ROOT_SQUASH,
    ));
    let mut nfs = server.mount("/faulty").await;
    let root = nfs.root.clone();
    // The plugin answers ACCES when the sandbox refused it, and OK when it got through.
    assert_eq!(
        nfs.lookup(&root, "net").await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES),
        "the plugin opened a TCP connection"
    );
    assert_eq!(
        nfs.lookup(&root, &format!("http-anon-{port}"))
            .await
            .map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES),
        "a mount without `allow_hosts` let the plugin make an HTTP request"
    );
    assert!(
        listener.accept().is_err(),
        "a connection reached the host's listener"
    );
    assert_eq!(
        nfs.lookup(&root, "escape").await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_ACCES),
        "the plugin read a host file outside its grants"
    );
}

/// A loopback HTTP listener that answers every request 200 and keeps the request heads it saw.
struct Probe {
    port: u16,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Probe {
    fn start() -> Probe {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                seen.lock().unwrap().push(read_http_head(&mut conn));
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Probe { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn outbound_http_reaches_only_allowed_hosts_and_secrets_only_their_hosts() {
    let (granted, elsewhere, denied) = (Probe::start(), Probe::start(), Probe::start());
    let plugin_dir = tempdir("nfsgw-faulty-plugin-");
    let wasm = plugin_dir.path().join("faulty.wasm");
    std::fs::write(&wasm, faulty_wasm()).unwrap();
    let token_file = plugin_dir.path().join("token");
    std::fs::write(&token_file, "sekrit-value\n").unwrap();
    let server = Server::start(&format!(
        "[[mount]]\nname = \"faulty\"\nplugin = {}\n{}\
         allow_hosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
         [mount.secrets]\ntoken = {{ file = {}, hosts = [\"127.0.0.1:{}\"] }}\n",
        toml_str(wasm.to_str().unwrap()),
        crate::harness::NO_ROOT_SQUASH,
        granted.port,
        elsewhere.port,
        toml_str(token_file.to_str().unwrap()),
        granted.port,
    ));
    let mut nfs = server.mount("/faulty").await;
    let root = nfs.root.clone();
    let mut outcome = async |name: String| nfs.lookup(&root, &name).await.map(|_| ());

    // An allowed host, with the secret it is bound to: the host added it as a bearer token.
    assert_eq!(outcome(format!("http-{}", granted.port)).await, Ok(()));
    let heads = granted.heads();
    assert!(!heads.is_empty());
    assert!(
        heads
            .iter()
            .all(|h| h.contains("authorization: bearer sekrit-value")),
        "{heads:?}"
    );
    // An allowed host the secret is not bound to: refused before connecting with it; without
    // the secret the same host is reachable, and gets no Authorization header.
    assert_eq!(
        outcome(format!("http-{}", elsewhere.port)).await,
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert!(elsewhere.heads().is_empty(), "{:?}", elsewhere.heads());
    assert_eq!(
        outcome(format!("http-anon-{}", elsewhere.port)).await,
        Ok(())
    );
    assert!(elsewhere
        .heads()
        .iter()
        .all(|h| !h.contains("authorization")));
    // A host not in `allow_hosts`: refused, and nothing reaches it.
    assert_eq!(
        outcome(format!("http-anon-{}", denied.port)).await,
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert!(denied.heads().is_empty(), "{:?}", denied.heads());
}
