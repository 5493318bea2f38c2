//! ONC RPC over TCP (RFC 5531): record marking, the call header, and reply headers.
//!
//! A call header is read by hand, so that calls with credential flavours we do not know still
//! get a proper rejection; procedure arguments and results are XDR through `nfs3_types`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use nfs3_types::nfs3::NFS3_FHSIZE;
use nfs3_types::rpc::{accept_stat_data, auth_stat};
use nfs3_types::xdr_codec::{Pack, Unpack};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::buffer_pool::BufferPool;
use crate::config::NOBODY;
use crate::copy_file::{gap_to_alignment, ALIGN};
use crate::gateway::Caller;

/// The largest record accepted: a 1 MiB WRITE plus headers, with room to spare.
pub const MAX_RECORD: usize = 4 << 20;
const LAST_FRAGMENT: u32 = 1 << 31;
/// A record's buffer grows by at most this much ahead of the bytes that arrived.
const GROWTH_STEP: usize = 64 << 10;
/// WRITE calls at least this long get their data block-aligned in memory.
const ALIGNED_WRITE_MIN: usize = 64 << 10;
/// A WRITE call's data starts within this many bytes: header, credentials and verifier (400
/// bytes each at most), file handle, and five words.
const WRITE_HEAD_MAX: usize = 24 + 2 * (8 + MAX_AUTH) + 4 + NFS3_FHSIZE + 20;
const NFSPROC3_WRITE: u32 = 7;
const RPC_VERSION: u32 = 2;
const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;
const AUTH_NULL: u32 = 0;
const AUTH_UNIX: u32 = 1;
/// Credentials are at most 400 bytes (RFC 5531).
const MAX_AUTH: usize = 400;
/// AUTH_UNIX machine names and group lists are at most this long (RFC 5531).
const MAX_MACHINE_NAME: usize = 255;
const MAX_GIDS: u32 = 16;

/// The bytes of records that every connection together may hold while they are read and
/// answered, counted in KiB. A record takes its share before its bytes are read, fragment by
/// fragment, and gives it back once it is dropped: many connections sending large records
/// slowly wait for room (and meet their record deadline) rather than pin memory.
pub struct RecordBudget(Arc<Semaphore>);

impl RecordBudget {
    pub fn new(bytes: usize) -> RecordBudget {
        RecordBudget(Arc::new(Semaphore::new(bytes.div_ceil(1024))))
    }

    /// Waits until `len` more bytes fit, and adds them to `held`.
    async fn reserve(&self, held: &mut Option<OwnedSemaphorePermit>, len: usize) {
        let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
        let more = self
            .0
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the budget is never closed");
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
    }
}

/// A record read from a connection, holding its share of the [`RecordBudget`] until dropped.
pub struct Record {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads one record (all its fragments), a large one into a buffer of `buffers`, once
/// `budget` has room for each fragment. `None` at a clean end of stream.
pub async fn read_record<R: AsyncRead + Unpin>(
    r: &mut R,
    buffers: &Arc<BufferPool>,
    budget: &RecordBudget,
) -> io::Result<Option<Record>> {
    let mut held = None;
    let bytes = assemble(
        r,
        MAX_RECORD,
        Some(buffers),
        Some((budget, &mut held)),
        &mut 0,
    )
    .await?;
    Ok(bytes.map(|bytes| Record {
        bytes,
        _budget: held,
    }))
}

/// One record of at most `max` bytes, outside any budget: a longer record is an
/// `InvalidData` error. `None` at a clean end of stream.
pub async fn read_record_limited<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buffers: Option<&Arc<BufferPool>>,
) -> io::Result<Option<Bytes>> {
    assemble(r, max, buffers, None, &mut 0).await
}

