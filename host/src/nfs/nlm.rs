//! The NLM v4 program (network lock manager, the XNFS specification's version 4, 64-bit
//! offsets), served on the NFS port: TEST, LOCK, CANCEL, UNLOCK and FREE_ALL, answered from
//! the host's lock table (`crate::locks`), so locks are shared by every NFS client of nfsgw and
//! no plugin sees them. A lock's file handle is checked as every NFS call's is (the mount's
//! allow list and secure port) before the table is asked; an owner is the caller's address
//! together with the name it gives, so no client can free or take over another's locks by
//! naming it. A blocking LOCK that conflicts waits in the table and answers BLOCKED; the lock
//! is granted in the table as soon as it is free, and the client's resent LOCK (clients retry
//! blocked locks) then finds it granted.

use std::sync::Mutex;

use nfs3_types::rpc::accept_stat_data;

use super::Server;
use crate::locks::{Lock, LockLimits, LockTable, Locked, Mode, Owner, Range, Refused};
use crate::rpc::{self, Call, Reader};

pub const PROGRAM: u32 = 100021;
pub const VERSION: u32 = 4;
/// Procedure names by number, for metrics (16 to 19 are unused).
pub const PROCEDURES: [&str; 24] = [
    "NULL",
    "TEST",
    "LOCK",
    "CANCEL",
    "UNLOCK",
    "GRANTED",
    "TEST_MSG",
    "LOCK_MSG",
    "CANCEL_MSG",
    "UNLOCK_MSG",
    "GRANTED_MSG",
    "TEST_RES",
    "LOCK_RES",
    "CANCEL_RES",
    "UNLOCK_RES",
    "GRANTED_RES",
    "",
    "",
    "",
    "",
    "SHARE",
    "UNSHARE",
    "NM_LOCK",
    "FREE_ALL",
];

/// The longest caller name and opaque object (cookie, owner handle) NLM allows.
const MAX_NAME: usize = 1024;
const MAX_NETOBJ: usize = 1024;
/// The longest NFSv3 file handle.
const MAX_HANDLE: usize = 64;
/// Locks and waiters the table holds, in all and per client.
pub const LIMITS: LockLimits = LockLimits {
    total: 1 << 16,
    per_client: 1 << 12,
};

/// nlm4_stats.
const GRANTED: u32 = 0;
const DENIED: u32 = 1;
const DENIED_NOLOCKS: u32 = 2;
const BLOCKED: u32 = 3;
const STALE_FH: u32 = 7;

/// The lock table NLM answers from, with the callback token of a waiter (none yet).
pub type Locks = Mutex<LockTable<()>>;

pub fn new_locks() -> Locks {
    Mutex::new(LockTable::new(LIMITS))
}

/// An `nlm4_lock`: the file handle and the lock it names.
struct Asked<'a> {
    fh: &'a [u8],
    lock: Lock,
}

fn u64_of(r: &mut Reader) -> Option<u64> {
    Some(u64::from(r.u32()?) << 32 | u64::from(r.u32()?))
}

fn bool_of(r: &mut Reader) -> Option<bool> {
    match r.u32()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Reads an `nlm4_lock` asked by `call` in `mode`.
fn lock_of<'a>(r: &mut Reader<'a>, call: &Call, mode: Mode) -> Option<Asked<'a>> {
    let name = std::str::from_utf8(r.opaque(MAX_NAME)?).ok()?;
    let fh = r.opaque(MAX_HANDLE)?;
    let handle = r.opaque(MAX_NETOBJ)?.to_vec();
    let svid = r.u32()?;
    let (offset, len) = (u64_of(r)?, u64_of(r)?);
    Some(Asked {
        fh,
        lock: Lock {
            owner: Owner {
                client: client_name(call, name).into(),
                svid,
                handle,
            },
            range: Range::of(offset, len),
            mode,
        },
    })
}

/// Who a caller is to the lock table: its address and the name it gives.
fn client_name(call: &Call, name: &str) -> String {
    format!("{}/{name}", call.client)
}

fn mode_of(exclusive: bool) -> Mode {
    if exclusive {
        Mode::Exclusive
    } else {
        Mode::Shared
    }
}

/// A reply: the cookie echoed, the status, then `more` words of the result.
fn answer(xid: u32, cookie: &[u8], stat: u32, more: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = rpc::accepted(xid, accept_stat_data::SUCCESS);
    put_opaque(&mut out, cookie);
    out.extend_from_slice(&stat.to_be_bytes());
    more(&mut out);
    out
}

