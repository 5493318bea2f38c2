//! Validation of a parsed config: what the TOML parser cannot check (duplicate or malformed
//! mount names, values out of range, allow lists and host patterns that do not parse, secrets
//! without a source), each error naming the key and the line it is on.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::cache::CACHE_KEYS;
use super::clients::parse_net;
use super::env::substitute_env;
use super::{config_value_string, Config, HostPattern, Source, CONNECTION_KEYS};

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
        for (key, value) in self.server.cache.keys() {
            let (_, _, least) = CACHE_KEYS.iter().find(|(k, ..)| *k == key).unwrap();
            if let Some(value) = value.filter(|v| *v.get_ref() < *least) {
                bail!(
                    "{}: key `server.cache.{key}`: {} is less than {least}",
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
                HostPattern::parse(pattern.get_ref()).with_context(|| {
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
