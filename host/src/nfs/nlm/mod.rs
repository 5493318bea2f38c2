//! The NLM v4 program (network lock manager, the XNFS specification's version 4, 64-bit
//! offsets), served on the NFS port: TEST, LOCK, CANCEL, UNLOCK, NM_LOCK (a LOCK) and FREE_ALL,
//! the asynchronous `_MSG` forms of the first four, and the DOS share reservations of SHARE
//! and UNSHARE, answered from the host's lock and share tables (`crate::locks`,
//! `crate::shares`), so locks are shared by every NFS client of nfsgw and no plugin sees them.
//! A lock's file handle is checked as every NFS call's is (the mount's allow list and secure
//! port) before the table is asked; an owner is the caller's address together with the name it
//! gives, so no client can free or take over another's locks by naming it. A blocking LOCK that
//! conflicts waits in the table and answers BLOCKED; once the table grants it, the client is
//! called back with GRANTED (`callback`), and a client that no longer wants it has it released.
//! A mount with `locks = false` refuses every lock on its files (DENIED_NOLOCKS).
//!
//! Across restarts: a host is recorded in the state directory before its first lock is granted
//! (`holders`). When the last run left hosts recorded, nfsgw tells them it restarted (NSM,
//! `crate::nfs::nsm::notify`) and keeps a grace period, in which only reclaims of their old
//! locks are granted and other LOCKs and TESTs answer DENIED_GRACE_PERIOD. `wire` reads and
//! writes NLM's structures.

mod callback;
pub mod holders;
mod wire;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use nfs3_types::rpc::accept_stat_data;

use super::Server;
use crate::locks::{Granted, LockLimits, LockTable, Locked, Mode, Refused};
use crate::rpc::{self, Call, Reader};
use crate::shares::{ShareLimits, ShareRefused, ShareTable};
use callback::Callbacks;
use holders::{Holders, Host, Recorded};
use wire::Stat;

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
const GRANTED_PROC: u32 = 5;
/// A `_MSG` procedure's answer goes to the client's procedure this much higher (`_RES`).
const MSG_TO_RES: u32 = 5;
/// Locks and waiters the table holds, in all and per client.
pub const LIMITS: LockLimits = LockLimits {
    total: 1 << 16,
    per_client: 1 << 12,
};

/// Share reservations the table holds, in all and per client.
pub const SHARE_LIMITS: ShareLimits = ShareLimits {
    total: 1 << 14,
    per_client: 1 << 10,
};
const SHARE: u32 = 20;
const UNSHARE: u32 = 21;
const NM_LOCK: u32 = 22;

/// What a waiting LOCK needs for its GRANTED callback: where the client is, and the
/// `nlm4_testargs` to send it.
pub struct Waiting {
    client: IpAddr,
    granted_args: Vec<u8>,
}

/// How a lock service starts: what the config says, and what the last run left.
pub struct Start {
    /// Where clients' portmappers answer, to reach their lock managers.
    pub client_portmap_port: u16,
    /// Mounts that refuse locks.
    pub lockless_mounts: HashSet<String>,
    /// nfsgw's NSM state number in this run.
    pub nsm_state: u32,
    /// The record of lock holders, and the hosts the last run recorded.
    pub holders: (Holders, Vec<Host>),
    /// How long only reclaims are granted when the last run left lock holders.
    pub grace: Duration,
}

/// The lock table, the callbacks to clients, the mounts that serve no locks, the record of
/// lock holders and the grace period.
#[derive(Clone)]
pub struct LockService {
    table: Arc<Mutex<LockTable<Waiting>>>,
    shares: Arc<Mutex<ShareTable>>,
    callbacks: Arc<Callbacks>,
    lockless_mounts: Arc<HashSet<String>>,
    nsm_state: u32,
    holders: Holders,
    /// Until when only reclaims are granted.
    grace_until: Option<Instant>,
}

