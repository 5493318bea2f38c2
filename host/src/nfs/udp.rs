//! NLM and NSM over UDP, on the NFS port: status monitors send SM_NOTIFY over UDP (Linux's
//! `sm-notify` sends nothing else), and lock managers may call NLM over it. A datagram is one
//! call; only addresses some mount allows are answered, only NLM and NSM are served (other
//! programs answer PROG_UNAVAIL: NFS and MOUNT are TCP only), and at most `IN_FLIGHT` calls are
//! answered at once: a datagram that comes when all are taken is dropped, and its client sends
//! it again.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use nfs3_types::rpc::accept_stat_data;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::{nlm, nsm, Server};
use crate::buffer_pool::BufferPool;
use crate::gateway::handles::EXPORT_ROOT;
use crate::rpc;

/// The longest datagram read; NLM and NSM calls are far smaller.
const MAX_DATAGRAM: usize = 8 << 10;
/// Calls answered at once.
const IN_FLIGHT: usize = 32;

/// Answers NLM and NSM calls on `socket` until it fails.
pub async fn serve(socket: UdpSocket, server: Arc<Server>) -> io::Result<()> {
    let socket = Arc::new(socket);
    let bound = socket.local_addr()?.ip();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let buffers = BufferPool::new(0);
    // One byte more than the largest call, to tell a datagram that was cut short.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // ICMP errors of earlier replies surface here on some systems.
            Err(e) => {
                tracing::debug!("NLM/NSM udp receive: {e}");
                continue;
            }
        };
        if n > MAX_DATAGRAM || !server.gateway.allows(EXPORT_ROOT, peer.ip()) {
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let record = Bytes::copy_from_slice(&buf[..n]);
        let (socket, server, buffers) = (socket.clone(), server.clone(), buffers.clone());
        tokio::spawn(async move {
            let local = local_address(bound, peer).await;
            let reply = match served(&record) {
                true => server.dispatch(&record, peer, local, &buffers).await,
                false => unavailable(&record, peer),
            };
            if let Some(reply) = reply {
                // The reply's first 4 bytes are room for a record mark, which UDP has none of.
                let _ = socket.send_to(&reply.to_vec()[4..], peer).await;
            }
            drop(permit);
        });
    }
}

/// Whether a datagram calls NLM v4 or NSM v1 (its program is its fourth word).
fn served(record: &[u8]) -> bool {
    let program = record
        .get(12..16)
        .map(|w| u32::from_be_bytes(w.try_into().expect("4 bytes")));
    program == Some(nlm::PROGRAM) || program == Some(nsm::PROGRAM)
}

/// PROG_UNAVAIL for a call of another program; nothing for what is no call.
fn unavailable(record: &Bytes, peer: SocketAddr) -> Option<super::reply::Outgoing> {
    match rpc::parse_call(record, peer) {
        rpc::Incoming::Call(call) => {
            Some(rpc::accepted(call.xid, accept_stat_data::PROG_UNAVAIL).into())
        }
        rpc::Incoming::Reject(reply) => Some(reply.into()),
        rpc::Incoming::Ignore => None,
    }
}

/// nfsgw's address as `peer` reaches it: the bound address, or for a wildcard, the address
/// the system sends to `peer` from.
async fn local_address(bound: IpAddr, peer: SocketAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let any = SocketAddr::new(bound, 0);
    match UdpSocket::bind(any).await {
        Ok(probe) if probe.connect(peer).await.is_ok() => {
            probe.local_addr().map_or(bound, |a| a.ip())
        }
        _ => bound,
    }
}
