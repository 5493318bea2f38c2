//! The `mounts.toml` configuration: parsing, defaults and validation.
//!
//! This module owns the config contract. Syntax and type errors come from the TOML parser with
//! the line, column and key; the checks that come after parsing (duplicate or malformed mount
//! names, a missing `[server]`, values a plugin cannot receive) name the mount and the line its
//! `name` is on. Whether a plugin exists or its directory is reachable is checked when the mount
//! starts, in `gateway::mounts`.
//!
//! The config is plain data: it names no type of the modules that use it. `check` validates a
//! parsed config, `server` answers questions about `[server]`, `cache` reads `[server.cache]`, `clients` says who may use a
//! mount and as whom, `hosts` parses the host patterns of allow lists, and `env` substitutes
//! environment variables into the text before it is parsed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;
use toml::Spanned;

mod cache;
mod check;
mod clients;
mod env;
mod hosts;
mod server;
#[cfg(test)]
mod tests;

pub use cache::{CacheConfig, CacheLimits};
pub use clients::{Squash, NOBODY};
pub use hosts::HostPattern;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(rename = "mount", default)]
    pub mounts: Vec<MountConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where NFSv3 and MOUNT are served (one TCP port).
    pub listen: SocketAddr,
    /// Where each mount's inode journal is kept, so file handles survive restarts. When
    /// absent, a directory of the user's state home chosen by the config file's path.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Where the portmapper answers (TCP and UDP), or `None` for `"off"`.
    #[serde(default = "default_portmap", deserialize_with = "portmap_setting")]
    pub portmap: Option<SocketAddr>,
    /// Where the admin HTTP listener serves `/metrics` and `/status`, or `None` (the default,
    /// or `"off"`), with where it was written.
    #[serde(default, deserialize_with = "admin_setting")]
    pub admin: Option<Spanned<SocketAddr>>,
    /// The environment variable holding the admin listener's bearer token. Without it the
    /// listener asks for none, and may only listen on a loopback address.
    #[serde(default)]
    pub admin_token_env: Option<Spanned<String>>,
    /// NFS connections open at once (default 1024); over it, the connection idle longest is
    /// closed, or the new one when none is idle.
    pub max_connections: Option<Spanned<u64>>,
    /// NFS connections open at once from one client address (default 64).
    pub max_connections_per_client: Option<Spanned<u64>>,
    /// An NFS connection with no call for this long is closed (default 6 minutes).
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// An RPC record must arrive whole within this long of its first byte (default 60 s).
    pub record_timeout_ms: Option<Spanned<u64>>,
    /// MiB of RPC records all NFS connections together may hold while reading and answering
    /// them (default 512; at least 4, the largest record).
    pub record_memory_mb: Option<Spanned<u64>>,
    /// Where clients' portmappers answer, for NLM's calls back to a client's lock manager
    /// (default 111; tests run a client's on another port).
    #[serde(default)]
    pub client_portmap_port: Option<u16>,
    /// After a restart that left lock holders, how long only reclaims of their locks are
    /// granted (default 90 s; 0: no grace period).
    #[serde(default)]
    pub lock_grace_seconds: Option<u64>,
    /// `[server.cache]`: the bounds of each mount's metadata caches and of open host files.
    #[serde(default)]
    pub cache: CacheConfig,
}

/// The `[server]` connection keys: (key, default, least value).
const CONNECTION_KEYS: [(&str, u64, u64); 5] = [
    ("max_connections", 1024, 1),
    ("max_connections_per_client", 64, 1),
    ("idle_timeout_ms", 360_000, 1),
    ("record_timeout_ms", 60_000, 1),
    ("record_memory_mb", 512, 4),
];

/// The admin listener's address in examples and `nfsgw status`'s default.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9464";

/// `admin = "ip:port"` or `admin = "off"`.
fn admin_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Spanned<SocketAddr>>, D::Error> {
    let spanned = Spanned::<String>::deserialize(d)?;
    let (span, text) = (spanned.span(), spanned.into_inner());
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(|a| Some(Spanned::new(span, a)))
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "expected \"ip:port\" (e.g. {DEFAULT_ADMIN:?}) or \"off\", got {text:?}"
            ))
        })
}

/// The portmapper's default address: the port every NFS client asks.
pub const DEFAULT_PORTMAP: &str = "127.0.0.1:111";

fn default_portmap() -> Option<SocketAddr> {
    Some(DEFAULT_PORTMAP.parse().expect("a valid address"))
}

