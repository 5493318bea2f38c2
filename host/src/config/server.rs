//! Questions about the `[server]` table: the admin listener's address and token, the
//! connection keys with their defaults, and where state is kept.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use toml::Spanned;

use super::{ServerConfig, Source, CONNECTION_KEYS};

impl ServerConfig {
    /// The admin listener's address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| *a.get_ref())
    }

    /// Anyone who reaches a non-loopback admin listener could read the metrics and start
    /// uploads: such an address needs a token.
    pub(super) fn validate_admin(&self, src: &Source) -> Result<()> {
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

    pub(super) fn connection_keys(&self) -> [(&'static str, Option<&Spanned<u64>>); 5] {
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
    pub fn connection_value(&self, key: &str) -> u64 {
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
            .join(format!("{:016x}", crate::stable_hash::of_name(&id)))
    }
}
