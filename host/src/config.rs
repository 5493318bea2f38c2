//! The `mounts.toml` configuration: parsing, defaults and validation.
//!
//! This module owns the config contract. Syntax and type errors come from the TOML parser with
//! the line, column and key; the checks that come after parsing (duplicate or malformed mount
//! names, a missing `[server]`, values a plugin cannot receive) name the mount and the line its
//! `name` is on. Whether a plugin exists or its directory is reachable is checked when the mount
//! starts, in `gateway::mounts`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::gateway::permissions::Squash;
use crate::nfs::wire::NOBODY;

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

impl Config {
    /// Parses and validates a config; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config> {
        let expanded = substitute_env(text, file, |name| std::env::var(name).ok())?;
        let config: Config =
            toml::from_str(&expanded).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        config.validate(&Source { file, text })?;
        Ok(config)
    }

    fn validate(&self, src: &Source) -> Result<()> {
        self.server.validate_admin(src)?;
        if self.mounts.is_empty() {
            bail!("{}: no [[mount]] tables: nothing to serve", src.file);
        }
        for (key, value) in self.server.connection_keys() {
            let (_, _, least) = CONNECTION_KEYS.iter().find(|(k, ..)| *k == key).unwrap();
            if let Some(value) = value.filter(|v| *v.get_ref() < *least) {
                bail!(
                    "{}: key `server.{key}`: {} is less than {least}",
                    src.at(value),
                    value.get_ref()
                );
            }
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for mount in &self.mounts {
            let name = mount.name.get_ref().as_str();
            let at = src.at(&mount.name);
            check_mount_name(name).with_context(|| format!("{at}: key `name`"))?;
            if let Some(first) = seen.insert(name, at.clone()) {
                bail!("{at}: key `name`: mount {name:?} is already defined at {first}");
            }
            if mount.plugin.get_ref().is_empty() {
                bail!("{}: key `plugin`: empty plugin name", src.at(&mount.plugin));
            }
            for (key, value) in &mount.config {
                config_value_string(value.get_ref()).with_context(|| {
                    format!("{}: key `config.{key}` of mount {name:?}", src.at(value))
                })?;
            }
            for entry in &mount.allow {
                parse_net(entry.get_ref())
                    .with_context(|| format!("{}: key `allow` of mount {name:?}", src.at(entry)))?;
            }
            let patterns = mount
                .allow_hosts
                .iter()
                .flatten()
                .map(|p| (p, "allow_hosts"));
            let secret_hosts = mount
                .secrets
                .values()
                .flat_map(|s| s.hosts.iter().flatten())
                .map(|p| (p, "secrets.hosts"));
            for (pattern, key) in patterns.chain(secret_hosts) {
                crate::plugin::http::HostPattern::parse(pattern.get_ref()).with_context(|| {
                    format!("{}: key `{key}` of mount {name:?}", src.at(pattern))
                })?;
            }
            for (secret, grant) in &mount.secrets {
                if grant.env.is_some() == grant.file.is_some() {
                    bail!(
                        "{at}: key `secrets.{secret}` of mount {name:?}: give exactly one of `env` \
                         (an environment variable) or `file`"
                    );
                }
            }
            let mut guests = BTreeMap::new();
            for grant in &mount.dirs {
                let guest = grant.guest.get_ref();
                let valid = guest.starts_with('/')
                    && guest.len() > 1
                    && !guest.split('/').any(|p| p == "." || p == "..");
                if !valid {
                    bail!(
                        "{}: key `dirs.guest`: {guest:?} must be an absolute path like \"/data\"",
                        src.at(&grant.guest)
                    );
                }
                if let Some(first) =
                    guests.insert(guest.trim_end_matches('/'), src.at(&grant.guest))
                {
                    bail!(
                        "{}: key `dirs.guest`: {guest:?} is already granted at {first}",
                        src.at(&grant.guest)
                    );
                }
            }
            for (key, id) in [("anon_uid", &mount.anon_uid), ("anon_gid", &mount.anon_gid)] {
                if let Some(id) = id {
                    if u32::try_from(*id.get_ref()).is_err() {
                        bail!(
                            "{}: key `{key}` of mount {name:?}: {} is not a uid/gid (0 to {})",
                            src.at(id),
                            id.get_ref(),
                            u32::MAX
                        );
                    }
                }
            }
            let sizes = [
                ("max_file_size", &mount.max_file_size, 1),
                ("staging_reserve", &mount.staging_reserve, 0),
                ("max_staged_files", &mount.max_staged_files, 1),
            ];
            for (key, value, least) in sizes {
                if let Some(value) = value {
                    if *value.get_ref() < least {
                        bail!(
                            "{}: key `{key}` of mount {name:?}: {} is less than {least}",
                            src.at(value),
                            value.get_ref()
                        );
                    }
                }
            }
            let limits = &mount.limits;
            if limits.instances == 0 || limits.call_timeout_ms == 0 || limits.memory_mb == 0 {
                bail!(
                    "{at}: mount {name:?}: `limits.instances`, `limits.call_timeout_ms` and \
                     `limits.memory_mb` must be greater than zero"
                );
            }
            if limits.host_buffers_mb == 0 || limits.host_buffers_mb > 1 << 20 {
                bail!(
                    "{at}: mount {name:?}: key `limits.host_buffers_mb`: {} is not between 1 and \
                     1048576 (MiB)",
                    limits.host_buffers_mb
                );
            }
        }
        Ok(())
    }
}

