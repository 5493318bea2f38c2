//! NLM v4's structures on the wire: the arguments of TEST, LOCK, CANCEL, UNLOCK, SHARE,
//! UNSHARE and FREE_ALL read with bounds (names, cookies and owner handles of at most 1 KiB, file handles of at
//! most 64 bytes), and the results and callback arguments written back.

use crate::locks::{Lock, Mode, Owner, Range};
use crate::rpc::{Call, Reader};
use crate::shares::{Share, ShareOwner};

/// The longest caller name and opaque object (cookie, owner handle) NLM allows.
const MAX_NAME: usize = 1024;
const MAX_NETOBJ: usize = 1024;
/// The longest NFSv3 file handle.
const MAX_HANDLE: usize = 64;

/// nlm4_stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stat {
    Granted = 0,
    Denied = 1,
    DeniedNoLocks = 2,
    Blocked = 3,
    DeniedGracePeriod = 4,
    StaleFh = 7,
}

/// A request's arguments: its cookie, flags, the file handle, the lock it names, and the
/// `nlm4_lock` as it came (to send back in a GRANTED).
pub struct Asked<'a> {
    pub cookie: &'a [u8],
    pub block: bool,
    /// A LOCK that reclaims a lock held before nfsgw restarted.
    pub reclaim: bool,
    pub exclusive: bool,
    pub fh: &'a [u8],
    pub lock: Lock,
    alock: &'a [u8],
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

/// Who a caller is to the lock table: its address and the name it gives.
pub fn client_name(call: &Call, name: &str) -> String {
    format!("{}/{name}", call.client)
}

/// Reads the `nlm4_lock` that follows the cookie and flags, of the request's `exclusive` mode.
fn with_lock<'a>(
    r: &mut Reader<'a>,
    call: &Call,
    cookie: &'a [u8],
    (block, exclusive): (bool, bool),
) -> Option<Asked<'a>> {
    let start = r.position();
    let name = std::str::from_utf8(r.opaque(MAX_NAME)?).ok()?;
    let fh = r.opaque(MAX_HANDLE)?;
    let handle = r.opaque(MAX_NETOBJ)?.to_vec();
    let svid = r.u32()?;
    let (offset, len) = (u64_of(r)?, u64_of(r)?);
    let alock = r.taken_since(start);
    Some(Asked {
        cookie,
        block,
        reclaim: false,
        exclusive,
        fh,
        lock: Lock {
            owner: Owner {
                client: client_name(call, name).into(),
                svid,
                handle,
            },
            range: Range::of(offset, len),
            mode: super::mode_of(exclusive),
        },
        alock,
    })
}

/// `nlm4_testargs`: cookie, exclusive, lock.
pub fn test_args<'a>(r: &mut Reader<'a>, call: &Call) -> Option<Asked<'a>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let exclusive = bool_of(r)?;
    with_lock(r, call, cookie, (false, exclusive))
}

/// `nlm4_lockargs`: cookie, block, exclusive, lock, reclaim, state.
pub fn lock_args<'a>(r: &mut Reader<'a>, call: &Call) -> Option<Asked<'a>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let flags = (bool_of(r)?, bool_of(r)?);
    let mut asked = with_lock(r, call, cookie, flags)?;
    asked.reclaim = bool_of(r)?;
    let _state = r.u32()?;
    Some(asked)
}

/// `nlm4_cancargs`: cookie, block, exclusive, lock.
pub fn cancel_args<'a>(r: &mut Reader<'a>, call: &Call) -> Option<Asked<'a>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let flags = (bool_of(r)?, bool_of(r)?);
    with_lock(r, call, cookie, flags)
}

/// `nlm4_unlockargs`: cookie, lock.
pub fn unlock_args<'a>(r: &mut Reader<'a>, call: &Call) -> Option<Asked<'a>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    with_lock(r, call, cookie, (false, false))
}

/// A SHARE or UNSHARE request's arguments.
pub struct ShareAsked<'a> {
    pub cookie: &'a [u8],
    pub fh: &'a [u8],
    pub share: Share,
    pub reclaim: bool,
}

/// `nlm4_shareargs`: cookie, `nlm4_share` (caller_name, fh, oh, mode, access), reclaim. The
/// mode (what the share denies) and the access are 0 to 3: none, read, write, both.
pub fn share_args<'a>(r: &mut Reader<'a>, call: &Call) -> Option<ShareAsked<'a>> {
    let cookie = r.opaque(MAX_NETOBJ)?;
    let name = std::str::from_utf8(r.opaque(MAX_NAME)?).ok()?;
    let fh = r.opaque(MAX_HANDLE)?;
    let handle = r.opaque(MAX_NETOBJ)?.to_vec();
    let deny = r.u32().filter(|m| *m <= 3)?;
    let access = r.u32().filter(|a| *a <= 3)?;
    let reclaim = bool_of(r)?;
    Some(ShareAsked {
        cookie,
        fh,
        share: Share {
            owner: ShareOwner {
                client: client_name(call, name).into(),
                handle,
            },
            access,
            deny,
        },
        reclaim,
    })
}

/// `nlm4_notify` (FREE_ALL): the client's name (its state follows).
pub fn notify_name<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
    let name = std::str::from_utf8(r.opaque(MAX_NAME)?).ok()?;
    let _state = r.u32()?;
    Some(name)
}

fn put_opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len() + bytes.len().wrapping_neg() % 4, 0);
}

/// `nlm4_res` (also the head of `nlm4_testres`): the cookie echoed and the status.
pub fn res(cookie: &[u8], stat: Stat) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + cookie.len());
    put_opaque(&mut out, cookie);
    out.extend_from_slice(&(stat as u32).to_be_bytes());
    out
}

/// `nlm4_shareres`: the cookie echoed, the status, and a sequence number (unused, 0).
pub fn share_res(cookie: &[u8], stat: Stat) -> Vec<u8> {
    let mut out = res(cookie, stat);
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// `nlm4_testres` of a conflict: DENIED, and the lock that conflicts (`nlm4_holder`).
pub fn denied_with_holder(cookie: &[u8], held: &Lock) -> Vec<u8> {
    let mut out = res(cookie, Stat::Denied);
    let exclusive = u32::from(held.mode == Mode::Exclusive);
    out.extend_from_slice(&exclusive.to_be_bytes());
    out.extend_from_slice(&held.owner.svid.to_be_bytes());
    put_opaque(&mut out, &held.owner.handle);
    out.extend_from_slice(&held.range.start.to_be_bytes());
    let len = match held.range.end {
        u64::MAX => 0,
        end => end - held.range.start,
    };
    out.extend_from_slice(&len.to_be_bytes());
    out
}

/// `nlm4_testargs` of the GRANTED callback for a waiting LOCK: its cookie, mode and lock as
/// the client sent them.
pub fn granted_args(asked: &Asked) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + asked.cookie.len() + asked.alock.len());
    put_opaque(&mut out, asked.cookie);
    out.extend_from_slice(&u32::from(asked.exclusive).to_be_bytes());
    out.extend_from_slice(asked.alock);
    out
}

/// The status of an `nlm4_res` a client answered.
pub fn res_stat(results: &[u8]) -> Option<u32> {
    let mut r = Reader::new(results);
    r.opaque(MAX_NETOBJ)?;
    r.u32()
}
