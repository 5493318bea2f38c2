//! A pipelined ONC RPC client over one TCP connection (RFC 5531 record marking).
//!
//! Any number of calls may be in flight: each call is written whole under a lock, and one
//! reader task hands every reply record to the call waiting for its xid. Calls carry AUTH_UNIX
//! credentials of root (uid 0, gid 0), as a root-run kernel client does. A reply is returned as
//! its whole record with the offset where the procedure's results start, so a caller decodes
//! only what it needs (a READ reply's data is counted, never copied again).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Buf;
use nfs3_types::xdr_codec::Pack;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LAST_FRAGMENT: u32 = 1 << 31;

/// The calls waiting for replies, by xid; `None` once the connection has ended, so a call
/// made after that fails at once instead of waiting for a reply that cannot come.
type Pending = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Vec<u8>>>>>>;

/// One connection to one RPC server.
pub struct Rpc {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_xid: AtomicU32,
    reader: JoinHandle<()>,
}

impl Drop for Rpc {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A reply record; the procedure's results start at `body`.
pub struct Reply {
    pub record: Vec<u8>,
    pub body: usize,
}

impl Reply {
    pub fn results(&self) -> &[u8] {
        &self.record[self.body..]
    }
}

fn word(bytes: &[u8], at: usize) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
        .ok_or_else(|| anyhow!("short RPC reply"))
}

impl Rpc {
    pub async fn connect(addr: SocketAddr) -> Result<Rpc> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader = tokio::spawn(read_replies(
            BufReader::with_capacity(1 << 20, read),
            pending.clone(),
        ));
        Ok(Rpc {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_xid: AtomicU32::new(1),
            reader,
        })
    }

    /// Calls `proc_` of program `prog` version `vers` with `args`, and waits for its reply.
    pub async fn call(&self, prog: u32, vers: u32, proc_: u32, args: &impl Pack) -> Result<Reply> {
        self.call_with_tail(prog, vers, proc_, args, &[]).await
    }

    /// [`Rpc::call`] of arguments whose last field is the opaque `tail` (a WRITE's data):
    /// `args` ends with it empty, and `tail` is sent from where it is, not copied into the
    /// call first, as a kernel client sends pages.
    pub async fn call_with_tail(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &impl Pack,
        tail: &[u8],
    ) -> Result<Reply> {
        let xid = self.next_xid.fetch_add(1, Ordering::Relaxed);
        let mut record = Vec::with_capacity(96 + args.packed_size());
        let machine = b"nfsbench";
        // Record mark (filled in below), xid, CALL, RPC v2, program, version, procedure,
        // AUTH_UNIX (stamp, machine name, uid 0, gid 0, no groups), AUTH_NULL verifier.
        for w in [
            0,
            xid,
            0,
            2,
            prog,
            vers,
            proc_,
            1,
            20 + machine.len() as u32,
            0,
            8,
        ] {
            record.extend_from_slice(&w.to_be_bytes());
        }
        record.extend_from_slice(machine);
        for w in [0u32, 0, 0, 0, 0] {
            record.extend_from_slice(&w.to_be_bytes());
        }
        args.pack(&mut record)?;
        if !tail.is_empty() {
            let at = record.len() - 4;
            record[at..].copy_from_slice(&(tail.len() as u32).to_be_bytes());
        }
        let pad = &[0u8; 3][..tail.len().wrapping_neg() % 4];
        let len = (record.len() - 4 + tail.len() + pad.len()) as u32 | LAST_FRAGMENT;
        record[..4].copy_from_slice(&len.to_be_bytes());

        let (tx, rx) = oneshot::channel();
        match self.pending.lock().unwrap().as_mut() {
            Some(pending) => pending.insert(xid, tx),
            None => bail!("the connection closed"),
        };
        let mut call = Buf::chain(Buf::chain(record.as_slice(), tail), pad);
        if let Err(e) = self.writer.lock().await.write_all_buf(&mut call).await {
            if let Some(pending) = self.pending.lock().unwrap().as_mut() {
                pending.remove(&xid);
            }
            return Err(e).context("sending an RPC call");
        }
        let record = rx.await.map_err(|_| anyhow!("the connection closed"))?;
        // xid, REPLY, MSG_ACCEPTED, verifier (flavour, opaque), accept_stat SUCCESS.
        if word(&record, 8)? != 0 {
            bail!("call denied by the server");
        }
        let verf_len = word(&record, 16)? as usize;
        let at = 20 + verf_len.div_ceil(4) * 4;
        match word(&record, at)? {
            0 => Ok(Reply {
                record,
                body: at + 4,
            }),
            stat => bail!("RPC call not accepted: accept_stat {stat}"),
        }
    }
}

/// Reads reply records until the connection ends, handing each to its caller; then fails
/// every call still waiting, and every call made after.
async fn read_replies(mut read: BufReader<tokio::net::tcp::OwnedReadHalf>, pending: Pending) {
    while let Ok(record) = read_record(&mut read).await {
        let Ok(xid) = word(&record, 0) else { continue };
        let waiter = pending
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|p| p.remove(&xid));
        if let Some(waiter) = waiter {
            let _ = waiter.send(record);
        }
    }
    *pending.lock().unwrap() = None;
}

/// One whole record, its fragments joined.
async fn read_record(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<Vec<u8>> {
    let mut record = Vec::new();
    loop {
        let mark = read.read_u32().await?;
        let start = record.len();
        record.resize(start + (mark & !LAST_FRAGMENT) as usize, 0);
        read.read_exact(&mut record[start..]).await?;
        if mark & LAST_FRAGMENT != 0 {
            return Ok(record);
        }
    }
}
