//! The test harness: starts `nfsgw` on a config of the test's own (temporary directory,
//! ephemeral port), talks NFSv3 to it through `nfs3_client`, and runs libnfs's command-line
//! clients.
//!
//! Every test starts its own server with its own directories, so tests run in parallel. A
//! server's stderr goes to a file that is printed when a test fails while the server is alive.

#![allow(dead_code)] // not every test module uses every helper

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{ConnectError, Nfs3Connection, Nfs3ConnectionBuilder, RpcError};
use nfs3_types::nfs3::{
    cookieverf3, createhow3, createverf3, devicedata3, diropargs3, fattr3, filename3, ftype3,
    mknoddata3, nfs_fh3, nfspath3, nfsstat3, nfstime3, sattr3, set_mtime, specdata3, stable_how,
    symlinkdata3, COMMIT3args, CREATE3args, FSINFO3args, GETATTR3args, LINK3args, LOOKUP3args,
    MKDIR3args, MKNOD3args, Nfs3Option, Nfs3Result, READ3args, READDIR3args, READDIRPLUS3args,
    READLINK3args, REMOVE3args, RENAME3args, RMDIR3args, SETATTR3args, SYMLINK3args, WRITE3args,
};
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use tempfile::TempDir;

use crate::s3_server;

/// How long a server may take to print its ready line (plugins are compiled at startup).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a failing server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The line `nfsgw` prints once it serves.
const READY_PREFIX: &str = "nfsgw: serving NFSv3 + MOUNT on ";
/// The line `nfsgw` prints, before the ready line, when it serves a portmapper.
const PORTMAP_PREFIX: &str = "nfsgw: portmapper on ";
/// The environment variable every server started here has, holding [`ADMIN_TOKEN`], for
/// configs with `admin_token_env`.
pub const ADMIN_TOKEN_ENV: &str = "NFSGW_TESTS_ADMIN_TOKEN";
pub const ADMIN_TOKEN: &str = "admin-token-of-the-tests-8e1f";

// ---------------------------------------------------------------------------------------------
// Locating and running the binary

/// The `nfsgw` binary of the build the tests belong to: the test binary is
/// `<target>/release/deps/all-HASH`, the server `<target>/release/nfsgw`. `NFSGW_BIN` overrides.
pub fn nfsgw_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NFSGW_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("nfsgw");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the nfsgw binary was not found next to the test binary {} (looked in its parent \
         directories): build it first with `cargo build --release -p nfsgw` using the same \
         CARGO_TARGET_DIR, or set NFSGW_BIN",
        exe.display()
    );
}

