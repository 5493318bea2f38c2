//! Telling the hosts that held locks in nfsgw's last run that it restarted: an SM_NOTIFY to
//! each host's status monitor (found through the portmapper on the host's address), naming
//! nfsgw by the address the host reached it at and carrying the new state number, so that the
//! host's lock manager reclaims its locks. At most `AT_ONCE` hosts are called at a time, each
//! within `DEADLINE`; a host that cannot be reached is given up on (its locks were lost with
//! the restart either way).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::nfs::nlm::holders::Host;
use crate::nfs::outbound;

/// Hosts called at once.
const AT_ONCE: usize = 16;
/// How long one host may take, from the portmapper lookup to the reply.
const DEADLINE: Duration = Duration::from_secs(10);

/// Sends SM_NOTIFY with `state` to each of `hosts`, through their portmappers at
/// `portmap_port`; returns once every host answered or was given up on.
pub async fn notify_all(hosts: Vec<Host>, state: u32, portmap_port: u16) {
    stream::iter(hosts)
        .for_each_concurrent(AT_ONCE, |host| async move {
            let portmap = SocketAddr::new(host.client, portmap_port);
            let args = stat_chge(&host.server.to_string(), state);
            let call = outbound::call_through_portmap(
                portmap,
                (super::PROGRAM, super::VERSION),
                super::SM_NOTIFY,
                &args,
            );
            match tokio::time::timeout(DEADLINE, call).await {
                Ok(Some(_)) => tracing::info!(client = %host.client, "told of the restart"),
                _ => tracing::info!(client = %host.client, "could not be told of the restart"),
            }
        })
        .await;
}

/// `stat_chge`: mon_name, state.
fn stat_chge(mon_name: &str, state: u32) -> Vec<u8> {
    let mut out = (mon_name.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(mon_name.as_bytes());
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(&state.to_be_bytes());
    out
}
