//! The `secrets` capability: values a mount grants its plugin (`[mount.secrets]`), kept by the
//! host and handed out only as opaque handles.
//!
//! At startup the host reads each secret from its environment variable or file. A plugin asks
//! for one by name and gets a `secret` resource with no accessor: the only thing it can do with
//! the handle is pass it to `http.send`, which adds the value as a bearer token, and only to the
//! hosts the secret is bound to: its `hosts`, or, without them, the mount's own endpoint (the
//! `endpoint` URL of `[mount.config]`, else the first `allow_hosts` entry), never every allowed
//! host. The value never enters the sandbox and is never logged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::Resource;

use super::bindings::nfsgw::backend::secrets::{Host, HostSecret};
use super::bindings::types::Error;
use super::http::AllowList;
use super::runtime::HostState;
use crate::config::{HostPattern, SecretGrant, Source};

/// One secret's value and the hosts it may be sent to.
pub struct Secret {
    value: String,
    /// Its `hosts`, or the mount's own endpoint.
    hosts: AllowList,
}

impl Secret {
    /// The value, for the one place that sends it (`http`).
    pub(super) fn reveal(&self) -> &str {
        &self.value
    }

    /// Whether the secret may be sent to `host:port`.
    pub(super) fn may_go_to(&self, host: &str, port: u16) -> bool {
        self.hosts.allows(host, port)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The secrets a mount grants, by name.
#[derive(Debug, Default)]
pub struct Secrets(HashMap<String, Arc<Secret>>);

/// Where a secret without `hosts` may go: the host and port of the mount's `endpoint` URL (its
/// `[mount.config]` key, which the `hub` plugin reads), else the first entry of the mount's
/// `allow_hosts` (for `hub` without them, the public Hub).
pub fn own_endpoint(config_endpoint: Option<&str>, allow: &AllowList) -> Result<AllowList> {
    let Some(endpoint) = config_endpoint else {
        return Ok(allow.first());
    };
    let url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("key `config.endpoint`: {endpoint:?} is not a URL"))?;
    let host = url
        .host_str()
        .with_context(|| format!("key `config.endpoint`: {endpoint:?} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(AllowList::only(HostPattern::exact(host, port)))
}

impl Secrets {
    /// Reads every granted secret; `env` looks up environment variables. A secret that cannot
    /// be read is an error naming its key and line, unless it is `optional`. A secret without
    /// `hosts` is bound to `endpoint` (see `own_endpoint`).
    pub fn resolve(
        grants: &BTreeMap<String, SecretGrant>,
        endpoint: &AllowList,
        source: &Source,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets> {
        let mut secrets = HashMap::new();
        for (name, grant) in grants {
            let read = match (&grant.env, &grant.file) {
                (Some(var), _) => {
                    let at = source.at(var);
                    env(var.get_ref())
                        .filter(|v| !v.is_empty())
                        .with_context(|| {
                            format!(
                                "{at}: key `secrets.{name}.env`: the environment variable {} is not set",
                                var.get_ref()
                            )
                        })
                }
                (None, Some(file)) => {
                    let at = source.at(file);
                    std::fs::read_to_string(file.get_ref())
                        .map(|text| text.trim().to_string())
                        .with_context(|| {
                            format!(
                                "{at}: key `secrets.{name}.file`: cannot read {}",
                                file.get_ref()
                            )
                        })
                }
                (None, None) => unreachable!("the config check requires `env` or `file`"),
            };
            let value = match read {
                Ok(value) => value,
                Err(e) if grant.optional => {
                    tracing::info!("secret {name:?} not granted: {e:#}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let hosts = match &grant.hosts {
                Some(patterns) => AllowList::parse(patterns.iter().map(|p| p.get_ref().as_str()))?,
                None => endpoint.clone(),
            };
            secrets.insert(name.clone(), Arc::new(Secret { value, hosts }));
        }
        Ok(Secrets(secrets))
    }

    /// The secret granted under `name`.
    pub(super) fn get(&self, name: &str) -> Option<Arc<Secret>> {
        self.0.get(name).cloned()
    }

    #[cfg(test)]
    pub fn for_test(name: &str, value: &str, hosts: AllowList) -> Secrets {
        let secret = Secret {
            value: value.into(),
            hosts,
        };
        Secrets(HashMap::from([(name.to_string(), Arc::new(secret))]))
    }
}

/// What a plugin holds: a handle to one granted secret.
pub struct SecretHandle(pub(super) Arc<Secret>);

impl Host for HostState {
    fn get(&mut self, name: String) -> Result<Resource<SecretHandle>, Error> {
        let Some(secret) = self.secrets.get(&name) else {
            tracing::debug!(mount = %self.mount, "the plugin asked for secret {name:?}, which its mount does not grant");
            return Err(Error::NotFound);
        };
        self.table.push(SecretHandle(secret)).map_err(|_| Error::Io)
    }
}

impl HostSecret for HostState {
    fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn grants(text: &str) -> (Config, String) {
        let full = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[mount]]\nname = \"m\"\nplugin = \"hub\"\n{text}"
        );
        (Config::parse(&full, "mounts.toml").unwrap(), full)
    }

    #[test]
    fn secrets_come_from_env_or_file_and_missing_ones_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = format!(
            "[mount.secrets]\na = {{ env = \"TOKEN_A\" }}\nb = {{ file = {:?}, hosts = [\"hub.test\"] }}\n\
             c = {{ env = \"UNSET\", optional = true }}\n",
            file.display().to_string()
        );
        let (config, full) = grants(&text);
        let source = Source {
            file: "mounts.toml",
            text: &full,
        };
        let env = |v: &str| (v == "TOKEN_A").then(|| "from-env".to_string());
        let endpoint = own_endpoint(
            Some("https://Hub.Test"),
            &AllowList::parse(["cdn.test", "hub.test"]).unwrap(),
        )
        .unwrap();
        let secrets = Secrets::resolve(&config.mounts[0].secrets, &endpoint, &source, env).unwrap();
        assert_eq!(secrets.0["a"].reveal(), "from-env");
        assert_eq!(secrets.0["b"].reveal(), "from-file");
        // Without `hosts`: the mount's endpoint only, not every allowed host.
        assert!(secrets.0["a"].may_go_to("hub.test", 443));
        assert!(!secrets.0["a"].may_go_to("hub.test", 80));
        assert!(!secrets.0["a"].may_go_to("cdn.test", 443));
        assert!(!secrets.0["a"].may_go_to("anywhere.test", 443));
        assert!(secrets.0["b"].may_go_to("hub.test", 443));
        assert!(!secrets.0["b"].may_go_to("cdn.test", 443));
        assert!(
            !secrets.0.contains_key("c"),
            "an optional, unset secret is not granted"
        );
        assert_eq!(format!("{:?}", secrets.0["a"]), "Secret(..)");

        let (config, full) = grants("[mount.secrets]\ntoken = { env = \"NOPE\" }\n");
        let source = Source {
            file: "mounts.toml",
            text: &full,
        };
        let err = Secrets::resolve(
            &config.mounts[0].secrets,
            &AllowList::default(),
            &source,
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mounts.toml:7: key `secrets.token.env`") && err.contains("NOPE"),
            "{err}"
        );
    }

    #[test]
    fn the_own_endpoint_is_the_endpoint_url_else_the_first_allowed_host() {
        let allow = AllowList::parse(["127.0.0.1:8080", "127.0.0.1:9090"]).unwrap();
        let first = own_endpoint(None, &allow).unwrap();
        assert!(first.allows("127.0.0.1", 8080));
        assert!(!first.allows("127.0.0.1", 9090));
        let url = own_endpoint(Some("http://127.0.0.1:9090/api"), &allow).unwrap();
        assert!(url.allows("127.0.0.1", 9090));
        assert!(!url.allows("127.0.0.1", 8080));
        assert!(own_endpoint(Some("not a url"), &allow).is_err());
        assert!(own_endpoint(None, &AllowList::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_secret_needs_exactly_one_source() {
        let text =
            "[server]\nlisten = \"127.0.0.1:0\"\n[[mount]]\nname = \"m\"\nplugin = \"hub\"\n\
                    [mount.secrets]\ntoken = { hosts = [\"a.test\"] }\n";
        let err = format!("{:#}", Config::parse(text, "mounts.toml").unwrap_err());
        assert!(
            err.contains("`secrets.token`") && err.contains("exactly one"),
            "{err}"
        );
    }
}
