//! What the front enforces on its connections and calls, taken from the config's `[server]`
//! connection keys and its mounts' `secure` and `locks` flags.

use std::collections::HashSet;
use std::time::Duration;

use crate::config::Config;
use crate::connections::Limits;

/// What the front enforces on its connections and calls, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connections: Limits,
    /// A connection with no call for this long is closed.
    pub idle_timeout: Duration,
    /// A record must arrive whole within this long of its first byte, and a batch of replies
    /// be taken by the client within this long; else the connection is closed.
    pub record_timeout: Duration,
    /// Bytes of records every connection together may hold while reading and answering them.
    pub record_memory: usize,
    /// Mounts that answer calls from unprivileged source ports (exports(5)'s `insecure`).
    pub insecure_mounts: HashSet<String>,
    /// Mounts that serve no locks (`locks = false`): NLM calls on them are refused.
    pub lockless_mounts: HashSet<String>,
    /// Where clients' portmappers answer, for NLM's calls back to a client's lock manager.
    pub client_portmap_port: u16,
    /// How long after a restart only reclaims of locks are granted, when the last run left
    /// lock holders.
    pub lock_grace: Duration,
}

impl Settings {
    /// The `[server]` connection keys (or their defaults) and the mounts that are not `secure`.
    pub fn from_config(config: &Config) -> Settings {
        let server = &config.server;
        let size = |key| usize::try_from(server.connection_value(key)).unwrap_or(usize::MAX);
        let millis = |key| Duration::from_millis(server.connection_value(key));
        Settings {
            connections: Limits {
                total: size("max_connections"),
                per_client: size("max_connections_per_client"),
            },
            idle_timeout: millis("idle_timeout_ms"),
            record_timeout: millis("record_timeout_ms"),
            record_memory: size("record_memory_mb").saturating_mul(1 << 20),
            client_portmap_port: server.client_portmap_port.unwrap_or(111),
            lock_grace: Duration::from_secs(server.lock_grace_seconds.unwrap_or(90)),
            insecure_mounts: config
                .mounts
                .iter()
                .filter(|m| !m.secure)
                .map(|m| m.name().to_string())
                .collect(),
            lockless_mounts: config
                .mounts
                .iter()
                .filter(|m| !m.locks)
                .map(|m| m.name().to_string())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:20490"

[[mount]]
name = "data"
plugin = "local"
config = { dir = "/srv" }

[[mount]]
name = "models"
plugin = "local"
config = { dir = "/models" }
"#;

    fn settings(text: &str) -> Settings {
        Settings::from_config(&Config::parse(text, "mounts.toml").unwrap())
    }

    #[test]
    fn connection_keys_have_defaults_and_reach_the_front() {
        let defaults = settings(CONFIG);
        assert_eq!(
            (defaults.connections.total, defaults.connections.per_client),
            (1024, 64)
        );
        assert_eq!(defaults.idle_timeout, Duration::from_secs(360));
        assert_eq!(defaults.record_timeout, Duration::from_secs(60));
        assert_eq!(defaults.record_memory, 512 << 20);
        assert_eq!(defaults.lock_grace, Duration::from_secs(90));
        let text = CONFIG.replace(
            "listen = \"127.0.0.1:20490\"",
            "listen = \"127.0.0.1:20490\"\nmax_connections = 10\nmax_connections_per_client = 2\n\
             idle_timeout_ms = 500\nrecord_timeout_ms = 700\nrecord_memory_mb = 8\n\
             lock_grace_seconds = 0",
        );
        let set = settings(&text);
        assert_eq!((set.connections.total, set.connections.per_client), (10, 2));
        assert_eq!(set.idle_timeout, Duration::from_millis(500));
        assert_eq!(set.record_timeout, Duration::from_millis(700));
        assert_eq!(set.record_memory, 8 << 20);
        assert_eq!(set.lock_grace, Duration::ZERO);
    }

    #[test]
    fn mounts_are_secure_unless_they_say_otherwise() {
        assert!(settings(CONFIG).insecure_mounts.is_empty());
        let text = CONFIG.replace(
            "config = { dir = \"/models\" }",
            "config = { dir = \"/models\" }\nsecure = false",
        );
        let insecure = settings(&text).insecure_mounts;
        assert_eq!(insecure.into_iter().collect::<Vec<_>>(), ["models"]);
    }

    #[test]
    fn mounts_serve_locks_unless_they_say_otherwise() {
        assert!(settings(CONFIG).lockless_mounts.is_empty());
        let text = CONFIG.replace(
            "config = { dir = \"/srv\" }",
            "config = { dir = \"/srv\" }\nlocks = false",
        );
        let lockless = settings(&text).lockless_mounts;
        assert_eq!(lockless.into_iter().collect::<Vec<_>>(), ["data"]);
    }
}
