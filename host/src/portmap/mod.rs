//! The portmapper (RFC 1833): program 100000, version 2 (portmap) and versions 3 and 4
//! (rpcbind), on one TCP and one UDP socket, so that NFS clients that are not told
//! `port=`/`mountport=` (Linux's `mount.nfs` and kernel, libnfs, Windows' `mount.exe`) find
//! nfsgw.
//!
//! This module owns a fixed table of what nfsgw serves: NFS v3, MOUNT v3, NLM v4 (locks) and
//! NSM v1 (the status monitor of lock clients) over TCP on the NFS port, NLM and NSM over UDP
//! on it too, and the portmapper itself over TCP and UDP. It answers lookups
//! and dumps from that table and nothing else. Registrations (SET, UNSET) are refused with
//! `false`, and CALLIT and the other procedures answer `PROC_UNAVAIL`. TCP calls use record marking and UDP calls are
//! one datagram each. RPC framing and call headers are `crate::rpc`'s. A malformed call gets
//! `GARBAGE_ARGS` or no answer, and never ends the server.
//!
//! `table` holds what is served and answers calls; this module owns the sockets.

mod table;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::connections::{self, Admission, Limits, Ticket};
use crate::rpc;
pub use table::{Proto, Table, PROGRAM};

/// Datagrams (and TCP records) longer than this are dropped. Every portmapper call is tiny.
pub const MAX_CALL: usize = 64 << 10;
/// Open TCP connections, in total and per client address: over either, the connection idle
/// longest is closed, or the new one when none is idle.
const CONNECTIONS: Limits = Limits {
    total: 64,
    per_client: 16,
};
/// A TCP connection that sends no call for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A TCP call must arrive whole within this long of its first byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The portmapper's bound TCP and UDP sockets (the same port), ready to serve.
pub struct Portmapper {
    tcp: TcpListener,
    udp: UdpSocket,
    table: Arc<Table>,
}

impl Portmapper {
    /// Binds TCP and UDP at `addr` (port 0: a free port that both are free on) and reports
    /// the NFS server at `nfs`, with NLM and NSM over UDP there when `lock_udp`. Errors name
    /// the config key and, where there is one, the way out.
    pub async fn bind(addr: SocketAddr, nfs: SocketAddr, lock_udp: bool) -> Result<Portmapper> {
        let mut attempt = 0;
        let (tcp, udp) = loop {
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|e| bind_error(addr, "tcp", &e))?;
            let port = tcp.local_addr()?.port();
            match UdpSocket::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(udp) => break (tcp, udp),
                // A port picked for TCP may be taken for UDP: pick another.
                Err(e) if addr.port() == 0 && attempt < 20 => {
                    tracing::debug!(port, "portmapper: UDP port taken ({e}); trying another");
                    attempt += 1;
                }
                Err(e) => return Err(bind_error(addr, "udp", &e)),
            }
        };
        let local = tcp.local_addr()?;
        Ok(Portmapper {
            tcp,
            udp,
            table: Arc::new(Table::new(nfs, local, lock_udp)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves TCP and UDP until an unrecoverable socket error.
    pub async fn serve(self) -> Result<()> {
        let Portmapper { tcp, udp, table } = self;
        tokio::select! {
            result = serve_udp(udp, table.clone()) => result.context("portmapper (udp)"),
            result = serve_tcp(tcp, table) => result.context("portmapper (tcp)"),
        }
    }
}

/// The startup error for a portmapper socket that cannot be bound.
fn bind_error(addr: SocketAddr, proto: &str, e: &io::Error) -> anyhow::Error {
    let way_out = "set server.portmap to another address (e.g. \"127.0.0.1:10111\") or \"off\"";
    match e.kind() {
        io::ErrorKind::AddrInUse => anyhow!(
            "server.portmap: {addr} is in use ({proto}; is rpcbind running? stop it with \
             `systemctl stop rpcbind rpcbind.socket`, or {way_out})"
        ),
        io::ErrorKind::PermissionDenied => anyhow!(
            "server.portmap: no permission to listen on {addr} ({proto}; ports below 1024 need \
             root or CAP_NET_BIND_SERVICE: run nfsgw as root, or {way_out})"
        ),
        _ => anyhow!("server.portmap: cannot listen on {addr} ({proto}): {e} ({way_out})"),
    }
}

async fn serve_udp(socket: UdpSocket, table: Arc<Table>) -> io::Result<()> {
    let bound = socket.local_addr()?.ip();
    // One byte more than the largest call, to tell a datagram that was cut short.
    let mut buf = vec![0u8; MAX_CALL + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // ICMP errors of earlier replies surface here on some systems; they are no reason to
            // stop serving.
            Err(e) => {
                tracing::debug!("portmapper: udp receive: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        if n > MAX_CALL {
            tracing::debug!(%peer, "portmapper: dropped an oversized datagram");
            continue;
        }
        let local = if bound.is_unspecified() {
            route_source(peer).unwrap_or(bound)
        } else {
            bound
        };
        if let Some(mut reply) = table.answer(&buf[..n], Proto::Udp, local) {
            // A datagram carries no record mark.
            reply.drain(..4);
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, "portmapper: udp send: {e}");
            }
        }
    }
}

/// The local address the system would send from to reach `peer` (no packet is sent).
fn route_source(peer: SocketAddr) -> Option<IpAddr> {
    let any: IpAddr = match peer {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    probe.connect(peer).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

async fn serve_tcp(listener: TcpListener, table: Arc<Table>) -> io::Result<()> {
    let admission = Admission::new(CONNECTIONS);
    loop {
        let (stream, peer) = connections::accept(&listener, "portmapper").await;
        let Some(ticket) = admission.admit(peer.ip()) else {
            tracing::debug!(%peer, "portmapper: too many connections; closing this one");
            continue;
        };
        let table = table.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &table, &ticket).await {
                tracing::debug!(%peer, "portmapper connection closed: {e}");
            }
        });
    }
}