/// `portmap = "ip:port"` or `portmap = "off"`.
fn portmap_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected \"ip:port\" (e.g. {DEFAULT_PORTMAP:?}) or \"off\", got {text:?}"
        ))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The directory name under the export root: the mount is `host:/<name>`.
    pub name: Spanned<String>,
    /// A bundled plugin's name, or the path of a `.wasm` component.
    pub plugin: Spanned<String>,
    #[serde(default)]
    pub read_only: bool,
    /// Handed to the plugin at `init`, values as strings.
    #[serde(default)]
    pub config: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub limits: Limits,
    /// Client addresses (an address or a CIDR network) that may mount and use this mount.
    /// Empty: loopback clients only.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Host directories granted to the plugin (`[[mount.dirs]]`), beyond what a bundled
    /// plugin's own config grants.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// An S3-compatible bucket granted to the plugin through the `blobstore` capability.
    pub s3: Option<S3Grant>,
    /// Hosts the plugin may reach through the `http` capability: "host", "host:port" or
    /// "*.domain" (any subdomain). Absent: a bundled plugin's defaults (the public Hub for
    /// `hub`), else none.
    pub allow_hosts: Option<Vec<Spanned<String>>>,
    /// Secrets granted to the plugin as opaque handles (`[mount.secrets]`), by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretGrant>,
    /// For plugins whose writes the host stages: how long a file must go unwritten before its
    /// staged data is uploaded.
    #[serde(default = "default_flush_after_ms")]
    pub flush_after_ms: u64,
    /// AUTH_UNIX uid 0 and gid 0 become `anon_uid`/`anon_gid` (as exports(5)'s `root_squash`).
    #[serde(default = "yes")]
    pub root_squash: bool,
    /// Every caller becomes `anon_uid`/`anon_gid`, without supplementary groups.
    #[serde(default)]
    pub all_squash: bool,
    /// Calls only from privileged source ports (below 1024), which only root can open on the
    /// client, as exports(5)'s `secure`; `false` for clients that cannot (libnfs as a user).
    #[serde(default = "yes")]
    pub secure: bool,
    /// Byte-range locks and share reservations are served for this mount's files (NLM);
    /// `false` answers every lock call on them with NLM4_DENIED_NOLOCKS.
    #[serde(default = "yes")]
    pub locks: bool,
    #[serde(default)]
    pub anon_uid: Option<Spanned<i64>>,
    #[serde(default)]
    pub anon_gid: Option<Spanned<i64>>,
    /// MKNOD may make block and character devices (for a caller that is root after squashing).
    #[serde(default)]
    pub allow_devices: bool,
    /// The largest file size, in bytes (absent: 5 TiB for staged mounts, the host's for others).
    #[serde(default)]
    pub max_file_size: Option<Spanned<i64>>,
    /// Bytes staged writes leave free on the state directory's file system.
    #[serde(default)]
    pub staging_reserve: Option<Spanned<i64>>,
    /// Staged files (each an open file) a mount keeps at once.
    #[serde(default)]
    pub max_staged_files: Option<Spanned<i64>>,
}

fn yes() -> bool {
    true
}

fn default_flush_after_ms() -> u64 {
    5_000
}

/// An S3 bucket (or a prefix of one) a mount may use. The host keeps the credentials: the
/// plugin only names keys under `prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Grant {
    pub bucket: Spanned<String>,
    /// The service's URL, e.g. "http://127.0.0.1:9000"; absent: AWS for `region`.
    pub endpoint: Option<Spanned<String>>,
    #[serde(default = "default_region")]
    pub region: String,
    /// Only keys under this prefix are visible; "" is the whole bucket.
    #[serde(default)]
    pub prefix: String,
    /// Bucket in the URL path (most S3-compatible servers) rather than in the host name.
    #[serde(default)]
    pub path_style: bool,
    /// Allow an `http://` endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Environment variables holding the access key id and secret (and a session token).
    #[serde(default = "default_key_id_env")]
    pub access_key_id_env: String,
    #[serde(default = "default_secret_env")]
    pub secret_access_key_env: String,
    #[serde(default = "default_token_env")]
    pub session_token_env: String,
    /// A profile of an AWS credentials file, used instead of the environment.
    pub profile: Option<Spanned<String>>,
    /// The credentials file for `profile`; default `~/.aws/credentials`.
    pub credentials_file: Option<Spanned<String>>,
    /// Sign no request (a public bucket).
    #[serde(default)]
    pub anonymous: bool,
    /// How long one request may take before the client gives up on it.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Testing knobs: requests to fail, delay or hang on purpose.
    pub faults: Option<S3Faults>,
}