impl ServerConfig {
    /// The admin listener's address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| *a.get_ref())
    }

    /// Anyone who reaches a non-loopback admin listener could read the metrics and start
    /// uploads: such an address needs a token.
    fn validate_admin(&self, src: &Source) -> Result<()> {
        if let Some(env) = &self.admin_token_env {
            if env.get_ref().trim().is_empty() {
                bail!(
                    "{}: key `admin_token_env`: name the environment variable that holds the \
                     admin token",
                    src.at(env)
                );
            }
        }
        if let (Some(admin), None) = (&self.admin, &self.admin_token_env) {
            let addr = admin.get_ref();
            if !addr.ip().is_loopback() {
                bail!(
                    "{}: key `admin`: {addr} is not a loopback address, and the admin listener \
                     has no token: set `admin_token_env` to the name of an environment variable \
                     holding one, or listen on 127.0.0.1",
                    src.at(admin)
                );
            }
        }
        Ok(())
    }

    /// The admin listener's bearer token, read from `admin_token_env` (`None` without the key).
    /// An unset or empty variable is an error naming the key and its line.
    pub fn admin_token(&self, src: &Source) -> Result<Option<String>> {
        let Some(env) = &self.admin_token_env else {
            return Ok(None);
        };
        let name = env.get_ref();
        match std::env::var(name) {
            Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
            _ => bail!(
                "{}: key `admin_token_env`: the environment variable {name} is not set or empty",
                src.at(env)
            ),
        }
    }

    fn connection_keys(&self) -> [(&'static str, Option<&Spanned<u64>>); 5] {
        [
            ("max_connections", self.max_connections.as_ref()),
            (
                "max_connections_per_client",
                self.max_connections_per_client.as_ref(),
            ),
            ("idle_timeout_ms", self.idle_timeout_ms.as_ref()),
            ("record_timeout_ms", self.record_timeout_ms.as_ref()),
            ("record_memory_mb", self.record_memory_mb.as_ref()),
        ]
    }

    /// A connection key's value, or its default.
    fn connection_value(&self, key: &str) -> u64 {
        let set = self.connection_keys().into_iter().find(|(k, _)| *k == key);
        let default = CONNECTION_KEYS
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|d| d.1);
        set.and_then(|(_, v)| v.map(|v| *v.get_ref()))
            .or(default)
            .expect("a connection key")
    }
    /// The state directory: `state_dir`, or `<state home>/nfsgw/<tag of the config's path>`,
    /// so two configs never share journals. `config_id` names the config (its file's path).
    pub fn state_dir_for(&self, config_id: &str) -> std::path::PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let home = std::env::var_os("XDG_STATE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("LOCALAPPDATA").map(std::path::PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
            })
            .unwrap_or_else(std::env::temp_dir);
        let id = std::fs::canonicalize(config_id)
            .map_or_else(|_| config_id.to_string(), |p| p.display().to_string());
        home.join("nfsgw")
            .join(format!("{:016x}", crate::gateway::handles::mount_tag(&id)))
    }
}

/// The clients of a mount that sets no `allow` list.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// An address or a network: "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8".
fn parse_net(text: &str) -> Result<ipnet::IpNet> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    let ip: std::net::IpAddr = text.parse().map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an address nor a network like \"10.0.0.0/8\"")
    })?;
    Ok(ipnet::IpNet::from(ip))
}

