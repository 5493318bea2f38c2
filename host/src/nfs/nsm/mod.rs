//! NSM, the network status monitor (program 100024, version 1), served on the NFS port for the
//! lock service: it tells callers nfsgw's state number (`state`, moved on at each start), and
//! takes a client's SM_NOTIFY — the client restarted — as the end of every lock and waiting
//! lock that client held on any mount, as FREE_ALL is. nfsgw monitors exactly the hosts that
//! hold its locks (`crate::nfs::nlm` records them) and tells them itself when it restarts
//! (`notify`), so it takes no monitoring requests: SM_MON answers STAT_FAIL (nfsgw has no
//! local lock manager to call back), SM_UNMON and SM_UNMON_ALL have nothing to remove, and
//! SM_SIMU_CRASH changes nothing (the state number moves only when nfsgw starts).

pub mod notify;
pub mod state;

use nfs3_types::rpc::accept_stat_data;

use super::Server;
use crate::rpc::{self, Call, Reader};

pub const PROGRAM: u32 = 100024;
pub const VERSION: u32 = 1;
/// Procedure names by number, for metrics.
pub const PROCEDURES: [&str; 7] = [
    "NULL",
    "SM_STAT",
    "SM_MON",
    "SM_UNMON",
    "SM_UNMON_ALL",
    "SM_SIMU_CRASH",
    "SM_NOTIFY",
];
/// The SM_NOTIFY procedure, which nfsgw also calls on clients.
pub const SM_NOTIFY: u32 = 6;
/// The longest host name (`SM_MAXSTRLEN`).
pub const MAX_NAME: usize = 1024;
/// `res`: the call succeeded, or not.
const STAT_SUCC: u32 = 0;
const STAT_FAIL: u32 = 1;

pub fn dispatch(server: &Server, call: &Call, args: &[u8]) -> Vec<u8> {
    let state = server.locks.nsm_state();
    let mut r = Reader::new(args);
    let results = match call.proc_ {
        0 | 5 => Some(Vec::new()),
        // SM_STAT (sm_name): res, state.
        1 => name(&mut r).map(|_| words(&[STAT_SUCC, state])),
        // SM_MON (mon: mon_id, priv[16]): res, state.
        2 => mon_id(&mut r)
            .and_then(|()| (0..4).try_for_each(|_| r.u32().map(drop)))
            .map(|()| words(&[STAT_FAIL, state])),
        // SM_UNMON (mon_id), SM_UNMON_ALL (my_id): state.
        3 => mon_id(&mut r).map(|()| words(&[state])),
        4 => my_id(&mut r).map(|()| words(&[state])),
        SM_NOTIFY => notified(server, call, &mut r).map(|()| Vec::new()),
        _ => return rpc::accepted(call.xid, accept_stat_data::PROC_UNAVAIL),
    };
    match results {
        Some(results) => {
            let mut out = rpc::accepted(call.xid, accept_stat_data::SUCCESS);
            out.extend_from_slice(&results);
            out
        }
        None => rpc::accepted(call.xid, accept_stat_data::GARBAGE_ARGS),
    }
}

/// SM_NOTIFY (`stat_chge`: mon_name, state): the calling host restarted under the name
/// `mon_name`, so its locks are freed. Only the caller's own locks: those it took under that
/// name, or all of them when it names itself by its address; and only from a source port that
/// may use a mount of the caller's (`Server::may_free_locks`), so that a user on a client
/// cannot free the locks of the client's root.
fn notified(server: &Server, call: &Call, r: &mut Reader) -> Option<()> {
    let mon_name = name(r)?;
    let _state = r.u32()?;
    if !server.may_free_locks(call) {
        tracing::info!(client = %call.client, port = call.port, "SM_NOTIFY from an unprivileged port ignored");
        return Some(());
    }
    tracing::info!(client = %call.client, mon_name, "a lock client restarted (SM_NOTIFY)");
    server.locks.client_restarted(call.client, mon_name);
    Some(())
}

fn name<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
    std::str::from_utf8(r.opaque(MAX_NAME)?).ok()
}

/// `my_id`: my_name, my_prog, my_vers, my_proc.
fn my_id(r: &mut Reader) -> Option<()> {
    name(r)?;
    (0..3).try_for_each(|_| r.u32().map(drop))
}

/// `mon_id`: mon_name, my_id.
fn mon_id(r: &mut Reader) -> Option<()> {
    name(r)?;
    my_id(r)
}

fn words(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}