/// Reads a record's fragments into one buffer; `moved` counts the bytes that growing the
/// buffer had to move (at most about twice the record's length: growth is geometric).
///
/// The data of a large NFS WRITE is placed block-aligned in memory (see `write_data_at`), so
/// that a staged copy writes it to disk without copying it first (`copy_file`). Records of at
/// least `ALIGNED_WRITE_MIN` bytes are read into buffers taken from `buffers` (when given),
/// which get them back once the record is dropped. Other records grow as their bytes arrive,
/// so a record that claims megabytes and stalls holds only what it sent.
async fn assemble<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buffers: Option<&Arc<BufferPool>>,
    mut budget: Option<(&RecordBudget, &mut Option<OwnedSemaphorePermit>)>,
    moved: &mut usize,
) -> io::Result<Option<Bytes>> {
    let take = |capacity: usize| {
        buffers.map_or_else(|| Vec::with_capacity(capacity), |b| b.take(capacity))
    };
    let mut record: Vec<u8> = Vec::new();
    // Bytes before the record, there to align a WRITE's data.
    let mut shift = 0;
    // Where a WRITE's data starts in the record, once its first fragment placed it.
    let mut data_at = None;
    loop {
        let mut mark = [0u8; 4];
        match r.read_exact(&mut mark).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && record.is_empty() => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let mark = u32::from_be_bytes(mark);
        let len = (mark & !LAST_FRAGMENT) as usize;
        if record.len() - shift + len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("RPC record over {max} bytes"),
            ));
        }
        if let Some((budget, held)) = budget.as_mut() {
            budget.reserve(held, len).await;
        }
        let mut fragment = (&mut *r).take(len as u64);
        if record.is_empty() && len >= ALIGNED_WRITE_MIN {
            let mut head = Vec::with_capacity(WRITE_HEAD_MAX);
            (&mut fragment)
                .take(WRITE_HEAD_MAX as u64)
                .read_to_end(&mut head)
                .await?;
            record = take(len + ALIGN);
            if let Some(at) = write_data_at(&head) {
                shift = gap_to_alignment(record.as_ptr().wrapping_add(at));
                record.resize(shift, 0);
                data_at = Some(at);
            }
            record.extend_from_slice(&head);
        } else if let Some(at) = data_at.filter(|_| record.capacity() - record.len() < len) {
            // Growing in place could move the data off its block boundary: the fragments so
            // far move to a new buffer where it is aligned again, twice as large as needed so
            // far at least, so that many small fragments move each byte a few times only.
            let kept = record.len() - shift;
            let mut grown = take((kept + len).max(2 * kept).min(max) + ALIGN);
            let new_shift = gap_to_alignment(grown.as_ptr().wrapping_add(at));
            grown.resize(new_shift, 0);
            grown.extend_from_slice(&record[shift..]);
            *moved += kept;
            (record, shift) = (grown, new_shift);
        }
        // The rest is read into the record's spare room: a WRITE's megabyte is not zeroed first.
        let target = record.len() + fragment.limit() as usize;
        while record.len() < target {
            let room = (target - record.len()).min(GROWTH_STEP);
            if record.capacity() - record.len() < room {
                // `reserve` at least doubles the buffer, so reading stays linear.
                *moved += record.len();
                record.reserve(room);
            }
            if fragment.read_buf(&mut record).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if mark & LAST_FRAGMENT != 0 {
            let record = match buffers {
                Some(buffers) if record.capacity() >= ALIGNED_WRITE_MIN => buffers.share(record),
                _ => Bytes::from(record),
            };
            return Ok(Some(record.slice(shift..)));
        }
    }
}

/// Where the data of an NFSv3 WRITE call starts in its record, from the record's first bytes;
/// None for other calls, or when those bytes end before it.
fn write_data_at(head: &[u8]) -> Option<usize> {
    let Incoming::Call(call) = parse_call(head, SocketAddr::from(([0, 0, 0, 0], 0))) else {
        return None;
    };
    let write = (super::nfs3::PROGRAM, super::nfs3::VERSION, NFSPROC3_WRITE);
    if (call.prog, call.vers, call.proc_) != write {
        return None;
    }
    let mut r = Reader::new(&head[call.args..]);
    r.opaque(NFS3_FHSIZE)?;
    // offset (two words), count, stable, then the data's length.
    for _ in 0..5 {
        r.u32()?;
    }
    Some(call.args + r.at)
}

/// A parsed call header; the procedure's arguments start at `args`.
pub struct Call {
    /// The address the call came from.
    pub client: IpAddr,
    /// The source port it came from: below 1024 only root can send from on most systems.
    pub port: u16,
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub caller: Caller,
    pub args: usize,
}

