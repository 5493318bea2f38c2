//! The NFS front: nfsgw's own ONC RPC dispatcher for NFSv3 and MOUNT v3 on one TCP port.
//!
//! Each connection reads records and answers every call in a task of its own, so many calls
//! can be in flight per client (bounded per connection); replies go back through one writer,
//! which sends the replies that are ready together. Connections are admitted at accept
//! (`crate::connections`: only addresses some mount allows, within the connection limits),
//! and closed when idle, when a record stalls half-sent, or to make room for a newer one.
//! Calls from unprivileged source ports reach only mounts that are not `secure`.
//! RPC framing is `crate::rpc`'s; `nfs3`, `mountd`, `nlm` (byte-range locks) and `nsm` (the
//! status monitor of lock clients) are the programs (the last two over UDP too, `udp`),
//! `outbound` how nfsgw calls a client's
//! services back, `state_file` the lock service's files in the state directory, `write_data` where a WRITE's data starts (so that the record reader aligns it),
//! `convert` the mapping of types, and `settings` what the config asks of the front. XDR encoding of arguments and
//! results is `nfs3_types`'.

mod bounds;
mod convert;
mod mountd;
mod nfs3;
mod nlm;
mod nsm;
mod outbound;
mod reply;
mod settings;
mod state_file;
mod udp;
mod write_data;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use nfs3_types::rpc::accept_stat_data;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::backend::types::Error;
use crate::buffer_pool::BufferPool;
use crate::connections::{self, Admission, Ticket};
use crate::gateway::handles::EXPORT_ROOT;
use crate::gateway::{Caller, FileId, Gateway, Mount};
use crate::rpc::{self, RecordBudget};
use reply::Outgoing;
pub use settings::Settings;

/// Calls answered concurrently per connection; further records wait to be read.
const MAX_IN_FLIGHT: usize = 32;
/// Bytes of buffers a connection keeps for its next calls (`buffer_pool`): those of 16 WRITE
/// records, or READ replies, of 1 MiB.
const RECORD_BUFFERS_KEPT: usize = 17 << 20;
/// Bytes of replies a connection sends in one vectored write, unless one reply is longer.
const BATCH_BYTES: usize = 256 << 10;
/// Source ports below this one are privileged: only root may bind them on most systems.
const PRIVILEGED_PORTS: u16 = 1024;
/// Bytes read from a connection at once: small calls that arrive together cost one system
/// call between them, while the data of a large WRITE mostly bypasses this buffer.
const READ_BUFFER: usize = 16 << 10;

/// What every call handler can reach.
pub struct Server {
    gateway: Arc<Gateway>,
    /// Changes every run: a client that sees it change after UNSTABLE writes sends them again.
    write_verifier: [u8; 8],
    insecure_mounts: HashSet<String>,
    /// The byte-range locks NLM clients hold, and the callbacks that tell them of grants.
    locks: nlm::LockService,
}

impl Server {
    fn new(
        gateway: Arc<Gateway>,
        write_verifier: [u8; 8],
        insecure_mounts: HashSet<String>,
        locks: nlm::LockService,
    ) -> Server {
        Server {
            gateway,
            write_verifier,
            insecure_mounts,
            locks,
        }
    }

    /// Whether a call from source port `port` of `client` may use file id `id`. A mount is
    /// `secure` unless its config says otherwise: then only privileged ports (below 1024),
    /// which only root can send from on the client, may use it. The export root is open to an
    /// unprivileged port when some mount the client may use is not secure.
    fn port_allows(&self, id: FileId, client: IpAddr, port: u16) -> bool {
        if port < PRIVILEGED_PORTS {
            return true;
        }
        let insecure = |m: &Mount| self.insecure_mounts.contains(&m.name);
        match self.gateway.mount_of_id(id) {
            Some(mount) => insecure(mount),
            None => self
                .gateway
                .mounts()
                .iter()
                .any(|m| insecure(m) && m.allow.iter().any(|net| net.contains(&client))),
        }
    }

    /// Whether a call may free every lock its client holds (NLM FREE_ALL, NSM SM_NOTIFY): from
    /// a privileged port, or when some mount the client may use takes unprivileged ports, as
    /// the export root is open to calls.
    fn may_free_locks(&self, call: &rpc::Call) -> bool {
        self.port_allows(EXPORT_ROOT, call.client, call.port)
    }

