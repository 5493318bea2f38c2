//! Host patterns of a mount's allow lists (`allow_hosts`, `secrets.hosts`): an exact host or
//! every subdomain of a domain, on one port or any. The http capability matches requests
//! against them.

use anyhow::{bail, Result};

/// One allow-list entry: an exact host or every subdomain of a domain, on one port or any.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPattern {
    /// Lower case, without brackets for IPv6.
    host: String,
    /// `*.domain`: matches hosts ending in ".domain" (not the domain itself).
    subdomains: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses "host", "host:port", "*.domain", "*.domain:port", "[v6]:port".
    pub fn parse(text: &str) -> Result<HostPattern> {
        if text.contains("://") || text.contains('/') {
            bail!(
                "{text:?} is not a host: give \"example.com\" or \"example.com:8080\", not a URL"
            );
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                bail!("{text:?}: unclosed '['");
            };
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => bail!("{text:?}: expected ':port' after ']'"),
            };
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                _ => (text, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("{text:?}: {p:?} is not a port number"))
            })
            .transpose()?;
        let (host, subdomains) = match host.strip_prefix("*.") {
            Some(domain) => (domain, true),
            None => (host, false),
        };
        let host = host.to_ascii_lowercase();
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
            && !host.contains('*');
        if !valid {
            bail!("{text:?} is not a host name, address or \"*.domain\" pattern");
        }
        Ok(HostPattern {
            host,
            subdomains,
            port,
        })
    }

    /// Exactly `host` (as in a URL) on `port`.
    pub fn exact(host: &str, port: u16) -> HostPattern {
        HostPattern {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            subdomains: false,
            port: Some(port),
        }
    }

    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.subdomains {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_junk_are_not_patterns() {
        for bad in [
            "https://huggingface.co",
            "a.test/path",
            "a.test:port",
            "*",
            "*.a*.test",
            "",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            HostPattern::parse("Hub.Test:80").unwrap(),
            HostPattern {
                host: "hub.test".into(),
                subdomains: false,
                port: Some(80)
            }
        );
    }
}