/// The cargo target directory the binaries were built in.
fn target_dir() -> PathBuf {
    let bin = nfsgw_binary();
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// The repository the tests run in. Read at run time (cargo sets it for test runs), so a test
/// binary reused from the shared target dir by a clone elsewhere still finds its own tree.
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A TOML basic string holding `s` (paths of temporary directories).
pub fn toml_str(s: impl AsRef<str>) -> String {
    let mut out = String::from("\"");
    for c in s.as_ref().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `[[mount]]` table serving `root` with the bundled `local` plugin; `extra_config` lines go
/// into `[mount.config]` (e.g. `attr_ttl_ms = 200`). Root is not squashed
/// ([`NO_ROOT_SQUASH`]).
pub fn local_mount(name: &str, root: &Path, read_only: bool, extra_config: &str) -> String {
    format!(
        "[[mount]]\nname = {}\nplugin = \"local\"\nread_only = {read_only}\n{NO_ROOT_SQUASH}\
         [mount.config]\nroot = {}\n{extra_config}\n",
        toml_str(name),
        toml_str(root.to_str().expect("UTF-8 temp path")),
    )
}

/// A `[[mount]]` table served by the native `memory` backend, with `extra_config` lines in
/// `[mount.config]` (e.g. `fail_every = 2`). Root is not squashed ([`NO_ROOT_SQUASH`]).
pub fn memory_mount(name: &str, extra_config: &str) -> String {
    format!(
        "[[mount]]\nname = {}\nplugin = \"memory\"\n{NO_ROOT_SQUASH}[mount.config]\n{extra_config}\n",
        toml_str(name),
    )
}

/// A `[[mount]]` table serving `root` with the bundled `local` plugin as nfsgw's defaults
/// serve a stranger: root squashed, devices refused; but calls from unprivileged ports are
/// served (`secure = false`), as the tests' clients send them. `mount_keys` lines go into the
/// mount's table (e.g. `allow_devices = true`). The hostile-client tests use it.
pub fn squashed_local_mount(name: &str, root: &Path, mount_keys: &str) -> String {
    format!(
        "[[mount]]\nname = {}\nplugin = \"local\"\n{INSECURE}{mount_keys}\n[mount.config]\nroot = {}\n",
        toml_str(name),
        toml_str(root.to_str().expect("UTF-8 temp path")),
    )
}

/// The mount keys that keep root's powers: the tests' clients mount as root (AUTH_UNIX uid 0),
/// as a root-run kernel client does, while mounts squash root by default; and they call from
/// unprivileged ports ([`INSECURE`]).
pub const NO_ROOT_SQUASH: &str = "root_squash = false\nsecure = false\n";

/// The mount key that serves calls from unprivileged source ports (mounts are `secure` by
/// default, as exports(5)'s are): `nfs3_client` and libnfs run as a user call from them.
pub const INSECURE: &str = "secure = false\n";

/// A free TCP port on 127.0.0.1 (free when this returns; nobody is expected to take it).
/// A number from the environment variable `name` (a test's case count, say), or `default`
/// when it is not set; a value that is no number stops the test, naming it.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        .is_ok()
}

/// A server process that exited instead of serving.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nfsgw exited with {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A running `nfsgw`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Holds config.toml and stderr.log.
    pub dir: TempDir,
    stdout: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server listening on an ephemeral port with these `[[mount]]` tables and no
    /// portmapper (tests run many servers at once, and port 111 is one port); panics (with its
    /// output) if it does not come up.
    pub fn start(mounts: &str) -> Server {
        Server::start_with(&format!("portmap = \"off\"\n\n{mounts}"))
    }

    /// Starts a server listening on an ephemeral port: `rest` follows the `listen` line inside
    /// `[server]`, so it may set other server keys before its `[[mount]]` tables.
    pub fn start_with(rest: &str) -> Server {
        let config = format!("[server]\nlisten = \"127.0.0.1:0\"\n{rest}");
        match spawn(&config) {
            Ok(server) => server,
            Err(exited) => panic!("nfsgw did not start\n---- config ----\n{config}\n{exited}"),
        }
    }

    /// The port of the server's portmapper, from its "nfsgw: portmapper on ADDR (tcp+udp)"
    /// line (printed before the ready line); `None` when it serves none.
    pub fn portmap_port(&self) -> Option<u16> {
        self.stdout()
            .lines()
            .find_map(|l| l.strip_prefix(PORTMAP_PREFIX))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Panics (with its stderr) if the server process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "nfsgw exited unexpectedly with {status}\n---- stderr ----\n{}",
                self.stderr()
            );
        }
    }

    /// Mounts `export` (e.g. "/data") and connects the NFS client, from an unprivileged port.
    pub async fn mount(&self, export: &str) -> Client {
        match self.try_mount(export).await {
            Ok(client) => client,
            Err(e) => panic!(
                "mounting {export} failed: {e:?}\n---- nfsgw stderr ----\n{}",
                self.stderr()
            ),
        }
    }

    /// Mounts `export` as root (AUTH_UNIX uid 0), as a root-run kernel client does.
    pub async fn try_mount(&self, export: &str) -> Result<Client, ConnectError> {
        self.try_mount_as(export, Some((0, 0))).await
    }

    /// Mounts `export` with AUTH_UNIX credentials `(uid, gid)`, or AUTH_NULL for `None`.
    pub async fn try_mount_as(
        &self,
        export: &str,
        user: Option<(u32, u32)>,
    ) -> Result<Client, ConnectError> {
        let credential = match user {
            Some((uid, gid)) => opaque_auth::auth_unix(&auth_unix {
                machinename: Opaque::borrowed(b"nfsgw-tests"),
                uid,
                gid,
                ..auth_unix::default()
            }),
            None => opaque_auth::default(),
        };
        let conn = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", export)
            .credential(credential)
            .connect_from_privileged_port(false)
            .mount_port(self.port)
            .nfs3_port(self.port)
            .mount()
            .await?;
        let root = conn.root_nfs_fh3();
        Ok(Client { conn, root })
    }

    /// An `nfs://` URL for libnfs's tools: `path` starts with the export, e.g. "/data/a.txt".
    pub fn nfs_url(&self, path: &str) -> String {
        format!("nfs://127.0.0.1{path}?nfsport={0}&mountport={0}", self.port)
    }
}