    /// The file id of an absolute export path (MNT): "/" is the export root. Mounting
    /// checks no permissions, as the NFS calls that follow do.
    async fn resolve_path(&self, path: &str) -> Result<FileId, Error> {
        let root = Caller {
            uid: 0,
            gid: 0,
            gids: Vec::new(),
        };
        let mut id = EXPORT_ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            id = self.gateway.lookup(&root, id, part).await?;
        }
        Ok(id)
    }

    /// Answers one record; READ data the host reads itself goes into a buffer of `buffers`.
    /// `local` is nfsgw's address the record came to.
    async fn dispatch(
        &self,
        record: &Bytes,
        peer: SocketAddr,
        local: IpAddr,
        buffers: &Arc<BufferPool>,
    ) -> Option<Outgoing> {
        let call = match rpc::parse_call(record, peer) {
            rpc::Incoming::Call(call) => call,
            rpc::Incoming::Reject(reply) => return Some(reply.into()),
            rpc::Incoming::Ignore => return None,
        };
        let args = record.slice(call.args..);
        let started = std::time::Instant::now();
        let mismatch = |v: u32| accept_stat_data::PROG_MISMATCH { low: v, high: v };
        let reply = match (call.prog, call.vers) {
            (nfs3::PROGRAM, nfs3::VERSION) => nfs3::dispatch(self, &call, &args, buffers).await,
            (nfs3::PROGRAM, _) => rpc::accepted(call.xid, mismatch(nfs3::VERSION)).into(),
            (mountd::PROGRAM, mountd::VERSION) => mountd::dispatch(self, &call, &args).await.into(),
            (mountd::PROGRAM, _) => rpc::accepted(call.xid, mismatch(mountd::VERSION)).into(),
            (nlm::PROGRAM, nlm::VERSION) => nlm::dispatch(self, &call, local, &args).await.into(),
            (nlm::PROGRAM, _) => rpc::accepted(call.xid, mismatch(nlm::VERSION)).into(),
            (nsm::PROGRAM, nsm::VERSION) => nsm::dispatch(self, &call, &args).into(),
            (nsm::PROGRAM, _) => rpc::accepted(call.xid, mismatch(nsm::VERSION)).into(),
            _ => rpc::accepted(call.xid, accept_stat_data::PROG_UNAVAIL).into(),
        };
        let (program, names): (_, &[&'static str]) = match call.prog {
            nfs3::PROGRAM => ("nfs3", &nfs3::PROCEDURES),
            mountd::PROGRAM => ("mount", &mountd::PROCEDURES),
            nlm::PROGRAM => ("nlm4", &nlm::PROCEDURES),
            nsm::PROGRAM => ("nsm1", &nsm::PROCEDURES),
            _ => ("other", &[]),
        };
        let procedure = names.get(call.proc_ as usize).copied().unwrap_or("unknown");
        crate::metrics::rpc(program, procedure, started.elapsed());
        Some(reply)
    }
}

/// A bound NFS listener, ready to serve.
pub struct NfsServer {
    listener: TcpListener,
    /// NLM and NSM over UDP on the same port, unless that port was taken for UDP.
    udp: Option<tokio::net::UdpSocket>,
    server: Arc<Server>,
    /// The hosts that held locks in the last run, to tell of the restart.
    last_lock_holders: Vec<nlm::holders::Host>,
    admission: Arc<Admission>,
    /// Shared by every connection's reader.
    link: Arc<Link>,
}

/// What each connection's reader needs besides the server.
struct Link {
    idle_timeout: Duration,
    record_timeout: Duration,
    budget: RecordBudget,
}