/// What to do with a record.
pub enum Incoming {
    Call(Call),
    /// Answer with this reply without dispatching.
    Reject(Vec<u8>),
    /// Not a call we can answer at all (too short to hold an xid, or a reply).
    Ignore,
}

/// Reads XDR words and opaques from a byte slice; every read checks the bounds first, so a
/// length that claims more than the slice holds allocates nothing.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub fn u32(&mut self) -> Option<u32> {
        let v = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// A variable-length opaque (or string) of at most `max` bytes.
    pub fn opaque(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return None;
        }
        let padded = len.div_ceil(4) * 4;
        let v = self.bytes.get(self.at..self.at + len)?;
        self.at += padded;
        (self.at <= self.bytes.len()).then_some(v)
    }
}

fn caller_from(flavor: u32, body: &[u8]) -> Option<Caller> {
    match flavor {
        AUTH_NULL => Some(Caller {
            uid: NOBODY,
            gid: NOBODY,
            gids: Vec::new(),
        }),
        AUTH_UNIX => {
            // Read here rather than by nfs3_types, whose decoder would allocate a claimed
            // group count (up to 16 GiB) before reading the groups.
            let mut r = Reader::new(body);
            let _stamp = r.u32()?;
            r.opaque(MAX_MACHINE_NAME)?;
            let (uid, gid) = (r.u32()?, r.u32()?);
            let count = r.u32()?;
            if count > MAX_GIDS {
                return None;
            }
            let gids = (0..count).map(|_| r.u32()).collect::<Option<Vec<u32>>>()?;
            Some(Caller { uid, gid, gids })
        }
        _ => None,
    }
}

/// Reads a call's header; `peer` is where the record came from.
pub fn parse_call(record: &[u8], peer: SocketAddr) -> Incoming {
    let mut r = Reader::new(record);
    let Some(xid) = r.u32() else {
        return Incoming::Ignore;
    };
    if r.u32() != Some(MSG_CALL) {
        return Incoming::Ignore;
    }
    let Some(rpcvers) = r.u32() else {
        return Incoming::Reject(accepted(xid, accept_stat_data::GARBAGE_ARGS));
    };
    if rpcvers != RPC_VERSION {
        return Incoming::Reject(denied(xid, |out| {
            pack_all(out, &[RPC_MISMATCH, RPC_VERSION, RPC_VERSION]);
        }));
    }
    let header = (|| {
        let (prog, vers, proc_) = (r.u32()?, r.u32()?, r.u32()?);
        let flavor = r.u32()?;
        let body = r.opaque(MAX_AUTH)?;
        let caller = caller_from(flavor, body);
        let _verf_flavor = r.u32()?;
        r.opaque(MAX_AUTH)?;
        Some((prog, vers, proc_, caller))
    })();
    match header {
        None => Incoming::Reject(accepted(xid, accept_stat_data::GARBAGE_ARGS)),
        Some((_, _, _, None)) => Incoming::Reject(denied(xid, |out| {
            pack_all(out, &[AUTH_ERROR]);
            auth_stat::AUTH_BADCRED.pack(out).expect("writing to a Vec");
        })),
        Some((prog, vers, proc_, Some(caller))) => Incoming::Call(Call {
            client: peer.ip(),
            port: peer.port(),
            xid,
            prog,
            vers,
            proc_,
            caller,
            args: r.at,
        }),
    }
}