impl Server {
    /// Sends SIGTERM and waits for the process to end: its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        wait_with_timeout(&mut self.child, EXIT_TIMEOUT).expect("nfsgw did not stop after SIGTERM")
    }

    /// Stops the server and starts it again on the same config and state (on a new port).
    pub fn restart(mut self) -> Server {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        drop(self);
        spawn_in(dir).unwrap_or_else(|exited| panic!("nfsgw did not restart\n{exited}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- nfsgw stderr (port {}) ----\n{}\n---- end of nfsgw stderr ----",
                self.port,
                self.stderr()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `nfsgw --config` on this exact config text: `Ok` once it prints its ready line, `Err`
/// if it exits first. Panics if it does neither in time.
pub fn spawn(config: &str) -> Result<Server, Exited> {
    let dir = tempfile::Builder::new()
        .prefix("nfsgw-server-")
        .tempdir()
        .expect("tempdir");
    std::fs::write(dir.path().join("config.toml"), config).expect("write config");
    spawn_in(dir)
}

/// Like [`spawn`], but no file nfsgw writes may grow past `bytes` (RLIMIT_FSIZE, with
/// SIGXFSZ ignored, so a write past it fails with EFBIG): a disk that fills up under nfsgw.
pub fn spawn_with_file_size_limit(config: &str, bytes: u64) -> Result<Server, Exited> {
    let dir = tempfile::Builder::new()
        .prefix("nfsgw-server-")
        .tempdir()
        .expect("tempdir");
    std::fs::write(dir.path().join("config.toml"), config).expect("write config");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=\"$1\" -- \"$0\" \"$2\" \"$3\"")
        .arg(nfsgw_binary())
        .arg(bytes.to_string())
        .arg("--config")
        .arg(dir.path().join("config.toml"));
    start_in(dir, command)
}

/// Starts nfsgw on the config.toml in `dir`. Its default state directory (inode journals) is
/// under `dir` too, so a restart in the same `dir` finds it and nothing is left behind.
fn spawn_in(dir: TempDir) -> Result<Server, Exited> {
    let mut command = Command::new(nfsgw_binary());
    command.arg("--config").arg(dir.path().join("config.toml"));
    start_in(dir, command)
}

/// Runs `nfsgw demo` serving `demo_dir` on a free port: `Ok` once it prints its ready line.
pub fn spawn_demo(demo_dir: &Path) -> Result<Server, Exited> {
    let dir = tempfile::Builder::new()
        .prefix("nfsgw-server-")
        .tempdir()
        .expect("tempdir");
    let mut command = Command::new(nfsgw_binary());
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--portmap",
            "off",
            "--dir",
        ])
        .arg(demo_dir);
    start_in(dir, command)
}