async fn connection(stream: TcpStream, table: &Table, ticket: &Ticket) -> io::Result<()> {
    let local = stream.local_addr()?.ip();
    let timed_out = |why: &str| io::Error::new(io::ErrorKind::TimedOut, why.to_string());
    let mut stream = tokio::io::BufReader::new(stream);
    loop {
        ticket.idle();
        tokio::select! {
            biased;
            _ = ticket.evicted() => return Err(timed_out("closed for a newer connection")),
            filled = tokio::time::timeout(IDLE_TIMEOUT, stream.fill_buf()) => {
                filled.map_err(|_| timed_out("idle"))??;
            }
        }
        ticket.busy();
        let record = tokio::time::timeout(
            CALL_TIMEOUT,
            rpc::read_record_limited(&mut stream, MAX_CALL),
        )
        .await
        .map_err(|_| timed_out("a call stalled half-sent"))??;
        let Some(record) = record else {
            return Ok(());
        };
        if let Some(reply) = table.answer(&record, Proto::Tcp, local) {
            let reply = rpc::seal(reply);
            tokio::time::timeout(CALL_TIMEOUT, stream.get_mut().write_all(&reply))
                .await
                .map_err(|_| timed_out("the client takes no replies"))??;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::table::tests::{call, result, words};
    use super::table::{NFS_PROGRAM, PMAPPROC_GETPORT};
    use super::*;
    use nfs3_types::portmap::IPPROTO_TCP;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn bind_errors_name_the_key_and_the_way_out() {
        let addr: SocketAddr = "127.0.0.1:111".parse().unwrap();
        let in_use = bind_error(addr, "tcp", &io::ErrorKind::AddrInUse.into()).to_string();
        assert!(in_use.starts_with("server.portmap: 127.0.0.1:111 is in use"));
        assert!(in_use.contains("systemctl stop rpcbind rpcbind.socket"));
        assert!(in_use.contains("\"off\""));
        let denied = bind_error(addr, "udp", &io::ErrorKind::PermissionDenied.into()).to_string();
        assert!(denied.contains("server.portmap") && denied.contains("root"));
        assert!(denied.contains("\"off\""));
    }

    #[tokio::test]
    async fn serves_tcp_and_udp_on_one_port() {
        let pm = Portmapper::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:20490".parse().unwrap(),
            true,
        )
        .await
        .unwrap();
        let addr = pm.local_addr();
        let server = tokio::spawn(pm.serve());

        let mut args = Vec::new();
        words(&mut args, &[NFS_PROGRAM, 3, IPPROTO_TCP, 0]);
        let record = call(2, PMAPPROC_GETPORT, &args);

        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(&record, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = udp.recv_from(&mut buf).await.unwrap();
        let mut framed = vec![0; 4];
        framed.extend_from_slice(&buf[..n]);
        assert_eq!(result(&framed), (0, 20490u32.to_be_bytes().to_vec()));

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut sealed = vec![0; 4];
        sealed.extend_from_slice(&record);
        tcp.write_all(&rpc::seal(sealed)).await.unwrap();
        let reply = rpc::read_record_limited(&mut tcp, rpc::MAX_RECORD)
            .await
            .unwrap()
            .unwrap();
        let mut framed = vec![0; 4];
        framed.extend_from_slice(&reply);
        assert_eq!(result(&framed), (0, 20490u32.to_be_bytes().to_vec()));
        server.abort();
    }
}