impl LockService {
    /// A service as `start` says, and the hosts of the last run to tell of the restart.
    pub fn new(start: Start) -> (LockService, Vec<Host>) {
        let (holders, last_run) = start.holders;
        let grace = !last_run.is_empty() && !start.grace.is_zero();
        let service = LockService {
            table: Arc::new(Mutex::new(LockTable::new(LIMITS))),
            shares: Arc::new(Mutex::new(ShareTable::new(SHARE_LIMITS))),
            callbacks: Arc::new(Callbacks::new(start.client_portmap_port)),
            lockless_mounts: Arc::new(start.lockless_mounts),
            nsm_state: start.nsm_state,
            holders,
            grace_until: grace.then(|| Instant::now() + start.grace),
        };
        (service, last_run)
    }

    /// A service with no state directory, no lockless mount and no grace (fuzzing, tests).
    pub fn in_memory() -> LockService {
        LockService::new(Start {
            client_portmap_port: 111,
            lockless_mounts: HashSet::new(),
            nsm_state: 1,
            holders: (Holders::in_memory(), Vec::new()),
            grace: Duration::ZERO,
        })
        .0
    }

    pub fn client_portmap_port(&self) -> u16 {
        self.callbacks.portmap_port()
    }

    pub fn nsm_state(&self) -> u32 {
        self.nsm_state
    }

    /// The record of lock holders.
    pub fn holders(&self) -> &Holders {
        &self.holders
    }

    fn in_grace(&self) -> bool {
        self.grace_until.is_some_and(|until| Instant::now() < until)
    }

    /// Frees what the host at `address` held under the name `name` (it restarted: NSM's
    /// SM_NOTIFY), or everything it held when `name` is its address.
    pub fn client_restarted(&self, address: IpAddr, name: &str) {
        let by_address = name.parse::<IpAddr>() == Ok(address);
        let prefix = format!("{address}/");
        let mut clients = self.table.lock().unwrap().clients();
        clients.extend(self.shares.lock().unwrap().clients());
        for client in clients {
            let Some(given) = client.strip_prefix(&prefix) else {
                continue;
            };
            if by_address || given == name {
                self.free_all(&client);
            }
        }
    }

    /// Frees every lock, waiting lock and share of `client`, and calls back the waiters this
    /// grants.
    fn free_all(&self, client: &str) {
        self.shares.lock().unwrap().free_all(client);
        let granted = self.table.lock().unwrap().free_all(client);
        self.call_back(granted);
    }

    /// Whether `call` may take a lock or share now: not in the grace period unless it
    /// `reclaim`s, and only once its host is recorded as a lock holder.
    async fn may_take(&self, call: &Call, local: IpAddr, reclaim: bool) -> Result<(), Stat> {
        if !reclaim && self.in_grace() {
            return Err(Stat::DeniedGracePeriod);
        }
        let host = Host {
            client: call.client,
            server: local,
        };
        match self.holders.record(host).await {
            Recorded::Yes => Ok(()),
            Recorded::No => Err(Stat::DeniedNoLocks),
        }
    }

    /// Tells each client whose waiting lock a release granted. A client that answers anything
    /// but GRANTED (it stopped waiting) has the lock released again, which may grant others.
    fn call_back(&self, granted: Vec<Granted<Waiting>>) {
        for g in granted {
            let service = self.clone();
            let (file, lock) = (g.file, g.lock);
            self.callbacks.send(
                g.token.client,
                GRANTED_PROC,
                g.token.granted_args,
                move |reply| {
                    let declined = reply.is_some_and(|results| {
                        wire::res_stat(&results).is_some_and(|s| s != Stat::Granted as u32)
                    });
                    if declined {
                        let more =
                            service
                                .table
                                .lock()
                                .unwrap()
                                .unlock(file, &lock.owner, lock.range);
                        service.call_back(more);
                    }
                },
            );
        }
    }
}