impl Config {
    /// What the NFS front enforces: the `[server]` connection keys and the mounts that are
    /// not `secure`.
    pub fn nfs_settings(&self) -> crate::nfs::Settings {
        let server = &self.server;
        let size = |key| usize::try_from(server.connection_value(key)).unwrap_or(usize::MAX);
        let millis = |key| Duration::from_millis(server.connection_value(key));
        crate::nfs::Settings {
            connections: crate::connections::Limits {
                total: size("max_connections"),
                per_client: size("max_connections_per_client"),
            },
            idle_timeout: millis("idle_timeout_ms"),
            record_timeout: millis("record_timeout_ms"),
            record_memory: size("record_memory_mb").saturating_mul(1 << 20),
            insecure_mounts: self
                .mounts
                .iter()
                .filter(|m| !m.secure)
                .map(|m| m.name().to_string())
                .collect(),
        }
    }
}

impl MountConfig {
    /// The client networks that may use this mount.
    pub fn allowed_clients(&self) -> Vec<ipnet::IpNet> {
        if self.allow.is_empty() {
            return LOOPBACK
                .iter()
                .map(|n| n.parse().expect("a valid network"))
                .collect();
        }
        self.allow
            .iter()
            .filter_map(|a| parse_net(a.get_ref()).ok())
            .collect()
    }

    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// How this mount maps callers' identities (validated: ids fit in a u32).
    pub fn squash(&self) -> Squash {
        let id = |v: &Option<Spanned<i64>>| {
            v.as_ref()
                .and_then(|v| u32::try_from(*v.get_ref()).ok())
                .unwrap_or(NOBODY)
        };
        Squash {
            root: self.root_squash,
            all: self.all_squash,
            anon_uid: id(&self.anon_uid),
            anon_gid: id(&self.anon_gid),
        }
    }