impl NfsServer {
    /// Binds `addr`; the lock service keeps its state in `state_dir`, where NSM's state number
    /// moves on now.
    pub async fn bind(
        addr: SocketAddr,
        gateway: Arc<Gateway>,
        settings: Settings,
        state_dir: &std::path::Path,
    ) -> Result<NfsServer> {
        let (listener, udp) = bind_tcp_and_udp(addr).await?;
        let dir = state_dir.to_path_buf();
        let (nsm_state, holders) = crate::blocking::run(crate::blocking::DEADLINE, move || {
            Ok::<_, std::io::Error>((
                nsm::state::advance(&dir)?,
                nlm::holders::Holders::open(dir)?,
            ))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|read| read)
        .with_context(|| {
            format!(
                "server.state_dir: cannot keep the lock service's state in {}",
                state_dir.display()
            )
        })?;
        let (locks, last_lock_holders) = nlm::LockService::new(nlm::Start {
            client_portmap_port: settings.client_portmap_port,
            lockless_mounts: settings.lockless_mounts,
            nsm_state,
            holders,
            grace: settings.lock_grace,
        });
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let write_verifier = (boot.as_nanos() as u64).to_be_bytes();
        Ok(NfsServer {
            listener,
            udp,
            server: Arc::new(Server::new(
                gateway,
                write_verifier,
                settings.insecure_mounts,
                locks,
            )),
            last_lock_holders,
            admission: Admission::new(settings.connections),
            link: Arc::new(Link {
                idle_timeout: settings.idle_timeout,
                record_timeout: settings.record_timeout,
                budget: RecordBudget::new(settings.record_memory),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Whether NLM and NSM are served over UDP too.
    pub fn serves_udp(&self) -> bool {
        self.udp.is_some()
    }

    /// Accepts connections until the process ends. A failed accept (out of descriptors)
    /// waits and goes on; a connection from an address no mount allows, or over the limits
    /// with no idle connection to close instead, is closed before a byte is read.
    pub async fn serve(self) -> Result<()> {
        if let Some(udp) = self.udp {
            let server = self.server.clone();
            tokio::spawn(async move {
                if let Err(e) = udp::serve(udp, server).await {
                    tracing::warn!("NLM and NSM over UDP stopped: {e}");
                }
            });
        }
        if !self.last_lock_holders.is_empty() {
            let locks = self.server.locks.clone();
            let hosts = self.last_lock_holders;
            let portmap_port = self.server.locks.client_portmap_port();
            tokio::spawn(async move {
                nsm::notify::notify_all(hosts, locks.nsm_state(), portmap_port).await;
                locks.holders().forget_previous().await;
            });
        }
        loop {
            let (stream, peer) = connections::accept(&self.listener, "NFS").await;
            if !self.server.gateway.allows(EXPORT_ROOT, peer.ip()) {
                tracing::debug!(%peer, "NFS connection closed: no mount allows this address");
                continue;
            }
            let Some(ticket) = self.admission.admit(peer.ip()) else {
                tracing::debug!(%peer, "NFS connection closed: connection limit reached");
                continue;
            };
            tracing::debug!(%peer, "NFS connection");
            let (server, link) = (self.server.clone(), self.link.clone());
            tokio::spawn(async move {
                match connection(stream, peer, server, link, ticket).await {
                    Ok(()) => tracing::debug!(%peer, "NFS connection closed by the client"),
                    Err(e) => tracing::debug!(%peer, "NFS connection closed: {e}"),
                }
            });
        }
    }
}

/// The NFS listener at `addr`, and a UDP socket on the same port for NLM and NSM. Port 0
/// picks a port free for both; when a given port is taken for UDP, NLM and NSM are served
/// over TCP only, and nfsgw says so.
async fn bind_tcp_and_udp(
    addr: SocketAddr,
) -> Result<(TcpListener, Option<tokio::net::UdpSocket>)> {
    let mut attempts = 0;
    loop {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("server.listen: cannot listen on {addr}"))?;
        let port = listener.local_addr()?.port();
        match tokio::net::UdpSocket::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(udp) => return Ok((listener, Some(udp))),
            Err(e) if addr.port() == 0 && attempts < 20 => {
                tracing::debug!(port, "NFS port taken for UDP ({e}); trying another");
                attempts += 1;
            }
            Err(e) => {
                tracing::warn!(
                    port,
                    "NLM and NSM over UDP not served: udp port {port}: {e}"
                );
                return Ok((listener, None));
            }
        }
    }
}

/// Why a connection's reader stopped waiting for its next record.
enum Wait {
    Record,
    Closed(std::io::Error),
}

fn closed(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, why.to_string())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    server: Arc<Server>,
    link: Arc<Link>,
    ticket: Ticket,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let stream_local = stream.local_addr()?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let (replies, mut outbox) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let write_timeout = link.record_timeout;
    let send = tokio::spawn(async move {
        let mut ready = Vec::with_capacity(MAX_IN_FLIGHT);
        while let Some(first) = outbox.recv().await {
            // Replies answered meanwhile go along, up to `BATCH_BYTES`: a READ's data buffer
            // goes back to the pool once it is written, not once a whole batch is.
            let mut bytes = first.len();
            ready.push(first);
            while bytes < BATCH_BYTES {
                let Ok(next) = outbox.try_recv() else { break };
                bytes += next.len();
                ready.push(next);
            }
            // A client that takes no replies would hold its calls' permits forever.
            tokio::time::timeout(write_timeout, reply::write_all(&ready, &mut writer))
                .await
                .map_err(|_| closed("the client takes no replies"))??;
            ready.clear();
        }
        std::io::Result::Ok(())
    });
    let local = stream_local.ip();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // Told each time a call is answered, so that the connection knows when it is idle.
    let answered = Arc::new(Notify::new());
    let buffers = BufferPool::new(RECORD_BUFFERS_KEPT);
    let result = loop {
        match next_record_starts(&mut reader, &in_flight, &answered, &link, &ticket).await {
            Wait::Record => {}
            Wait::Closed(e) => break Err(e),
        }
        let read = rpc::read_record(&mut reader, &buffers, &link.budget, &write_data::WRITE_DATA);
        let record = match tokio::time::timeout(link.record_timeout, read).await {
            Ok(Ok(Some(record))) => record,
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(e)) => break Err(e),
            Err(_) => break Err(closed("a record stalled half-sent")),
        };
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (server, replies, buffers) = (server.clone(), replies.clone(), buffers.clone());
        let answered = answered.clone();
        tokio::spawn(async move {
            if let Some(reply) = server.dispatch(&record.bytes, peer, local, &buffers).await {
                let _ = replies.send(reply.seal()).await;
            }
            drop(permit);
            answered.notify_one();
        });
    };
    drop(replies);
    send.await.ok();
    result
}

/// Waits until the next record's first byte arrives (or the stream ends). The connection is
/// idle meanwhile when none of its calls is being answered: then it may be closed to make
/// room for another, and is closed after `idle_timeout`.
async fn next_record_starts<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    in_flight: &Semaphore,
    answered: &Notify,
    link: &Link,
    ticket: &Ticket,
) -> Wait {
    loop {
        let quiet = in_flight.available_permits() == MAX_IN_FLIGHT;
        if quiet {
            ticket.idle();
        }
        let idle_for = async {
            if quiet {
                tokio::time::sleep(link.idle_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = ticket.evicted() => return Wait::Closed(closed("closed for a newer connection")),
            filled = reader.fill_buf() => {
                ticket.busy();
                return match filled {
                    Ok(_) => Wait::Record,
                    Err(e) => Wait::Closed(e),
                };
            }
            // A call was answered: look again whether any is left.
            _ = answered.notified(), if !quiet => {}
            _ = idle_for => return Wait::Closed(closed("idle")),
        }
    }
}

/// The RPC entry point for the fuzz targets: one record, as read from a connection, answered
/// by a server with no mounts (the export root only), as `dispatch` answers it.
#[doc(hidden)]
pub fn answer_for_fuzzing(record: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static SERVER: (tokio::runtime::Runtime, Server) = (
            tokio::runtime::Builder::new_current_thread().build().expect("a runtime"),
            Server::new(
                Arc::new(Gateway::new(Vec::new())),
                [7; 8],
                HashSet::new(),
                nlm::LockService::in_memory(),
            ),
        );
    }
    SERVER
        .with(|(rt, server)| {
            let record = Bytes::copy_from_slice(record);
            let buffers = BufferPool::new(0);
            let peer = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 700));
            rt.block_on(server.dispatch(&record, peer, peer.ip(), &buffers))
        })
        .map(|reply| reply.to_vec())
}

