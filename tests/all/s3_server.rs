//! A real S3 server for the tests: s3s-fs (it checks SigV4 signatures), one per test, on its
//! own port and directory, stoppable and restartable on both; and a direct `object_store`
//! client of it, playing "another client of the bucket".

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use tempfile::TempDir;

use crate::harness::{free_port, listening, toml_str, NO_ROOT_SQUASH};

/// The credentials s3s-fs accepts; nfsgw reads them from these environment variables, which
/// the harness sets for every nfsgw it starts.
pub const KEY_ID: &str = "AKNFSGWTEST";
pub const SECRET: &str = "nfsgw-test-secret-key";
pub const KEY_ID_ENV: &str = "NFSGW_TEST_S3_KEY_ID";
pub const SECRET_ENV: &str = "NFSGW_TEST_S3_SECRET";
pub const BUCKET: &str = "testbkt";

/// The s3s-fs binary: on PATH or where `cargo install` puts it.
fn binary() -> PathBuf {
    let installed = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/s3s-fs"));
    match installed {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("s3s-fs"),
    }
}

/// A running s3s-fs serving `root`, with the bucket `testbkt`; killed when dropped.
pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    pub root: TempDir,
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("nfsgw-s3-")
            .tempdir()
            .expect("tempdir");
        // s3s-fs keeps a bucket as a directory of its root.
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut server = S3Server {
            child: None,
            port: free_port(),
            root,
        };
        server.resume();
        server
    }

    /// Starts (again) on the same port and directory.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "s3s-fs is already running");
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY_ID, "--secret-key", SECRET])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run s3s-fs ({e}); scripts/test.sh installs it (cargo install s3s-fs)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(self.port) {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: requests fail until `resume`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[mount.s3]` table granting the test bucket (under `prefix`).
    pub fn grant(&self, prefix: &str) -> String {
        format!(
            "[mount.s3]\nbucket = {}\nendpoint = {}\nprefix = {}\npath_style = true\n\
             allow_http = true\naccess_key_id_env = {}\nsecret_access_key_env = {}\n",
            toml_str(BUCKET),
            toml_str(self.endpoint()),
            toml_str(prefix),
            toml_str(KEY_ID_ENV),
            toml_str(SECRET_ENV),
        )
    }

    /// A `[[mount]]` of the bucket with the bundled s3 plugin; `extra` goes after `plugin`
    /// (mount keys such as `flush_after_ms = 200`), `config` into `[mount.config]`.
    pub fn mount(&self, name: &str, extra: &str, config: &str) -> String {
        format!(
            "[[mount]]\nname = {}\nplugin = \"s3\"\n{NO_ROOT_SQUASH}{extra}\n[mount.config]\n{config}\n{}",
            toml_str(name),
            self.grant("")
        )
    }

    /// Another client of the bucket, going straight to the server.
    pub fn direct(&self) -> Arc<AmazonS3> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_bucket_name(BUCKET)
                .with_access_key_id(KEY_ID)
                .with_secret_access_key(SECRET)
                .with_region("us-east-1")
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .build()
                .expect("object_store client"),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's S3 server (from the venv `tests/s3/setup.sh` makes), with the bucket `testbkt`:
/// complete S3 semantics, directory-marker objects included, which s3s-fs cannot list. It
/// accepts any credentials. Killed when dropped.
pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let venv = std::env::var_os("NFSGW_S3_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/nfsgw/s3-venv")
            });
        let port = free_port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run moto_server ({e}); run tests/s3/setup.sh"));
        let server = MotoServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !listening(port) {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.create_bucket();
        server
    }

    /// CreateBucket, unsigned (moto does not check signatures).
    fn create_bucket(&self) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "CreateBucket: {reply}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