fn put_opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len() + bytes.len().wrapping_neg() % 4, 0);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn dispatch(server: &Server, call: &Call, args: &[u8]) -> Vec<u8> {
    let xid = call.xid;
    let garbage = || rpc::accepted(xid, accept_stat_data::GARBAGE_ARGS);
    let mut r = Reader::new(args);
    match call.proc_ {
        0 => rpc::accepted(xid, accept_stat_data::SUCCESS),
        1 => test(server, call, &mut r).unwrap_or_else(garbage),
        2 => lock(server, call, &mut r).unwrap_or_else(garbage),
        3 => cancel(server, call, &mut r).unwrap_or_else(garbage),
        4 => unlock(server, call, &mut r).unwrap_or_else(garbage),
        23 => free_all(server, call, &mut r).unwrap_or_else(garbage),
        _ => rpc::accepted(xid, accept_stat_data::PROC_UNAVAIL),
    }
}

/// Whether the caller may lock the file the handle names (STALE_FH when not).
fn file_of(server: &Server, call: &Call, fh: &[u8]) -> Result<u64, u32> {
    match server.gateway.resolve_handle(fh) {
        Some(Ok(id))
            if server.gateway.allows(id, call.client)
                && server.port_allows(id, call.client, call.port) =>
        {
            Ok(id)
        }
        _ => Err(STALE_FH),
    }
}

fn test(server: &Server, call: &Call, r: &mut Reader) -> Option<Vec<u8>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let exclusive = bool_of(r)?;
    let asked = lock_of(r, call, mode_of(exclusive))?;
    let file = match file_of(server, call, asked.fh) {
        Ok(file) => file,
        Err(stat) => return Some(answer(call.xid, cookie, stat, |_| {})),
    };
    let holder = server.locks.lock().unwrap().test(file, &asked.lock);
    Some(match holder {
        None => answer(call.xid, cookie, GRANTED, |_| {}),
        Some(held) => answer(call.xid, cookie, DENIED, |out| {
            let exclusive = u32::from(held.mode == Mode::Exclusive);
            out.extend_from_slice(&exclusive.to_be_bytes());
            out.extend_from_slice(&held.owner.svid.to_be_bytes());
            put_opaque(out, &held.owner.handle);
            put_u64(out, held.range.start);
            let len = match held.range.end {
                u64::MAX => 0,
                end => end - held.range.start,
            };
            put_u64(out, len);
        }),
    })
}

fn lock(server: &Server, call: &Call, r: &mut Reader) -> Option<Vec<u8>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let block = bool_of(r)?;
    let exclusive = bool_of(r)?;
    let asked = lock_of(r, call, mode_of(exclusive))?;
    let _reclaim = bool_of(r)?;
    let _state = r.u32()?;
    let file = match file_of(server, call, asked.fh) {
        Ok(file) => file,
        Err(stat) => return Some(answer(call.xid, cookie, stat, |_| {})),
    };
    let wait = block.then_some(());
    let stat = match server.locks.lock().unwrap().lock(file, asked.lock, wait) {
        Ok(Locked::Granted) => GRANTED,
        Ok(Locked::Waiting) => BLOCKED,
        Err(Refused::Conflict(_)) => DENIED,
        Err(Refused::Full) => DENIED_NOLOCKS,
    };
    Some(answer(call.xid, cookie, stat, |_| {}))
}

/// CANCEL: drops a waiting request; one the table already granted while the client waited
/// was never reported to it, so it is released.
fn cancel(server: &Server, call: &Call, r: &mut Reader) -> Option<Vec<u8>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let _block = bool_of(r)?;
    let exclusive = bool_of(r)?;
    let asked = lock_of(r, call, mode_of(exclusive))?;
    let file = match file_of(server, call, asked.fh) {
        Ok(file) => file,
        Err(stat) => return Some(answer(call.xid, cookie, stat, |_| {})),
    };
    let mut locks = server.locks.lock().unwrap();
    if !locks.cancel(file, &asked.lock) {
        locks.unlock(file, &asked.lock.owner, asked.lock.range);
    }
    Some(answer(call.xid, cookie, GRANTED, |_| {}))
}

fn unlock(server: &Server, call: &Call, r: &mut Reader) -> Option<Vec<u8>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let asked = lock_of(r, call, Mode::Shared)?;
    let file = match file_of(server, call, asked.fh) {
        Ok(file) => file,
        Err(stat) => return Some(answer(call.xid, cookie, stat, |_| {})),
    };
    let lock = asked.lock;
    server
        .locks
        .lock()
        .unwrap()
        .unlock(file, &lock.owner, lock.range);
    Some(answer(call.xid, cookie, GRANTED, |_| {}))
}

/// FREE_ALL (`nlm4_notify`: the client's name and state): every lock of that client, which
/// rebooted. Its reply is void.
fn free_all(server: &Server, call: &Call, r: &mut Reader) -> Option<Vec<u8>> {
    let name = std::str::from_utf8(r.opaque(MAX_NAME)?).ok()?;
    let _state = r.u32()?;
    server
        .locks
        .lock()
        .unwrap()
        .free_all(&client_name(call, name));
    Some(rpc::accepted(call.xid, accept_stat_data::SUCCESS))
}