/// Runs `command` (nfsgw on the config in `dir`) as [`spawn_in`] describes.
fn start_in(dir: TempDir, mut command: Command) -> Result<Server, Exited> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("stderr.log"))
        .expect("stderr.log");
    let mut child = command
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env(s3_server::KEY_ID_ENV, s3_server::KEY_ID)
        .env(s3_server::SECRET_ENV, s3_server::SECRET)
        .env(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", nfsgw_binary().display()));

    let stdout = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<u16>();
    {
        let pipe = child.stdout.take().expect("stdout pipe");
        let stdout = stdout.clone();
        std::thread::spawn(move || {
            // Keeps draining stdout for the server's whole life.
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                    if let Some(port) = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok())
                    {
                        let _ = ready_tx.send(port);
                    }
                }
                let mut out = stdout.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
    }

    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(port) => Ok(Server {
            child,
            port,
            dir,
            stdout,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // stdout closed without a ready line: the process is exiting.
            let status = wait_with_timeout(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
                let _ = child.kill();
                panic!("nfsgw closed its stdout but did not exit");
            });
            // Let the reader thread finish copying stdout.
            std::thread::sleep(Duration::from_millis(50));
            let stdout = stdout.lock().unwrap().clone();
            let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            Err(Exited {
                status,
                stdout,
                stderr,
            })
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "nfsgw printed no ready line within {READY_TIMEOUT:?}\n---- stdout ----\n{}\n\
                 ---- stderr ----\n{}",
                stdout.lock().unwrap(),
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion with a timeout, capturing its output.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let Some(status) = wait_with_timeout(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {timeout:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Plugins built for the tests

static FAULTY_WASM: OnceLock<Vec<u8>> = OnceLock::new();
static LOCAL_WASM: OnceLock<Vec<u8>> = OnceLock::new();

/// Builds the plugin workspace `workspace` (relative to the repo) with the project's script
/// and returns the component `name`.wasm.
fn build_plugin(workspace: &str, name: &str) -> Vec<u8> {
    let repo = repo_root();
    let out = tempfile::Builder::new()
        .prefix("nfsgw-test-plugins-")
        .tempdir()
        .expect("tempdir");
    let started = Instant::now();
    let output = run_with_timeout(
        Command::new("bash")
            .arg(repo.join("scripts/build-plugins.sh"))
            .arg(out.path())
            .arg(repo.join(workspace))
            .env("NFSGW_PLUGIN_TARGET_DIR", target_dir().join("wasm-plugins")),
        Duration::from_secs(900),
    );
    assert!(
        output.status.success(),
        "building {workspace} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("built {workspace} in {:?}", started.elapsed());
    std::fs::read(out.path().join(format!("{name}.wasm"))).expect("the plugin was built")
}

/// The faulty test plugin (tests/plugins/faulty), built once per test process.
pub fn faulty_wasm() -> &'static [u8] {
    FAULTY_WASM.get_or_init(|| build_plugin("tests/plugins", "faulty"))
}

static EXAMPLES: OnceLock<PathBuf> = OnceLock::new();

/// The example plugins in other languages (examples/build.sh), built once per test process
/// into Cargo's scratch directory for tests (a temporary directory held by a static would never
/// be removed): the path of `name`.wasm (python-memfs, javascript-memfs).
pub fn example_wasm(name: &str) -> PathBuf {
    let dir = EXAMPLES.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples");
        std::fs::create_dir_all(&out).expect("the examples' output directory");
        let started = Instant::now();
        let output = run_with_timeout(
            Command::new("bash")
                .arg(repo_root().join("examples/build.sh"))
                .arg(&out),
            Duration::from_secs(1200),
        );
        assert!(
            output.status.success(),
            "examples/build.sh failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("built the example plugins in {:?}", started.elapsed());
        out
    });
    dir.join(format!("{name}.wasm"))
}

/// The bundled `local` plugin as a standalone component, to serve as a user plugin.
pub fn local_wasm() -> &'static [u8] {
    LOCAL_WASM.get_or_init(|| build_plugin("plugins", "local"))
}

// ---------------------------------------------------------------------------------------------
// libnfs command-line tools

/// The path of a libnfs tool (nfs-cp, nfs-ls, nfs-cat), or `None` after saying the test is
/// skipped.
pub fn libnfs_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{name}` is not installed (Debian/Ubuntu: apt-get install libnfs-utils)"
        );
    }
    found
}

/// Runs a libnfs tool and panics (with both outputs and the server's stderr) unless it succeeds.
pub fn run_libnfs(server: &Server, tool: &Path, args: &[&str]) -> Output {
    let output = run_with_timeout(Command::new(tool).args(args), Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{} {args:?} failed with {}\n---- stdout ----\n{}\n---- stderr ----\n{}\n---- nfsgw stderr ----\n{}",
        tool.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.stderr()
    );
    output
}

// ---------------------------------------------------------------------------------------------
// Data and host helpers

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Permission bits of a host path (not following a final symlink).
pub fn host_mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Names in a host directory, sorted.
pub fn host_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Everything under a host directory: (relative path, kind, mode, content or link target),
/// sorted, to compare a tree before and after.
pub fn host_snapshot(dir: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((rel, "symlink".into(), 0, target.into_os_string().into_vec()));
            } else if meta.is_dir() {
                out.push((rel, "dir".into(), mode, Vec::new()));
                walk(base, &path, out);
            } else {
                out.push((rel, "file".into(), mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A temporary directory for a test's files.
pub fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

// ---------------------------------------------------------------------------------------------
// The NFS client

pub type NfsResult<T> = Result<T, nfsstat3>;
type Conn = Nfs3Connection<TokioIo<tokio::net::TcpStream>>;

/// One client connection to one export. Operations return the NFS status of a failure and
/// panic on RPC-level errors (a broken connection or a reply that does not decode).
pub struct Client {
    conn: Conn,
    /// The handle MNT returned for the export.
    pub root: nfs_fh3,
}

/// READ and WRITE transfer size used by the helpers.
const IO_CHUNK: usize = 256 * 1024;
/// READDIRPLUS sizes: small, so that listings take many pages.
const DIR_MAXCOUNT: u32 = 4096;
const DIR_DIRCOUNT: u32 = 1024;

fn rpc<T>(op: &str, result: Result<T, RpcError>) -> T {
    result.unwrap_or_else(|e| panic!("{op}: RPC failed: {e} ({e:?})"))
}

fn status<T, E, R>(result: Nfs3Result<T, E>, ok: impl FnOnce(T) -> R) -> NfsResult<R> {
    match result {
        Nfs3Result::Ok(v) => Ok(ok(v)),
        Nfs3Result::Err((stat, _)) => Err(stat),
    }
}

fn dirop<'a>(dir: &nfs_fh3, name: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3(Opaque::borrowed(name.as_bytes())),
    }
}

/// One directory entry as READDIRPLUS returned it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub fileid: u64,
    pub cookie: u64,
    pub attrs: Option<fattr3>,
    pub handle: Option<nfs_fh3>,
}

/// A whole directory, and how many READDIRPLUS replies it took.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub pages: usize,
}

impl Listing {
    /// Entry names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// Attributes that change nothing; set the fields you want.
pub fn no_change() -> sattr3 {
    sattr3::default()
}

pub fn nfs_time(seconds: u32, nseconds: u32) -> nfstime3 {
    nfstime3 { seconds, nseconds }
}

pub fn is_dir(a: &fattr3) -> bool {
    a.type_ == ftype3::NF3DIR
}

impl Client {
    /// The NFS NULL procedure: whether the server answered at all.
    pub async fn null(&mut self) -> Result<(), RpcError> {
        self.conn.null().await
    }

    pub async fn getattr(&mut self, fh: &nfs_fh3) -> NfsResult<fattr3> {
        let res = rpc(
            "GETATTR",
            self.conn
                .getattr(&GETATTR3args { object: fh.clone() })
                .await,
        );
        status(res, |ok| ok.obj_attributes)
    }

    pub async fn lookup(&mut self, dir: &nfs_fh3, name: &str) -> NfsResult<nfs_fh3> {
        let res = rpc(
            "LOOKUP",
            self.conn
                .lookup(&LOOKUP3args {
                    what: dirop(dir, name),
                })
                .await,
        );
        status(res, |ok| ok.object)
    }

    /// Looks up a '/'-separated path from the export root ("" is the root itself).
    pub async fn lookup_path(&mut self, path: &str) -> NfsResult<nfs_fh3> {
        let mut fh = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            fh = self.lookup(&fh, part).await?;
        }
        Ok(fh)
    }

    /// CREATE with any `how`; returns the new file's handle.
    pub async fn create_how(
        &mut self,
        dir: &nfs_fh3,
        name: &str,
        how: createhow3,
    ) -> NfsResult<nfs_fh3> {
        let res = rpc(
            "CREATE",
            self.conn
                .create(&CREATE3args {
                    where_: dirop(dir, name),
                    how,
                })
                .await,
        );
        let obj = status(res, |ok| ok.obj)?;
        match obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, name).await,
        }
    }

    /// UNCHECKED CREATE with this mode.
    pub async fn create(&mut self, dir: &nfs_fh3, name: &str, mode: u32) -> NfsResult<nfs_fh3> {
        let attrs = sattr3 {
            mode: Nfs3Option::Some(mode),
            ..sattr3::default()
        };
        self.create_how(dir, name, createhow3::UNCHECKED(attrs))
            .await
    }

    /// CREATE (unchecked) of a name given as raw bytes, which need not be UTF-8.
    pub async fn create_raw(&mut self, dir: &nfs_fh3, name: &[u8]) -> NfsResult<()> {
        let args = CREATE3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name)),
            },
            how: createhow3::UNCHECKED(sattr3::default()),
        };
        let res = rpc("CREATE", self.conn.create(&args).await);
        status(res, |_| ())
    }

    pub async fn create_guarded(&mut self, dir: &nfs_fh3, name: &str) -> NfsResult<nfs_fh3> {
        self.create_how(dir, name, createhow3::GUARDED(sattr3::default()))
            .await
    }

    pub async fn create_exclusive(
        &mut self,
        dir: &nfs_fh3,
        name: &str,
        verifier: [u8; 8],
    ) -> NfsResult<nfs_fh3> {
        self.create_how(dir, name, createhow3::EXCLUSIVE(createverf3(verifier)))
            .await
    }

    /// One FILE_SYNC WRITE; returns the count the server wrote.
    pub async fn write(&mut self, fh: &nfs_fh3, offset: u64, data: &[u8]) -> NfsResult<u32> {
        let res = rpc(
            "WRITE",
            self.conn
                .write(&WRITE3args {
                    file: fh.clone(),
                    offset,
                    count: data.len() as u32,
                    stable: stable_how::FILE_SYNC,
                    data: Opaque::borrowed(data),
                })
                .await,
        );
        status(res, |ok| ok.count)
    }

    /// Writes all of `data` at `offset` in chunks; every chunk must be written whole.
    pub async fn write_all(&mut self, fh: &nfs_fh3, offset: u64, data: &[u8]) -> NfsResult<()> {
        for (i, chunk) in data.chunks(IO_CHUNK).enumerate() {
            let at = offset + (i * IO_CHUNK) as u64;
            let n = self.write(fh, at, chunk).await?;
            assert_eq!(
                n as usize,
                chunk.len(),
                "WRITE at {at} wrote {n} of {} bytes",
                chunk.len()
            );
        }
        Ok(())
    }

    /// One READ: the bytes and the eof flag.
    pub async fn read(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        count: u32,
    ) -> NfsResult<(Vec<u8>, bool)> {
        let res = rpc(
            "READ",
            self.conn
                .read(&READ3args {
                    file: fh.clone(),
                    offset,
                    count,
                })
                .await,
        );
        let (data, eof, n) = status(res, |ok| (ok.data.into_owned(), ok.eof, ok.count))?;
        assert_eq!(
            n as usize,
            data.len(),
            "READ count differs from data length"
        );
        Ok((data, eof))
    }

    /// `len` bytes from `offset` (fewer at the end of the file), in as many READs as it takes.
    pub async fn read_range(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        len: usize,
    ) -> NfsResult<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(16 << 20));
        while out.len() < len {
            let want = (len - out.len()).min(IO_CHUNK) as u32;
            let (data, eof) = self.read(fh, offset + out.len() as u64, want).await?;
            let got = data.len();
            out.extend_from_slice(&data);
            if eof {
                break;
            }
            assert!(got > 0, "READ returned no data and no eof at {}", out.len());
        }
        Ok(out)
    }

    /// The whole file, read until eof.
    pub async fn read_all(&mut self, fh: &nfs_fh3) -> NfsResult<Vec<u8>> {
        self.read_range(fh, 0, usize::MAX).await
    }

    /// The whole file at `path` (from the export root); panics on any error.
    pub async fn read_path(&mut self, path: &str) -> Vec<u8> {
        let fh = self
            .lookup_path(path)
            .await
            .unwrap_or_else(|e| panic!("LOOKUP {path}: {e}"));
        self.read_all(&fh)
            .await
            .unwrap_or_else(|e| panic!("READ {path}: {e}"))
    }

    /// Creates `path`'s file (UNCHECKED, mode 0644) with this content.
    pub async fn put(&mut self, dir: &nfs_fh3, name: &str, data: &[u8]) -> nfs_fh3 {
        let fh = self
            .create(dir, name, 0o644)
            .await
            .unwrap_or_else(|e| panic!("CREATE {name}: {e}"));
        self.write_all(&fh, 0, data)
            .await
            .unwrap_or_else(|e| panic!("WRITE {name}: {e}"));
        fh
    }

    pub async fn mkdir(&mut self, dir: &nfs_fh3, name: &str) -> NfsResult<nfs_fh3> {
        self.mkdir_mode(dir, name, 0o755).await
    }

    /// MKDIR with this mode.
    pub async fn mkdir_mode(&mut self, dir: &nfs_fh3, name: &str, mode: u32) -> NfsResult<nfs_fh3> {
        let res = rpc(
            "MKDIR",
            self.conn
                .mkdir(&MKDIR3args {
                    where_: dirop(dir, name),
                    attributes: sattr3 {
                        mode: Nfs3Option::Some(mode),
                        ..sattr3::default()
                    },
                })
                .await,
        );
        let obj = status(res, |ok| ok.obj)?;
        match obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, name).await,
        }
    }

    pub async fn remove(&mut self, dir: &nfs_fh3, name: &str) -> NfsResult<()> {
        let res = rpc(
            "REMOVE",
            self.conn
                .remove(&REMOVE3args {
                    object: dirop(dir, name),
                })
                .await,
        );
        status(res, |_| ())
    }

    /// LINK: `name` in `dir` becomes another name of `file`; returns the file's attributes.
    pub async fn link(
        &mut self,
        file: &nfs_fh3,
        dir: &nfs_fh3,
        name: &str,
    ) -> NfsResult<Option<fattr3>> {
        let args = LINK3args {
            file: file.clone(),
            link: dirop(dir, name),
        };
        let res = rpc("LINK", self.conn.link(&args).await);
        status(res, |ok| match ok.file_attributes {
            Nfs3Option::Some(a) => Some(a),
            Nfs3Option::None => None,
        })
    }

    /// MKNOD of a fifo with `mode`.
    pub async fn mkfifo(&mut self, dir: &nfs_fh3, name: &str, mode: u32) -> NfsResult<nfs_fh3> {
        let attrs = sattr3 {
            mode: Nfs3Option::Some(mode),
            ..sattr3::default()
        };
        let args = MKNOD3args {
            where_: dirop(dir, name),
            what: mknoddata3::NF3FIFO(attrs),
        };
        let res = rpc("MKNOD", self.conn.mknod(&args).await);
        match status(res, |ok| ok.obj)? {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, name).await,
        }
    }

    /// MKNOD of a block (`block`) or character device `(major, minor)` with `mode`.
    pub async fn mknod_device(
        &mut self,
        dir: &nfs_fh3,
        name: &str,
        block: bool,
        mode: u32,
        (major, minor): (u32, u32),
    ) -> NfsResult<nfs_fh3> {
        let device = devicedata3 {
            dev_attributes: sattr3 {
                mode: Nfs3Option::Some(mode),
                ..sattr3::default()
            },
            spec: specdata3 {
                specdata1: major,
                specdata2: minor,
            },
        };
        let what = if block {
            mknoddata3::NF3BLK(device)
        } else {
            mknoddata3::NF3CHR(device)
        };
        let args = MKNOD3args {
            where_: dirop(dir, name),
            what,
        };
        let res = rpc("MKNOD", self.conn.mknod(&args).await);
        match status(res, |ok| ok.obj)? {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, name).await,
        }
    }

    /// FSINFO's `maxfilesize` for the file system of `fh`.
    pub async fn max_file_size(&mut self, fh: &nfs_fh3) -> NfsResult<u64> {
        let args = FSINFO3args { fsroot: fh.clone() };
        let res = rpc("FSINFO", self.conn.fsinfo(&args).await);
        status(res, |ok| ok.maxfilesize)
    }

    /// One UNSTABLE WRITE: the count, how it was committed, and the write verifier.
    pub async fn write_unstable(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
    ) -> NfsResult<(u32, stable_how, [u8; 8])> {
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count: data.len() as u32,
            stable: stable_how::UNSTABLE,
            data: Opaque::borrowed(data),
        };
        let res = rpc("WRITE", self.conn.write(&args).await);
        status(res, |ok| (ok.count, ok.committed, ok.verf.0))
    }

    /// COMMIT of a whole file: the write verifier.
    pub async fn commit(&mut self, fh: &nfs_fh3) -> NfsResult<[u8; 8]> {
        let args = COMMIT3args {
            file: fh.clone(),
            offset: 0,
            count: 0,
        };
        let res = rpc("COMMIT", self.conn.commit(&args).await);
        status(res, |ok| ok.verf.0)
    }

    /// Plain READDIR (not PLUS) over every page: the names, in order of the replies.
    pub async fn readdir_names(&mut self, dir: &nfs_fh3) -> NfsResult<Vec<String>> {
        let (mut names, mut cookie, mut verf) = (Vec::new(), 0, cookieverf3::default());
        loop {
            let args = READDIR3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                count: DIR_MAXCOUNT,
            };
            let res = rpc("READDIR", self.conn.readdir(&args).await);
            let ok = status(res, |ok| ok)?;
            verf = ok.cookieverf;
            for entry in ok.reply.entries.0 {
                names.push(String::from_utf8(entry.name.0.to_vec()).expect("UTF-8 name"));
                cookie = entry.cookie;
            }
            if ok.reply.eof {
                return Ok(names);
            }
        }
    }

    pub async fn rmdir(&mut self, dir: &nfs_fh3, name: &str) -> NfsResult<()> {
        let res = rpc(
            "RMDIR",
            self.conn
                .rmdir(&RMDIR3args {
                    object: dirop(dir, name),
                })
                .await,
        );
        status(res, |_| ())
    }

    pub async fn rename(
        &mut self,
        from_dir: &nfs_fh3,
        from: &str,
        to_dir: &nfs_fh3,
        to: &str,
    ) -> NfsResult<()> {
        let res = rpc(
            "RENAME",
            self.conn
                .rename(&RENAME3args {
                    from: dirop(from_dir, from),
                    to: dirop(to_dir, to),
                })
                .await,
        );
        status(res, |_| ())
    }

    pub async fn symlink(&mut self, dir: &nfs_fh3, name: &str, target: &str) -> NfsResult<nfs_fh3> {
        let res = rpc(
            "SYMLINK",
            self.conn
                .symlink(&SYMLINK3args {
                    where_: dirop(dir, name),
                    symlink: symlinkdata3 {
                        symlink_attributes: sattr3::default(),
                        symlink_data: nfspath3(Opaque::borrowed(target.as_bytes())),
                    },
                })
                .await,
        );
        let obj = status(res, |ok| ok.obj)?;
        match obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, name).await,
        }
    }

    pub async fn readlink(&mut self, fh: &nfs_fh3) -> NfsResult<String> {
        let res = rpc(
            "READLINK",
            self.conn
                .readlink(&READLINK3args {
                    symlink: fh.clone(),
                })
                .await,
        );
        status(res, |ok| {
            String::from_utf8(ok.data.0.into_owned()).expect("READLINK returned UTF-8")
        })
    }

    /// SETATTR without a guard; returns the attributes after, when the reply has them.
    pub async fn setattr(&mut self, fh: &nfs_fh3, attrs: sattr3) -> NfsResult<Option<fattr3>> {
        self.setattr_guarded(fh, attrs, None).await
    }

    /// SETATTR that applies only if the object's ctime is still `guard` (when given).
    pub async fn setattr_guarded(
        &mut self,
        fh: &nfs_fh3,
        attrs: sattr3,
        guard: Option<nfstime3>,
    ) -> NfsResult<Option<fattr3>> {
        let res = rpc(
            "SETATTR",
            self.conn
                .setattr(&SETATTR3args {
                    object: fh.clone(),
                    new_attributes: attrs,
                    guard: match guard {
                        Some(ctime) => Nfs3Option::Some(ctime),
                        None => Nfs3Option::None,
                    },
                })
                .await,
        );
        status(res, |ok| match ok.obj_wcc.after {
            Nfs3Option::Some(a) => Some(a),
            Nfs3Option::None => None,
        })
    }

    pub async fn set_mode(&mut self, fh: &nfs_fh3, mode: u32) -> NfsResult<Option<fattr3>> {
        let attrs = sattr3 {
            mode: Nfs3Option::Some(mode),
            ..sattr3::default()
        };
        self.setattr(fh, attrs).await
    }

    pub async fn set_size(&mut self, fh: &nfs_fh3, size: u64) -> NfsResult<Option<fattr3>> {
        let attrs = sattr3 {
            size: Nfs3Option::Some(size),
            ..sattr3::default()
        };
        self.setattr(fh, attrs).await
    }

    pub async fn set_mtime(&mut self, fh: &nfs_fh3, mtime: nfstime3) -> NfsResult<Option<fattr3>> {
        let attrs = sattr3 {
            mtime: set_mtime::SET_TO_CLIENT_TIME(mtime),
            ..sattr3::default()
        };
        self.setattr(fh, attrs).await
    }

    /// One READDIRPLUS reply: entries, the verifier and eof.
    pub async fn readdirplus_page(
        &mut self,
        dir: &nfs_fh3,
        cookie: u64,
        cookieverf: [u8; 8],
    ) -> NfsResult<(Vec<Entry>, [u8; 8], bool)> {
        self.readdirplus_page_sized(dir, cookie, cookieverf, (DIR_DIRCOUNT, DIR_MAXCOUNT))
            .await
    }

    /// One READDIRPLUS reply asked with these `(dircount, maxcount)`.
    pub async fn readdirplus_page_sized(
        &mut self,
        dir: &nfs_fh3,
        cookie: u64,
        cookieverf: [u8; 8],
        (dircount, maxcount): (u32, u32),
    ) -> NfsResult<(Vec<Entry>, [u8; 8], bool)> {
        let res = rpc(
            "READDIRPLUS",
            self.conn
                .readdirplus(&READDIRPLUS3args {
                    dir: dir.clone(),
                    cookie,
                    cookieverf: nfs3_types::nfs3::cookieverf3(cookieverf),
                    dircount,
                    maxcount,
                })
                .await,
        );
        status(res, |ok| {
            let entries = ok
                .reply
                .entries
                .into_inner()
                .into_iter()
                .map(|e| Entry {
                    name: String::from_utf8(e.name.0.into_owned()).expect("entry names are UTF-8"),
                    fileid: e.fileid,
                    cookie: e.cookie,
                    attrs: match e.name_attributes {
                        Nfs3Option::Some(a) => Some(a),
                        Nfs3Option::None => None,
                    },
                    handle: match e.name_handle {
                        Nfs3Option::Some(fh) => Some(fh),
                        Nfs3Option::None => None,
                    },
                })
                .collect();
            (entries, ok.cookieverf.0, ok.reply.eof)
        })
    }

    /// The whole directory by READDIRPLUS, paging with the cookie of each page's last entry and
    /// the verifier of the previous reply. Small pages, so that paging really happens.
    pub async fn readdirplus_all(&mut self, dir: &nfs_fh3) -> NfsResult<Listing> {
        self.readdirplus_all_sized(dir, (DIR_DIRCOUNT, DIR_MAXCOUNT))
            .await
    }

    /// The whole directory as [`Client::readdirplus_all`] lists it, in pages asked with these
    /// `(dircount, maxcount)`.
    pub async fn readdirplus_all_sized(
        &mut self,
        dir: &nfs_fh3,
        sizes: (u32, u32),
    ) -> NfsResult<Listing> {
        let mut entries: Vec<Entry> = Vec::new();
        let (mut cookie, mut verf, mut pages) = (0u64, [0u8; 8], 0usize);
        loop {
            let (page, next_verf, eof) = self
                .readdirplus_page_sized(dir, cookie, verf, sizes)
                .await?;
            pages += 1;
            assert!(
                pages < 100_000,
                "READDIRPLUS paging does not end ({} entries so far)",
                entries.len()
            );
            if eof {
                entries.extend(page);
                break;
            }
            let last = page.last().unwrap_or_else(|| {
                panic!("READDIRPLUS page {pages} has no entries and no eof (cookie {cookie})")
            });
            cookie = last.cookie;
            verf = next_verf;
            entries.extend(page);
        }
        Ok(Listing { entries, pages })
    }
}

/// The head of an HTTP request (up to its blank line, or all that came before the connection
/// ended), lower-cased: what the tests' small HTTP servers check that a plugin sent.
pub fn read_http_head(conn: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).to_lowercase()
}