/// Hostile input at the RPC entry point: any record, and well-formed calls of every program
/// and procedure with arbitrary arguments, get an answer (or silence) and never a crash.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn server() -> Server {
        Server::new(
            Arc::new(Gateway::new(Vec::new())),
            [7; 8],
            HashSet::new(),
            nlm::LockService::in_memory(),
        )
    }

    fn header(xid: u32, prog: u32, vers: u32, proc_: u32) -> Vec<u8> {
        let mut out = Vec::new();
        // xid, CALL, RPC v2, program, version, procedure, AUTH_UNIX credentials, AUTH_NULL verifier.
        for w in [xid, 0, 2, prog, vers, proc_, 1, 20, 0, 0, 0, 0, 0] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&[0; 8]);
        out
    }

    fn answer(record: &[u8]) -> Option<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let record = Bytes::copy_from_slice(record);
        let buffers = BufferPool::new(0);
        let peer: SocketAddr = "127.0.0.1:700".parse().unwrap();
        rt.block_on(server().dispatch(&record, peer, peer.ip(), &buffers))
            .map(|reply| reply.head)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_record_is_answered_or_dropped(record in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Some(reply) = answer(&record) {
                // A reply always echoes the call's xid.
                prop_assert_eq!(&reply[4..8], &record[..4]);
            }
        }

        #[test]
        fn every_procedure_survives_arbitrary_arguments(
            xid in any::<u32>(),
            program in prop_oneof![
                Just(nfs3::PROGRAM),
                Just(mountd::PROGRAM),
                Just(nlm::PROGRAM),
                Just(nsm::PROGRAM),
                any::<u32>(),
            ],
            version in prop_oneof![Just(3u32), 0u32..5],
            procedure in 0u32..25,
            args in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut record = header(xid, program, version, procedure);
            record.extend_from_slice(&args);
            let reply = answer(&record).expect("a well-formed call is answered");
            prop_assert_eq!(&reply[4..8], &xid.to_be_bytes());
        }
    }
}
