//! The NFS front: nfsgw's own ONC RPC dispatcher for NFSv3 and MOUNT v3 on one TCP port.
//!
//! Each connection reads records and answers every call in a task of its own, so many calls
//! can be in flight per client (bounded per connection); replies go back through one writer,
//! which sends the replies that are ready together.
//! `wire` owns the RPC framing, `nfs3` and `mount` the two programs, `convert` the mapping of
//! types. XDR encoding of arguments and results is `nfs3_types`'.

mod bounds;
mod convert;
mod mount;
mod nfs3;
mod reply;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use nfs3_types::rpc::accept_stat_data;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::buffer_pool::BufferPool;
use crate::gateway::handles::EXPORT_ROOT;
use crate::gateway::{Caller, FileId, Gateway};
use crate::plugin::bindings::types::Error;
use reply::Outgoing;

/// Calls answered concurrently per connection; further records wait to be read.
const MAX_IN_FLIGHT: usize = 32;
/// Bytes of buffers a connection keeps for its next calls (`buffer_pool`): those of 16 WRITE
/// records, or READ replies, of 1 MiB.
const RECORD_BUFFERS_KEPT: usize = 17 << 20;
/// Bytes of replies a connection sends in one vectored write, unless one reply is longer.
const BATCH_BYTES: usize = 256 << 10;
/// Bytes read from a connection at once: small calls that arrive together cost one system
/// call between them, while the data of a large WRITE mostly bypasses this buffer.
const READ_BUFFER: usize = 16 << 10;

/// What every call handler can reach.
pub struct Server {
    gateway: Arc<Gateway>,
    /// Changes every run: a client that sees it change after UNSTABLE writes sends them again.
    write_verifier: [u8; 8],
}

impl Server {
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
    async fn dispatch(
        &self,
        record: &Bytes,
        client: std::net::IpAddr,
        buffers: &Arc<BufferPool>,
    ) -> Option<Outgoing> {
        let call = match wire::parse_call(record, client) {
            wire::Incoming::Call(call) => call,
            wire::Incoming::Reject(reply) => return Some(reply.into()),
            wire::Incoming::Ignore => return None,
        };
        let args = record.slice(call.args..);
        let started = std::time::Instant::now();
        let mismatch = |v: u32| accept_stat_data::PROG_MISMATCH { low: v, high: v };
        let reply = match (call.prog, call.vers) {
            (nfs3::PROGRAM, nfs3::VERSION) => nfs3::dispatch(self, &call, &args, buffers).await,
            (nfs3::PROGRAM, _) => wire::accepted(call.xid, mismatch(nfs3::VERSION)).into(),
            (mount::PROGRAM, mount::VERSION) => mount::dispatch(self, &call, &args).await.into(),
            (mount::PROGRAM, _) => wire::accepted(call.xid, mismatch(mount::VERSION)).into(),
            _ => wire::accepted(call.xid, accept_stat_data::PROG_UNAVAIL).into(),
        };
        let (program, names): (_, &[&'static str]) = match call.prog {
            nfs3::PROGRAM => ("nfs3", &nfs3::PROCEDURES),
            mount::PROGRAM => ("mount", &mount::PROCEDURES),
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
    server: Arc<Server>,
}

impl NfsServer {
    pub async fn bind(addr: SocketAddr, gateway: Arc<Gateway>) -> Result<NfsServer> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("server.listen: cannot listen on {addr}"))?;
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let write_verifier = (boot.as_nanos() as u64).to_be_bytes();
        Ok(NfsServer {
            listener,
            server: Arc::new(Server {
                gateway,
                write_verifier,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn serve(self) -> Result<()> {
        loop {
            let (stream, peer) = self
                .listener
                .accept()
                .await
                .context("accepting an NFS connection")?;
            tracing::debug!(%peer, "NFS connection");
            let server = self.server.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(stream, server).await {
                    tracing::debug!(%peer, "NFS connection closed: {e}");
                }
            });
        }
    }
}

async fn connection(stream: TcpStream, server: Arc<Server>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let client = stream.peer_addr()?.ip();
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let (replies, mut outbox) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
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
            reply::write_all(&ready, &mut writer).await?;
            ready.clear();
        }
        std::io::Result::Ok(())
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let buffers = BufferPool::new(RECORD_BUFFERS_KEPT);
    let result = loop {
        let record = match wire::read_record(&mut reader, &buffers).await {
            Ok(Some(record)) => record,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (server, replies, buffers) = (server.clone(), replies.clone(), buffers.clone());
        tokio::spawn(async move {
            if let Some(reply) = server.dispatch(&record, client, &buffers).await {
                let _ = replies.send(reply.seal()).await;
            }
            drop(permit);
        });
    };
    drop(replies);
    send.await.ok();
    result
}

/// The RPC entry point for the fuzz targets: one record, as read from a connection, answered
/// by a server with no mounts (the export root only), as `dispatch` answers it.
#[doc(hidden)]
pub fn answer_for_fuzzing(record: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static SERVER: (tokio::runtime::Runtime, Server) = (
            tokio::runtime::Builder::new_current_thread().build().expect("a runtime"),
            Server { gateway: Arc::new(Gateway::new(Vec::new())), write_verifier: [7; 8] },
        );
    }
    SERVER
        .with(|(rt, server)| {
            let record = Bytes::copy_from_slice(record);
            let buffers = BufferPool::new(0);
            rt.block_on(server.dispatch(&record, std::net::Ipv4Addr::LOCALHOST.into(), &buffers))
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
        Server {
            gateway: Arc::new(Gateway::new(Vec::new())),
            write_verifier: [7; 8],
        }
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
        rt.block_on(server().dispatch(&record, "127.0.0.1".parse().unwrap(), &buffers))
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
            program in prop_oneof![Just(nfs3::PROGRAM), Just(mount::PROGRAM), any::<u32>()],
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