fn default_request_timeout_ms() -> u64 {
    60_000
}

/// A plan of faults for the object-store client of a mount (a testing knob): the calls of
/// `ops`, counted together, after the first `after` of them and for `times` of them (all when
/// absent), meet `action`, while the file `while_exists` exists (always when absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Faults {
    pub ops: Vec<S3Op>,
    #[serde(default)]
    pub after: u64,
    pub times: Option<u64>,
    #[serde(default)]
    pub action: FaultAction,
    /// How long `delay` waits before making the request.
    #[serde(default)]
    pub delay_ms: u64,
    pub while_exists: Option<PathBuf>,
}

/// An object-store request, as a fault plan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Op {
    Get,
    Head,
    Put,
    CreateMultipart,
    PutPart,
    CompleteMultipart,
    AbortMultipart,
    Copy,
    Delete,
}

/// What a faulty request meets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Fails as S3 answering 503 Service Unavailable after the client's retries.
    #[default]
    Unavailable,
    /// Fails as a connection the server reset.
    Reset,
    /// Waits `delay_ms`, then makes the request.
    Delay,
    /// Gets no answer: fails when the request timeout has passed, as the client's timeout does.
    Hang,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_key_id_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_token_env() -> String {
    "AWS_SESSION_TOKEN".into()
}

/// A secret the host reads and keeps, handing the plugin an opaque handle: from exactly one of
/// an environment variable or a file (its content, trimmed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretGrant {
    pub env: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    /// Hosts the secret may be sent to (patterns as in `allow_hosts`); absent: any host the
    /// mount allows.
    pub hosts: Option<Vec<Spanned<String>>>,
    /// Without it, an unset variable or a missing file is a startup error; with it, the secret
    /// is simply not granted (a public repository needs no token).
    #[serde(default)]
    pub optional: bool,
}

/// A host directory a plugin may use, through WASI and the `host-fs` capability.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: Spanned<String>,
    /// Where the plugin sees it: an absolute path such as "/data".
    pub guest: Spanned<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// The sandbox limits of one mount's plugin instances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A plugin call that runs longer fails with an I/O error and its instance is replaced.
    pub call_timeout_ms: u64,
    /// Memory one instance may hold: all its linear memories and tables together.
    pub memory_mb: u64,
    /// Instances serving calls concurrently.
    pub instances: usize,
    /// Host memory the buffers of the mount's plugin calls in flight (HTTP response bodies,
    /// blob reads, listings) may hold together.
    pub host_buffers_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout_ms: 10_000,
            memory_mb: 256,
            instances: 4,
            host_buffers_mb: 256,
        }
    }
}

impl Limits {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// `memory_mb` in bytes.
    pub fn memory(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// `host_buffers_mb` in bytes.
    pub fn host_buffers(&self) -> usize {
        usize::try_from(self.host_buffers_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

/// Where a parsed value came from, for error messages.
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// "file:line" of a spanned value.
    pub fn at<T>(&self, value: &Spanned<T>) -> String {
        format!("{}:{}", self.file, self.line_of(value.span().start))
    }
}

/// Limits a mount's config sets on what clients may do through the gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountLimits {
    /// MKNOD may make block and character devices.
    pub allow_devices: bool,
    /// The largest file size (None: the mount kind's default).
    pub max_file_size: Option<u64>,
    /// Bytes staged writes leave free on the state directory's disk (None: the default).
    pub staging_reserve: Option<u64>,
    /// Staged files open at once (None: the default).
    pub max_staged_files: Option<usize>,
}

impl MountConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// What this mount's config limits clients to (validated: sizes are not negative).
    pub fn limits_on_clients(&self) -> MountLimits {
        let size = |v: &Option<Spanned<i64>>| v.as_ref().map(|v| *v.get_ref() as u64);
        MountLimits {
            allow_devices: self.allow_devices,
            max_file_size: size(&self.max_file_size),
            staging_reserve: size(&self.staging_reserve),
            max_staged_files: size(&self.max_staged_files).map(|n| n as usize),
        }
    }

    /// The `[mount.config]` table as the plugin receives it.
    pub fn plugin_config(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    config_value_string(v.get_ref()).unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Plugins receive config values as strings: scalars only.
fn config_value_string(value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            bail!("only strings, numbers, booleans and dates can be passed to a plugin")
        }
    })
}