    /// The gateway's limits for this mount (validated: sizes are not negative).
    pub fn gateway_limits(&self) -> crate::gateway::MountLimits {
        let size = |v: &Option<Spanned<i64>>| v.as_ref().map(|v| *v.get_ref() as u64);
        crate::gateway::MountLimits {
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

/// Replaces `${NAME}` with the environment variable NAME, escaped for a double-quoted TOML
/// string (where it belongs), so a value can't change the config's structure or its line
/// numbers. `$${` stands for a literal `${`. An unset variable is an error naming the line.
fn substitute_env(text: &str, file: &str, var: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let line = text[..text.len() - after.len()].matches('\n').count() + 1;
            let end = tail
                .find('}')
                .with_context(|| format!("{file}:{line}: unterminated ${{"))?;
            let name = &tail[..end];
            let value = var(name).with_context(|| {
                format!("{file}:{line}: ${{{name}}} is not set in the environment")
            })?;
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A mount name is one path component that every NFS client can type.
fn check_mount_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 {
        bail!("mount names are 1 to 64 characters, got {name:?}");
    }
    if name == "."
        || name == ".."
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("mount name {name:?} may only hold letters, digits, '-', '_' and '.'");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, "mounts.toml")
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:20490"

[[mount]]
name = "data"
plugin = "local"
[mount.config]
root = "/srv/data"
attr_ttl_ms = 500

[[mount]]
name = "models"
plugin = "/opt/plugins/hub.wasm"
read_only = true
[mount.limits]
instances = 2
"#;

    #[test]
    fn parses_mounts_config_and_limits() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:20490".parse().unwrap());
        assert_eq!(config.mounts.len(), 2);
        let data = &config.mounts[0];
        assert_eq!(data.name(), "data");
        assert!(!data.read_only);
        assert_eq!(
            data.plugin_config(),
            vec![
                ("attr_ttl_ms".into(), "500".into()),
                ("root".into(), "/srv/data".into())
            ]
        );
        assert_eq!(data.limits.instances, Limits::default().instances);
        let models = &config.mounts[1];
        assert!(models.read_only);
        assert_eq!(models.limits.instances, 2);
        assert_eq!(
            models.limits.call_timeout_ms,
            Limits::default().call_timeout_ms
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = GOOD.replace("read_only = true", "read_onyl = true");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("read_onyl"), "{err}");
        assert!(err.contains("line 15"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = GOOD.replace("read_only = true", "read_only = \"yes\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("line 15"), "{err}");
        assert!(
            err.contains("read_only") || err.contains("boolean"),
            "{err}"
        );
    }

    #[test]
    fn bad_listen_address_is_an_error() {
        let err = format!(
            "{:#}",
            parse(&GOOD.replace("127.0.0.1:20490", "localhost")).unwrap_err()
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn duplicate_mount_names_point_at_both_lines() {
        let text = GOOD.replace("name = \"models\"", "name = \"data\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("mounts.toml:13") && err.contains("mounts.toml:6"),
            "{err}"
        );
    }

    #[test]
    fn mount_names_must_be_one_plain_component() {
        for bad in ["a/b", "..", "", "with space"] {
            let text = GOOD.replace("name = \"models\"", &format!("name = {bad:?}"));
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains("mounts.toml:13: key `name`"), "{bad}: {err}");
        }
    }

    #[test]
    fn nested_plugin_config_values_are_refused_with_their_line() {
        let text = GOOD.replace("attr_ttl_ms = 500", "attr_ttl_ms = [1, 2]");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("mounts.toml:10: key `config.attr_ttl_ms`"),
            "{err}"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let text = GOOD.replace("instances = 2", "instances = 0");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("limits.instances"), "{err}");
    }

    #[test]
    fn host_buffers_are_bounded_and_named_when_wrong() {
        let text = GOOD.replace("instances = 2", "instances = 2\nhost_buffers_mb = 64");
        let config = parse(&text).unwrap();
        let limits = config.mounts.iter().map(|m| m.limits.host_buffers());
        assert!(limits.clone().any(|b| b == 64 << 20));
        assert!(limits.into_iter().any(|b| b == 256 << 20), "the default");
        let text = GOOD.replace("instances = 2", "instances = 2\nhost_buffers_mb = 0");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("limits.host_buffers_mb"), "{err}");
    }

    #[test]
    fn portmap_defaults_to_port_111_and_can_be_moved_or_turned_off() {
        let default = parse(GOOD).unwrap();
        assert_eq!(
            default.server.portmap,
            Some("127.0.0.1:111".parse().unwrap())
        );
        let listen = "listen = \"127.0.0.1:20490\"";
        let with = |value: &str| GOOD.replace(listen, &format!("{listen}\nportmap = {value}"));
        let moved = parse(&with("\"0.0.0.0:10111\"")).unwrap();
        assert_eq!(moved.server.portmap, Some("0.0.0.0:10111".parse().unwrap()));
        assert_eq!(parse(&with("\"off\"")).unwrap().server.portmap, None);
        for bad in ["\"localhost:111\"", "\"on\"", "111"] {
            let err = format!("{:#}", parse(&with(bad)).unwrap_err());
            assert!(
                err.contains("line 4") && err.contains("portmap"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn directory_grants_need_distinct_absolute_guest_paths() {
        let grant = |guest: &str| {
            format!(
                "{GOOD}[[mount.dirs]]\nhost = \"/srv\"\nguest = \"{guest}\"\nread_only = true\n"
            )
        };
        let config = parse(&grant("/data")).unwrap();
        assert_eq!(config.mounts[1].dirs[0].guest.get_ref(), "/data");
        assert!(config.mounts[1].dirs[0].read_only);
        for bad in ["data", "/", "/a/../b"] {
            let err = format!("{:#}", parse(&grant(bad)).unwrap_err());
            assert!(
                err.contains("key `dirs.guest`") && err.contains("mounts.toml:"),
                "{bad}: {err}"
            );
        }
        let twice = format!(
            "{}[[mount.dirs]]\nhost = \"/x\"\nguest = \"/data/\"\n",
            grant("/data")
        );
        let err = format!("{:#}", parse(&twice).unwrap_err());
        assert!(err.contains("already granted"), "{err}");
    }

    #[test]
    fn mounts_serve_loopback_unless_an_allow_list_says_otherwise() {
        let config = parse(GOOD).unwrap();
        let loopback = config.mounts[0].allowed_clients();
        assert!(loopback
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        assert!(!loopback
            .iter()
            .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
        let text = GOOD.replace(
            "read_only = true",
            "read_only = true\nallow = [\"10.0.0.0/8\", \"192.168.1.7\"]",
        );
        let allowed = parse(&text).unwrap().mounts[1].allowed_clients();
        assert!(allowed
            .iter()
            .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
        assert!(allowed
            .iter()
            .any(|n| n.contains(&"192.168.1.7".parse::<std::net::IpAddr>().unwrap())));
        assert!(!allowed
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        let bad = GOOD.replace(
            "read_only = true",
            "read_only = true\nallow = [\"10.0.0.0/33\"]",
        );
        let err = format!("{:#}", parse(&bad).unwrap_err());
        assert!(err.contains("mounts.toml:16: key `allow`"), "{err}");
    }

    #[test]
    fn environment_variables_are_substituted_escaped_and_missing_ones_named() {
        let env = |name: &str| match name {
            "ROOT" => Some("/srv/data".to_string()),
            "TRICKY" => Some("a\"b\\c\nd".to_string()),
            _ => None,
        };
        let text = "[server]\nlisten = \"127.0.0.1:1\"\n[[mount]]\nname = \"d\"\nplugin = \"local\"\n[mount.config]\nroot = \"${ROOT}\"\nnote = \"${TRICKY} costs $$5 and $${ROOT}\"\n";
        let expanded = substitute_env(text, "m.toml", env).unwrap();
        assert_eq!(
            expanded.lines().count(),
            text.lines().count(),
            "line numbers are kept"
        );
        let config: Config = toml::from_str(&expanded).unwrap();
        let values = config.mounts[0].plugin_config();
        assert_eq!(values[1], ("root".to_string(), "/srv/data".to_string()));
        assert_eq!(values[0].1, "a\"b\\c\nd costs $$5 and ${ROOT}");
        let err = format!(
            "{:#}",
            substitute_env("a = 1\nb = \"${NOPE}\"\n", "m.toml", env).unwrap_err()
        );
        assert!(err.contains("m.toml:2") && err.contains("${NOPE}"), "{err}");
    }

    #[test]
    fn admin_is_off_unless_given() {
        assert_eq!(parse(GOOD).unwrap().server.admin_addr(), None);
        let listen = "listen = \"127.0.0.1:20490\"";
        let with = |value: &str| GOOD.replace(listen, &format!("{listen}\nadmin = {value}"));
        assert_eq!(
            parse(&with("\"127.0.0.1:9464\""))
                .unwrap()
                .server
                .admin_addr(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(parse(&with("\"off\"")).unwrap().server.admin_addr(), None);
        let err = format!("{:#}", parse(&with("\"localhost:9464\"")).unwrap_err());
        assert!(err.contains("line 4") && err.contains("admin"), "{err}");
    }

    #[test]
    fn a_public_admin_address_needs_a_token() {
        let listen = "listen = \"127.0.0.1:20490\"";
        let with = |keys: &str| GOOD.replace(listen, &format!("{listen}\n{keys}"));
        let err = format!(
            "{:#}",
            parse(&with("admin = \"0.0.0.0:9464\"")).unwrap_err()
        );
        assert!(
            err.contains("mounts.toml:4: key `admin`") && err.contains("admin_token_env"),
            "{err}"
        );
        let config = parse(&with(
            "admin = \"0.0.0.0:9464\"\nadmin_token_env = \"NFSGW_ADMIN_TOKEN\"",
        ))
        .unwrap();
        assert_eq!(
            config.server.admin_addr(),
            Some("0.0.0.0:9464".parse().unwrap())
        );
        assert!(parse(&with("admin = \"[::1]:9464\"")).is_ok());
        let err = format!(
            "{:#}",
            parse(&with("admin = \"127.0.0.1:9464\"\nadmin_token_env = \" \"")).unwrap_err()
        );
        assert!(
            err.contains("mounts.toml:5: key `admin_token_env`"),
            "{err}"
        );
        let text = with("admin_token_env = \"NFSGW_TEST_SURELY_UNSET_VARIABLE\"");
        let config = parse(&text).unwrap();
        let src = Source {
            file: "mounts.toml",
            text: &text,
        };
        let err = format!("{:#}", config.server.admin_token(&src).unwrap_err());
        assert!(
            err.contains("mounts.toml:4: key `admin_token_env`")
                && err.contains("NFSGW_TEST_SURELY_UNSET_VARIABLE"),
            "{err}"
        );
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_zero_with_their_line() {
        let settings = parse(GOOD).unwrap().nfs_settings();
        assert_eq!(
            (settings.connections.total, settings.connections.per_client),
            (1024, 64)
        );
        assert_eq!(settings.idle_timeout, Duration::from_secs(360));
        assert_eq!(settings.record_timeout, Duration::from_secs(60));
        assert_eq!(settings.record_memory, 512 << 20);
        let text = GOOD.replace(
            "listen = \"127.0.0.1:20490\"",
            "listen = \"127.0.0.1:20490\"\nmax_connections = 10\nmax_connections_per_client = 2\n\
             idle_timeout_ms = 500\nrecord_timeout_ms = 700\nrecord_memory_mb = 8",
        );
        let settings = parse(&text).unwrap().nfs_settings();
        assert_eq!(
            (settings.connections.total, settings.connections.per_client),
            (10, 2)
        );
        assert_eq!(settings.idle_timeout, Duration::from_millis(500));
        assert_eq!(settings.record_timeout, Duration::from_millis(700));
        assert_eq!(settings.record_memory, 8 << 20);
        for (key, bad) in [("max_connections", "0"), ("record_memory_mb", "3")] {
            let text = GOOD.replace(
                "listen = \"127.0.0.1:20490\"",
                &format!("listen = \"127.0.0.1:20490\"\n{key} = {bad}"),
            );
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(
                err.contains(&format!("mounts.toml:4: key `server.{key}`: {bad} is less")),
                "{err}"
            );
        }
    }

    #[test]
    fn mounts_are_secure_unless_they_say_otherwise() {
        assert!(parse(GOOD)
            .unwrap()
            .nfs_settings()
            .insecure_mounts
            .is_empty());
        let text = GOOD.replace("read_only = true", "read_only = true\nsecure = false");
        let insecure = parse(&text).unwrap().nfs_settings().insecure_mounts;
        assert_eq!(insecure.into_iter().collect::<Vec<_>>(), ["models"]);
    }

    #[test]
    fn root_is_squashed_by_default_and_squash_options_are_checked() {
        let config = parse(GOOD).unwrap();
        let squash = config.mounts[0].squash();
        assert!(squash.root && !squash.all);
        assert_eq!((squash.anon_uid, squash.anon_gid), (NOBODY, NOBODY));
        let text = GOOD.replace(
            "read_only = true",
            "read_only = true\nroot_squash = false\nall_squash = true\nanon_uid = 1500\nanon_gid = 1600",
        );
        let squash = parse(&text).unwrap().mounts[1].squash();
        assert!(!squash.root && squash.all);
        assert_eq!((squash.anon_uid, squash.anon_gid), (1500, 1600));
        for (key, bad) in [("anon_uid", "-1"), ("anon_gid", "4294967296")] {
            let text = GOOD.replace(
                "read_only = true",
                &format!("read_only = true\n{key} = {bad}"),
            );
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(
                err.contains(&format!("mounts.toml:16: key `{key}` of mount \"models\"")),
                "{err}"
            );
        }
        let text = GOOD.replace(
            "read_only = true",
            "read_only = true\nroot_squash = \"yes\"",
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("line 16") && err.contains("root_squash"),
            "{err}"
        );
    }

    #[test]
    fn gateway_limits_are_read_and_checked() {
        let limits = parse(GOOD).unwrap().mounts[1].gateway_limits();
        assert_eq!(limits, crate::gateway::MountLimits::default());
        let text = GOOD.replace(
            "read_only = true",
            "read_only = true\nallow_devices = true\nmax_file_size = 1048576\n\
             staging_reserve = 0\nmax_staged_files = 3",
        );
        let limits = parse(&text).unwrap().mounts[1].gateway_limits();
        assert!(limits.allow_devices);
        assert_eq!(limits.max_file_size, Some(1 << 20));
        assert_eq!(limits.staging_reserve, Some(0));
        assert_eq!(limits.max_staged_files, Some(3));
        for (key, bad) in [("max_file_size", "0"), ("max_staged_files", "-1")] {
            let text = GOOD.replace(
                "read_only = true",
                &format!("read_only = true\n{key} = {bad}"),
            );
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(
                err.contains(&format!("mounts.toml:16: key `{key}` of mount \"models\"")),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_server_table_is_an_error() {
        let text = GOOD.replace("[server]\nlisten = \"127.0.0.1:20490\"", "");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("server"), "{err}");
    }
}
