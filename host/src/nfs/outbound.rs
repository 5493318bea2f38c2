//! One RPC call from nfsgw to a service on a client's host (its lock manager, its status
//! monitor): the service's port is asked of the portmapper on the client's address (GETPORT,
//! over TCP), then the service is called once over a new TCP connection with AUTH_NULL, from a
//! privileged source port when nfsgw may bind one, as a kernel client expects of a server.
//! Replies are read with a bound; the caller puts the deadline around the whole call.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::rpc::Reader;

/// The longest reply read from a client.
const MAX_REPLY: usize = 4096;
const PORTMAP: (u32, u32) = (100_000, 2);
const GETPORT: u32 = 3;
const IPPROTO_TCP: u32 = 6;
const LAST_FRAGMENT: u32 = 1 << 31;

/// Finds `program` (number, version) over TCP through the portmapper at `portmap`, then calls
/// its procedure `proc_` on the same host with `args`; the results of an accepted reply.
pub async fn call_through_portmap(
    portmap: SocketAddr,
    program: (u32, u32),
    proc_: u32,
    args: &[u8],
) -> Option<Vec<u8>> {
    let mut getport = Vec::new();
    for w in [program.0, program.1, IPPROTO_TCP, 0] {
        getport.extend_from_slice(&w.to_be_bytes());
    }
    let results = call(portmap, PORTMAP, GETPORT, &getport).await?;
    let port = Reader::new(&results).u32()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    call(SocketAddr::new(portmap.ip(), port), program, proc_, args).await
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
