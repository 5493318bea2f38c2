//! Who may use a mount and as whom: its allow list of client networks (loopback when it sets
//! none), and how it squashes callers' identities, as exports(5)'s `root_squash`,
//! `all_squash`, `anonuid` and `anongid` do. Applying the squash is the gateway's job.

use anyhow::Result;
use toml::Spanned;

use super::MountConfig;

/// The uid and gid squashed callers become unless a mount says otherwise: "nobody".
pub const NOBODY: u32 = 65534;

/// How a mount maps AUTH_UNIX identities before any check or ownership decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Squash {
    /// uid 0 becomes `anon_uid`, and gid 0 (primary or supplementary) `anon_gid`.
    pub root: bool,
    /// Every uid becomes `anon_uid` and the gid `anon_gid`, with no supplementary groups.
    pub all: bool,
    pub anon_uid: u32,
    pub anon_gid: u32,
}

impl Squash {
    /// No mapping: callers are who they say they are.
    pub const NONE: Squash = Squash {
        root: false,
        all: false,
        anon_uid: NOBODY,
        anon_gid: NOBODY,
    };
}

/// The clients of a mount that sets no `allow` list.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// An address or a network: "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8".
pub(super) fn parse_net(text: &str) -> Result<ipnet::IpNet> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    let ip: std::net::IpAddr = text.parse().map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an address nor a network like \"10.0.0.0/8\"")
    })?;
    Ok(ipnet::IpNet::from(ip))
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
}