/// Answers one NLM call that came to nfsgw's address `local`.
pub async fn dispatch(server: &Server, call: &Call, local: IpAddr, args: &[u8]) -> Vec<u8> {
    let xid = call.xid;
    let proc_ = call.proc_;
    let mut r = Reader::new(args);
    let results = match proc_ {
        0 => Some(Vec::new()),
        1..=4 => answer(server, call, local, proc_, &mut r).await,
        // The asynchronous forms: the answer goes to the client's `_RES` procedure, and the
        // call itself gets an empty reply.
        6..=9 => answer(server, call, local, proc_ - MSG_TO_RES, &mut r)
            .await
            .map(|results| {
                server
                    .locks
                    .callbacks
                    .send(call.client, proc_ + MSG_TO_RES, results, |_| {});
                Vec::new()
            }),
        // Answers to our own callbacks, sent asynchronously: nothing to do.
        11..=15 => Some(Vec::new()),
        SHARE | UNSHARE => share(server, call, local, proc_, &mut r).await,
        // A LOCK whose client asks not to be monitored: nfsgw monitors no one but its lock
        // holders, recorded either way.
        NM_LOCK => answer(server, call, local, 2, &mut r).await,
        23 => free_all(server, call, &mut r).map(|()| Vec::new()),
        _ => return rpc::accepted(xid, accept_stat_data::PROC_UNAVAIL),
    };
    match results {
        Some(results) => {
            let mut out = rpc::accepted(xid, accept_stat_data::SUCCESS);
            out.extend_from_slice(&results);
            out
        }
        None => rpc::accepted(xid, accept_stat_data::GARBAGE_ARGS),
    }
}

/// The results of TEST (1), LOCK (2), CANCEL (3) or UNLOCK (4); `None` for garbage.
async fn answer(
    server: &Server,
    call: &Call,
    local: IpAddr,
    proc_: u32,
    r: &mut Reader<'_>,
) -> Option<Vec<u8>> {
    let asked = match proc_ {
        1 => wire::test_args(r, call)?,
        2 => wire::lock_args(r, call)?,
        3 => wire::cancel_args(r, call)?,
        _ => wire::unlock_args(r, call)?,
    };
    let file = match file_of(server, call, asked.fh).await {
        Ok(file) => file,
        Err(stat) => return Some(wire::res(asked.cookie, stat)),
    };
    let service = &server.locks;
    if proc_ == 1 && service.in_grace() {
        return Some(wire::res(asked.cookie, Stat::DeniedGracePeriod));
    }
    if proc_ == 2 {
        if let Err(stat) = service.may_take(call, local, asked.reclaim).await {
            return Some(wire::res(asked.cookie, stat));
        }
    }
    let mut table = service.table.lock().unwrap();
    Some(match proc_ {
        1 => match table.test(file, &asked.lock) {
            None => wire::res(asked.cookie, Stat::Granted),
            Some(held) => wire::denied_with_holder(asked.cookie, &held),
        },
        2 => {
            let wait = asked.block.then(|| Waiting {
                client: call.client,
                granted_args: wire::granted_args(&asked),
            });
            let stat = match table.lock(file, asked.lock, wait) {
                Ok(Locked::Granted) => Stat::Granted,
                Ok(Locked::Waiting) => Stat::Blocked,
                Err(Refused::Conflict(_)) => Stat::Denied,
                Err(Refused::Full) => Stat::DeniedNoLocks,
            };
            wire::res(asked.cookie, stat)
        }
        3 => {
            // A request the table granted while the client waited was never reported to it,
            // so cancelling it releases it.
            if !table.cancel(file, &asked.lock) {
                let granted = table.unlock(file, &asked.lock.owner, asked.lock.range);
                drop(table);
                service.call_back(granted);
            }
            wire::res(asked.cookie, Stat::Granted)
        }
        _ => {
            let granted = table.unlock(file, &asked.lock.owner, asked.lock.range);
            drop(table);
            service.call_back(granted);
            wire::res(asked.cookie, Stat::Granted)
        }
    })
}

/// The file id of a lock's handle: STALE_FH unless the caller may use it, and DENIED_NOLOCKS
/// when its mount serves no locks.
async fn file_of(server: &Server, call: &Call, fh: &[u8]) -> Result<u64, Stat> {
    match server.gateway.resolve_handle(fh).await {
        Some(Ok(id))
            if server.gateway.allows(id, call.client)
                && server.port_allows(id, call.client, call.port) =>
        {
            let lockless = server
                .gateway
                .mount_of_id(id)
                .is_some_and(|m| server.locks.lockless_mounts.contains(&m.name));
            if lockless {
                Err(Stat::DeniedNoLocks)
            } else {
                Ok(id)
            }
        }
        _ => Err(Stat::StaleFh),
    }
}

