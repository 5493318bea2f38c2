//! Calls from nfsgw to a client's own lock manager: the GRANTED of a lock the client waited
//! for, and the `_RES` answers of the asynchronous `_MSG` procedures. The client's lock manager
//! is found through the portmapper on the client's address (GETPORT of NLM v4 over TCP), then
//! called once over TCP; each step has a deadline, at most `MAX_IN_FLIGHT` callbacks run at
//! once, and one that cannot run or fails is dropped (a client retries a lock it still waits
//! for, and finds it granted). Callbacks come from a privileged source port when nfsgw may bind
//! one, as a kernel lock manager expects of a server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::rpc::Reader;

/// Callbacks running at once; more are dropped.
const MAX_IN_FLIGHT: usize = 64;
/// How long one callback may take, from the portmapper lookup to the reply.
const DEADLINE: Duration = Duration::from_secs(10);
/// The longest reply read from a client.
const MAX_REPLY: usize = 4096;
const PORTMAP: u32 = 100_000;
const GETPORT: u32 = 3;
const IPPROTO_TCP: u32 = 6;
const LAST_FRAGMENT: u32 = 1 << 31;

/// Where and how callbacks go.
pub struct Callbacks {
    /// The port of clients' portmappers (111).
    portmap_port: u16,
    permits: Arc<Semaphore>,
}

impl Callbacks {
    pub fn new(portmap_port: u16) -> Callbacks {
        Callbacks {
            portmap_port,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Calls procedure `proc_` of NLM v4 at `client` with `args`, in the background; `done`
    /// gets the reply's results, or `None` when the call failed or could not run.
    pub fn send(
        &self,
        client: IpAddr,
        proc_: u32,
        args: Vec<u8>,
        done: impl FnOnce(Option<Vec<u8>>) + Send + 'static,
    ) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(%client, "too many NLM callbacks in flight; one dropped");
            done(None);
            return;
        };
        let portmap = SocketAddr::new(client, self.portmap_port);
        tokio::spawn(async move {
            let reply = tokio::time::timeout(DEADLINE, call_nlm(portmap, proc_, &args))
                .await
                .ok()
                .flatten();
            if reply.is_none() {
                tracing::info!(%client, proc_, "an NLM callback to the client failed");
            }
            done(reply);
            drop(permit);
        });
    }
}

/// Finds the client's NLM v4 port through its portmapper, then calls it; the results.
async fn call_nlm(portmap: SocketAddr, proc_: u32, args: &[u8]) -> Option<Vec<u8>> {
    let mut getport = Vec::new();
    for w in [super::PROGRAM, super::VERSION, IPPROTO_TCP, 0] {
        getport.extend_from_slice(&w.to_be_bytes());
    }
    let results = call(portmap, (PORTMAP, 2), GETPORT, &getport).await?;
    let port = Reader::new(&results).u32()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    let nlm = SocketAddr::new(portmap.ip(), port);
    call(nlm, (super::PROGRAM, super::VERSION), proc_, args).await
}

/// One call over a new TCP connection, with AUTH_NULL; the results of an accepted reply.
async fn call(
    to: SocketAddr,
    (prog, vers): (u32, u32),
    proc_: u32,
    args: &[u8],
) -> Option<Vec<u8>> {
    let mut stream = connect(to).await?;
    let xid = next_xid();
    let mut record = Vec::with_capacity(44 + args.len());
    for w in [0, xid, 0, 2, prog, vers, proc_, 0, 0, 0, 0] {
        record.extend_from_slice(&w.to_be_bytes());
    }
    record.extend_from_slice(args);
    let mark = (record.len() as u32 - 4) | LAST_FRAGMENT;
    record[..4].copy_from_slice(&mark.to_be_bytes());
    stream.write_all(&record).await.ok()?;
    let mark = stream.read_u32().await.ok()?;
    let len = (mark & !LAST_FRAGMENT) as usize;
    if mark & LAST_FRAGMENT == 0 || len > MAX_REPLY {
        return None;
    }
    let mut reply = vec![0; len];
    stream.read_exact(&mut reply).await.ok()?;
    let mut r = Reader::new(&reply);
    // xid, REPLY, MSG_ACCEPTED, verifier, SUCCESS.
    let (got_xid, kind, accepted) = (r.u32()?, r.u32()?, r.u32()?);
    r.u32()?;
    r.opaque(400)?;
    let stat = r.u32()?;
    (got_xid == xid && kind == 1 && accepted == 0 && stat == 0)
        .then(|| reply[r.position()..].to_vec())
}

/// A connection to `to`, from a privileged port when one can be bound.
async fn connect(to: SocketAddr) -> Option<TcpStream> {
    for port in (665..1024).rev().step_by(37) {
        let Ok(socket) = TcpSocket::new_v4() else {
            break;
        };
        if socket.bind(SocketAddr::from(([0, 0, 0, 0], port))).is_ok() {
            return socket.connect(to).await.ok();
        }
    }
    TcpStream::connect(to).await.ok()
}

fn next_xid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0x6e6c_6d00);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