fn pack_all(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// A reply buffer starting with room for the record mark.
fn reply_start(xid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    pack_all(&mut out, &[0, xid, MSG_REPLY]);
    out
}

/// An accepted reply header; for SUCCESS the result follows.
pub fn accepted(xid: u32, stat: accept_stat_data) -> Vec<u8> {
    let mut out = reply_start(xid);
    // The verifier: AUTH_NULL, empty.
    pack_all(&mut out, &[MSG_ACCEPTED, AUTH_NULL, 0]);
    stat.pack(&mut out).expect("writing to a Vec");
    out
}

fn denied(xid: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = reply_start(xid);
    pack_all(&mut out, &[MSG_DENIED]);
    body(&mut out);
    out
}

/// A successful reply carrying `result`.
pub fn success<T: Pack>(xid: u32, result: &T) -> Vec<u8> {
    let mut out = accepted(xid, accept_stat_data::SUCCESS);
    out.reserve(result.packed_size());
    result.pack(&mut out).expect("writing to a Vec");
    out
}

/// Fills in the record mark of a finished reply (one last fragment).
pub fn seal(mut reply: Vec<u8>) -> Vec<u8> {
    let len = (reply.len() - 4) as u32;
    reply[..4].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
    reply
}

/// Decodes procedure arguments; `None` is GARBAGE_ARGS.
pub fn args<T: Unpack>(bytes: &[u8]) -> Option<T> {
    T::unpack(&mut io::Cursor::new(bytes)).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 700);

    fn call(rpcvers: u32, flavor: u32, cred: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pack_all(
            &mut out,
            &[
                7,
                MSG_CALL,
                rpcvers,
                100003,
                3,
                1,
                flavor,
                cred.len() as u32,
            ],
        );
        out.extend_from_slice(cred);
        out.resize(out.len().div_ceil(4) * 4, 0);
        pack_all(&mut out, &[AUTH_NULL, 0, 0xdead_beef]);
        out
    }

    fn unix_cred(uid: u32, gid: u32, gids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        pack_all(&mut out, &[1, 4]);
        out.extend_from_slice(b"host");
        pack_all(&mut out, &[uid, gid, gids.len() as u32]);
        pack_all(&mut out, gids);
        out
    }

    #[test]
    fn auth_unix_calls_carry_the_caller_and_the_args_offset() {
        let record = call(2, AUTH_UNIX, &unix_cred(1000, 100, &[4, 27]));
        let Incoming::Call(c) = parse_call(&record, LOCAL) else {
            panic!("not a call")
        };
        assert_eq!((c.xid, c.prog, c.vers, c.proc_), (7, 100003, 3, 1));
        assert_eq!(
            (c.caller.uid, c.caller.gid, c.caller.gids),
            (1000, 100, vec![4, 27])
        );
        assert_eq!(&record[c.args..], &0xdead_beef_u32.to_be_bytes());
    }

    #[test]
    fn null_auth_is_nobody_and_unknown_flavours_are_refused() {
        let Incoming::Call(c) = parse_call(&call(2, AUTH_NULL, &[]), LOCAL) else {
            panic!("not a call")
        };
        assert_eq!(c.caller.uid, NOBODY);
        let Incoming::Reject(reply) = parse_call(&call(2, 6, &[1, 2, 3, 4]), LOCAL) else {
            panic!("not rejected")
        };
        // xid, REPLY, MSG_DENIED, AUTH_ERROR, AUTH_BADCRED
        assert_eq!(
            &reply[4..],
            &[0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1][..]
        );
    }

    #[test]
    fn wrong_rpc_version_is_a_mismatch() {
        let Incoming::Reject(reply) = parse_call(&call(3, AUTH_NULL, &[]), LOCAL) else {
            panic!("not rejected")
        };
        assert_eq!(&reply[12..24], &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2][..]);
    }

    #[test]
    fn truncated_and_hostile_headers_are_garbage_or_ignored() {
        assert!(matches!(parse_call(&[0, 0], LOCAL), Incoming::Ignore));
        let mut record = call(2, AUTH_UNIX, &unix_cred(1, 1, &[]));
        record.truncate(20);
        assert!(matches!(parse_call(&record, LOCAL), Incoming::Reject(_)));
        // A credential that claims 4 GiB.
        let mut huge = Vec::new();
        pack_all(
            &mut huge,
            &[9, MSG_CALL, 2, 100003, 3, 0, AUTH_UNIX, u32::MAX],
        );
        assert!(matches!(parse_call(&huge, LOCAL), Incoming::Reject(_)));
        // AUTH_UNIX bodies that claim 4 Gi groups or a 4 GiB machine name are refused
        // (AUTH_BADCRED) without allocating them, and so are more than 16 groups.
        let mut many = Vec::new();
        pack_all(&mut many, &[1, 0, 1000, 1000, u32::MAX]);
        let mut long_name = Vec::new();
        pack_all(&mut long_name, &[1, u32::MAX]);
        let seventeen = unix_cred(1, 1, &[5; 17]);
        for cred in [many, long_name, seventeen] {
            let Incoming::Reject(reply) = parse_call(&call(2, AUTH_UNIX, &cred), LOCAL) else {
                panic!("not rejected")
            };
            assert_eq!(&reply[12..16], &MSG_DENIED.to_be_bytes());
        }
        let sixteen = unix_cred(1, 1, &[5; 16]);
        assert!(matches!(
            parse_call(&call(2, AUTH_UNIX, &sixteen), LOCAL),
            Incoming::Call(_)
        ));
    }

    #[test]
    fn sealed_replies_carry_their_length() {
        let reply = seal(accepted(5, accept_stat_data::PROC_UNAVAIL));
        let mark = u32::from_be_bytes(reply[..4].try_into().unwrap());
        assert_eq!(mark, LAST_FRAGMENT | (reply.len() as u32 - 4));
    }

    /// A record's bytes, read with room for the largest record.
    async fn read_record<R: AsyncRead + Unpin>(
        r: &mut R,
        pool: &Arc<BufferPool>,
    ) -> io::Result<Option<Bytes>> {
        let budget = RecordBudget::new(MAX_RECORD);
        Ok(super::read_record(r, pool, &budget)
            .await?
            .map(|record| record.bytes))
    }

    /// `record` sent in fragments of `size` bytes.
    fn fragmented(record: &[u8], size: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        let mut chunks = record.chunks(size).peekable();
        while let Some(chunk) = chunks.next() {
            let last = if chunks.peek().is_none() {
                LAST_FRAGMENT
            } else {
                0
            };
            stream.extend_from_slice(&(chunk.len() as u32 | last).to_be_bytes());
            stream.extend_from_slice(chunk);
        }
        stream
    }

    /// Reads `stream` as one record: its bytes, and how many bytes growing its buffer moved.
    async fn assembled(stream: &[u8], pool: &Arc<BufferPool>) -> (Bytes, usize) {
        let mut moved = 0;
        let bytes = assemble(&mut &stream[..], MAX_RECORD, Some(pool), None, &mut moved)
            .await
            .unwrap()
            .unwrap();
        (bytes, moved)
    }

    #[tokio::test]
    async fn many_small_fragments_are_joined_in_linear_work() {
        let pool = BufferPool::new(0);
        // 40,000 fragments of 8 bytes: joined by growing the buffer one fragment at a time,
        // this would move 6.4 GB; geometric growth moves each byte a few times at most.
        let record: Vec<u8> = (0..320_000).map(|i| (i % 253) as u8).collect();
        let (bytes, moved) = assembled(&fragmented(&record, 8), &pool).await;
        assert_eq!(bytes, record);
        assert!(moved <= 2 * record.len(), "moved {moved} bytes");

        // A WRITE whose first fragment places its data block-aligned, then tiny fragments.
        let (write, at) = write_call(7, 1 << 20);
        let mut stream = (ALIGNED_WRITE_MIN as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&write[..ALIGNED_WRITE_MIN]);
        stream.extend_from_slice(&fragmented(&write[ALIGNED_WRITE_MIN..], 16));
        let (bytes, moved) = assembled(&stream, &pool).await;
        assert_eq!(bytes, write);
        assert_eq!(gap_to_alignment(bytes[at..].as_ptr()), 0);
        assert!(moved <= 2 * write.len(), "moved {moved} bytes");
    }

    #[tokio::test]
    async fn a_record_waits_for_room_in_the_budget_and_gives_it_back() {
        use futures_util::FutureExt;
        let pool = BufferPool::new(0);
        let budget = RecordBudget::new(8 << 10);
        let record = vec![7u8; 6 << 10];
        let stream = fragmented(&record, record.len());
        let first = read_record_budgeted(&stream, &pool, &budget)
            .now_or_never()
            .expect("room for one")
            .unwrap();
        assert!(
            read_record_budgeted(&stream, &pool, &budget)
                .now_or_never()
                .is_none(),
            "no room for a second one while the first is held"
        );
        drop(first);
        let second = read_record_budgeted(&stream, &pool, &budget)
            .now_or_never()
            .expect("room again");
        assert_eq!(second.unwrap().bytes, record);
    }

    async fn read_record_budgeted(
        stream: &[u8],
        pool: &Arc<BufferPool>,
        budget: &RecordBudget,
    ) -> io::Result<Record> {
        let record = super::read_record(&mut &stream[..], pool, budget).await?;
        Ok(record.expect("a record"))
    }

    #[tokio::test]
    async fn records_join_fragments_and_refuse_oversized_ones() {
        let pool = BufferPool::new(0);
        let mut stream = Vec::new();
        stream.extend_from_slice(&3u32.to_be_bytes());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&(2 | LAST_FRAGMENT).to_be_bytes());
        stream.extend_from_slice(b"de");
        let mut r = &stream[..];
        assert_eq!(
            read_record(&mut r, &pool).await.unwrap().unwrap(),
            &b"abcde"[..]
        );
        assert!(read_record(&mut r, &pool).await.unwrap().is_none());
        let big = ((MAX_RECORD as u32 + 1) | LAST_FRAGMENT).to_be_bytes();
        assert!(read_record(&mut &big[..], &pool).await.is_err());
    }

    /// A WRITE call of `len` data bytes, with AUTH_UNIX credentials and an 8-byte handle; and
    /// where its data starts.
    fn write_call(proc_: u32, len: usize) -> (Vec<u8>, usize) {
        let cred = unix_cred(0, 0, &[1, 2, 3]);
        let mut out = Vec::new();
        pack_all(&mut out, &[9, MSG_CALL, 2, 100003, 3, proc_, AUTH_UNIX]);
        pack_all(&mut out, &[cred.len() as u32]);
        out.extend_from_slice(&cred);
        pack_all(&mut out, &[AUTH_NULL, 0, 8]);
        out.extend_from_slice(b"handle!!");
        pack_all(&mut out, &[0, 4096, len as u32, 0, len as u32]);
        let at = out.len();
        out.extend((0..len).map(|i| (i % 251) as u8));
        (out, at)
    }

    fn framed(record: &[u8], first: usize) -> Vec<u8> {
        let mut stream = (first as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&record[..first]);
        let rest = (record.len() - first) as u32 | LAST_FRAGMENT;
        stream.extend_from_slice(&rest.to_be_bytes());
        stream.extend_from_slice(&record[first..]);
        stream
    }

    #[tokio::test]
    async fn a_large_write_lands_with_its_data_block_aligned() {
        let pool = BufferPool::new(0);
        let (record, at) = write_call(7, 256 << 10);
        assert_eq!(write_data_at(&record[..WRITE_HEAD_MAX]), Some(at));
        // In two fragments, the first one ending inside the data.
        let stream = framed(&record, 100_000);
        let read = read_record(&mut &stream[..], &pool).await.unwrap().unwrap();
        assert_eq!(read, record);
        assert_eq!(gap_to_alignment(read[at..].as_ptr()), 0);

        let (other, _) = write_call(6, 256 << 10);
        assert_eq!(write_data_at(&other), None, "not a WRITE");
        let stream = framed(&other, other.len());
        assert_eq!(
            read_record(&mut &stream[..], &pool).await.unwrap().unwrap(),
            other
        );

        let cut = &framed(&record, 100_000)[..150_000];
        let e = read_record(&mut &cut[..], &pool).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            write_data_at(&record[..at - 1]),
            None,
            "the head ends early"
        );
    }

    #[tokio::test]
    async fn a_large_record_reuses_the_buffer_of_one_dropped_before() {
        let pool = BufferPool::new(4 << 20);
        let (record, _) = write_call(7, 1 << 20);
        let stream = framed(&record, record.len());
        let first = read_record(&mut &stream[..], &pool).await.unwrap().unwrap();
        let buffer = first.as_ptr();
        drop(first);
        assert!(pool.kept() > 1 << 20, "the buffer went back");

        let (other, other_at) = write_call(7, (1 << 20) - 4096);
        let stream = framed(&other, other.len());
        let second = read_record(&mut &stream[..], &pool).await.unwrap().unwrap();
        assert_eq!(second, other);
        assert_eq!(gap_to_alignment(second[other_at..].as_ptr()), 0);
        let apart = (second.as_ptr() as isize - buffer as isize).unsigned_abs();
        assert!(
            apart < ALIGN,
            "read into the same buffer ({apart} bytes apart)"
        );
        assert_eq!(pool.kept(), 0);
    }
}