/// FREE_ALL (`nlm4_notify`): every lock of that client, which rebooted. Its reply is void.
/// Like SM_NOTIFY, it is taken only from a source port that may use a mount of the client's
/// (`Server::may_free_locks`).
fn free_all(server: &Server, call: &Call, r: &mut Reader) -> Option<()> {
    let name = wire::notify_name(r)?;
    if !server.may_free_locks(call) {
        return Some(());
    }
    server.locks.free_all(&wire::client_name(call, name));
    Some(())
}

/// The results of SHARE or UNSHARE; `None` for garbage. A share conflicting with another
/// owner's is DENIED (SHARE never waits).
async fn share(
    server: &Server,
    call: &Call,
    local: IpAddr,
    proc_: u32,
    r: &mut Reader<'_>,
) -> Option<Vec<u8>> {
    let asked = wire::share_args(r, call)?;
    let file = match file_of(server, call, asked.fh).await {
        Ok(file) => file,
        Err(stat) => return Some(wire::share_res(asked.cookie, stat)),
    };
    let service = &server.locks;
    if proc_ == UNSHARE {
        let owner = &asked.share.owner;
        service.shares.lock().unwrap().unshare(file, owner);
        return Some(wire::share_res(asked.cookie, Stat::Granted));
    }
    if let Err(stat) = service.may_take(call, local, asked.reclaim).await {
        return Some(wire::share_res(asked.cookie, stat));
    }
    let stat = match service.shares.lock().unwrap().share(file, asked.share) {
        Ok(()) => Stat::Granted,
        Err(ShareRefused::Conflict) => Stat::Denied,
        Err(ShareRefused::Full) => Stat::DeniedNoLocks,
    };
    Some(wire::share_res(asked.cookie, stat))
}

/// The mode a request's `exclusive` flag names.
fn mode_of(exclusive: bool) -> Mode {
    if exclusive {
        Mode::Exclusive
    } else {
        Mode::Shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Gateway;
    use crate::locks::{Lock, Owner, Range};
    use crate::rpc::Auth;

    fn call(prog: u32, vers: u32, proc_: u32, port: u16) -> Call {
        Call {
            client: IpAddr::from([127, 0, 0, 1]),
            port,
            xid: 1,
            prog,
            vers,
            proc_,
            auth: Auth::Null,
            args: 0,
        }
    }

    /// FREE_ALL or SM_NOTIFY's arguments: a name, then a state.
    fn name_and_state(name: &str) -> Vec<u8> {
        let mut args = (name.len() as u32).to_be_bytes().to_vec();
        args.extend_from_slice(name.as_bytes());
        args.resize(args.len().div_ceil(4) * 4, 0);
        args.extend_from_slice(&3u32.to_be_bytes());
        args
    }

    #[tokio::test]
    async fn a_client_locks_are_freed_only_from_a_port_that_may_use_its_mounts() {
        // No mount takes unprivileged ports here.
        let server = Server::new(
            Arc::new(Gateway::new(Vec::new())),
            [0; 8],
            HashSet::new(),
            LockService::in_memory(),
        );
        let held = || server.locks.table.lock().unwrap().len();
        let lock = Lock {
            owner: Owner {
                client: "127.0.0.1/alpha".into(),
                svid: 1,
                handle: Vec::new(),
            },
            range: Range::of(0, 0),
            mode: Mode::Exclusive,
        };
        let local = IpAddr::from([127, 0, 0, 1]);
        let args = name_and_state("alpha");
        let nsm = (super::super::nsm::PROGRAM, super::super::nsm::VERSION);
        for port in [40_000, 700] {
            for (prog, vers, proc_) in [(PROGRAM, VERSION, 23), (nsm.0, nsm.1, 6)] {
                let granted = server
                    .locks
                    .table
                    .lock()
                    .unwrap()
                    .lock(7, lock.clone(), None);
                assert_eq!(granted, Ok(Locked::Granted));
                let call = call(prog, vers, proc_, port);
                if prog == PROGRAM {
                    dispatch(&server, &call, local, &args).await;
                } else {
                    super::super::nsm::dispatch(&server, &call, &args);
                }
                let kept = usize::from(port >= 1024);
                assert_eq!(held(), kept, "program {prog} from port {port}");
                server
                    .locks
                    .table
                    .lock()
                    .unwrap()
                    .free_all("127.0.0.1/alpha");
            }
        }
    }
}
