//! The NFSv3 program (RFC 1813): each procedure decoded, answered through the gateway core,
//! and encoded. Directory-changing replies carry the directory's attributes after the change
//! (weak cache consistency without the "before" half, which RFC 1813 allows).
//!
//! This module decodes a call, finds the mount and the caller, dispatches, and holds what the
//! procedures share; `files` (one file's procedures), `entries` (making, removing and
//! renaming entries), `listings` (READDIR, READDIRPLUS) and `fs_info` hold the procedures.

mod entries;
mod files;
mod fs_info;
mod listings;

use std::sync::Arc;

use bytes::Bytes;
use nfs3_types::nfs3::*;
use nfs3_types::rpc::accept_stat_data;
use nfs3_types::xdr_codec::{Opaque, Pack, Void};

use super::convert::{post_op, status};
use super::reply::Outgoing;
use super::Server;
use crate::backend::types::Attrs;
use crate::buffer_pool::BufferPool;
use crate::config::NOBODY;
use crate::gateway::{Caller, FileId, Mount};
use crate::rpc::{self, Auth, Call};

pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 3;
/// Procedure names by number, for metrics.
pub const PROCEDURES: [&str; 22] = [
    "NULL",
    "GETATTR",
    "SETATTR",
    "LOOKUP",
    "ACCESS",
    "READLINK",
    "READ",
    "WRITE",
    "CREATE",
    "MKDIR",
    "SYMLINK",
    "MKNOD",
    "REMOVE",
    "RMDIR",
    "RENAME",
    "LINK",
    "READDIR",
    "READDIRPLUS",
    "FSSTAT",
    "FSINFO",
    "PATHCONF",
    "COMMIT",
];

/// Preferred and largest READ/WRITE size: 1 MiB.
const TRANSFER_SIZE: u32 = 1 << 20;
/// Directory entries asked of the gateway per READDIR(PLUS) reply, at most.
const MAX_DIR_ENTRIES: usize = 4096;
/// Reply bytes that are not entries (RPC header, status, attributes, verifier, eof).
const DIR_REPLY_OVERHEAD: usize = 256;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

type Reply = Result<Outgoing, Garbage>;
/// The arguments could not be decoded.
struct Garbage;

fn decode<T: nfs3_types::xdr_codec::Unpack>(args: &[u8]) -> Result<T, Garbage> {
    rpc::args(args).ok_or(Garbage)
}

/// WRITE's arguments, with the data as a slice of its record. `nfs3_types` would decode the
/// data into a new, zeroed vector; a slice keeps it where `rpc::read_record` put it,
/// block-aligned, so a staged copy writes it to disk without a copy.
struct WriteArgs {
    file: nfs_fh3,
    offset: u64,
    count: u32,
    stable: stable_how,
    data: Bytes,
}

fn decode_write(args: &Bytes) -> Result<WriteArgs, Garbage> {
    use nfs3_types::xdr_codec::Unpack;
    let mut head = std::io::Cursor::new(&args[..]);
    let mut field = || -> Result<_, nfs3_types::xdr_codec::Error> {
        Ok((
            nfs_fh3::unpack(&mut head)?.0,
            u64::unpack(&mut head)?.0,
            u32::unpack(&mut head)?.0,
            stable_how::unpack(&mut head)?.0,
        ))
    };
    let (file, offset, count, stable) = field().map_err(|_| Garbage)?;
    let at = head.position() as usize;
    let data = rpc::Reader::new(&args[at..])
        .opaque(rpc::MAX_RECORD)
        .ok_or(Garbage)?;
    Ok(WriteArgs {
        file,
        offset,
        count,
        stable,
        data: args.slice_ref(data),
    })
}

/// The mount a call is for: every procedure but NULL starts with a file handle, and the calls
/// that carry two (RENAME, LINK) are refused unless both are in one mount. `None` for the
/// export root and for bytes that are no handle of a mount. Whether the handle still names a
/// file is checked when the call resolves it.
fn addressed_mount<'a>(server: &'a Server, call: &Call, args: &[u8]) -> Option<&'a Mount> {
    if call.proc_ == 0 {
        return None;
    }
    let handle = rpc::Reader::new(args).opaque(NFS3_FHSIZE)?;
    server.gateway.mount_of_handle(handle)
}

/// Whether a reply reports a failure: not accepted as SUCCESS, or an NFS status other than
/// NFS3_OK (the word after the 24-byte accepted-reply header that follows the record mark).
fn failed(reply: &[u8]) -> bool {
    reply.get(24..28) != Some(&[0; 4]) || reply.get(28..32).is_some_and(|s| s != [0; 4])
}

/// Who a call's credentials say it comes from, before any squashing: AUTH_NULL is nobody.
fn claimed_caller(auth: &Auth) -> Caller {
    match auth {
        Auth::Null => Caller {
            uid: NOBODY,
            gid: NOBODY,
            gids: Vec::new(),
        },
        Auth::Unix { uid, gid, gids } => Caller {
            uid: *uid,
            gid: *gid,
            gids: gids.clone(),
        },
    }
}

pub async fn dispatch(
    server: &Server,
    call: &Call,
    args: &Bytes,
    buffers: &Arc<BufferPool>,
) -> Outgoing {
    let mount = addressed_mount(server, call, args);
    // The mount's squash options decide who the caller is, for every check and new file.
    let claimed = claimed_caller(&call.auth);
    let caller = match mount {
        Some(m) => m.squash.apply(claimed),
        None => claimed,
    };
    let handler = Handler {
        server,
        caller: &caller,
        client: call.client,
        port: call.port,
        xid: call.xid,
        mount,
        buffers,
    };
    let reply = match call.proc_ {
        // Lengths that overrun the record are refused before the decoder allocates them.
        _ if !super::bounds::nfs3(call.proc_, args) => Err(Garbage),
        0 => Ok(rpc::success(call.xid, &Void).into()),
        1 => handler.getattr(args).await,
        2 => handler.setattr(args).await,
        3 => handler.lookup(args).await,
        4 => handler.access(args).await,
        5 => handler.readlink(args).await,
        6 => handler.read(args).await,
        7 => handler.write(args).await,
        8 => handler.create(args).await,
        9 => handler.mkdir(args).await,
        10 => handler.symlink(args).await,
        11 => handler.mknod(args).await,
        12 => handler.remove(args, false).await,
        13 => handler.remove(args, true).await,
        14 => handler.rename(args).await,
        15 => handler.link(args).await,
        16 => handler.readdir(args).await,
        17 => handler.readdirplus(args).await,
        18 => handler.fsstat(args).await,
        19 => handler.fsinfo(args).await,
        20 => handler.pathconf(args).await,
        21 => handler.commit(args).await,
        _ => return rpc::accepted(call.xid, accept_stat_data::PROC_UNAVAIL).into(),
    };
    let reply = reply
        .unwrap_or_else(|Garbage| rpc::accepted(call.xid, accept_stat_data::GARBAGE_ARGS).into());
    if let Some(mount) = mount {
        mount.metrics.request(failed(&reply.head));
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        // The NFS status follows the 24-byte accepted-reply header (after the record mark).
        let status = reply
            .head
            .get(28..32)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
        tracing::debug!(
            xid = call.xid,
            proc = call.proc_,
            uid = caller.uid,
            ?status,
            "nfs3"
        );
    }
    reply
}

struct Handler<'a> {
    server: &'a Server,
    caller: &'a Caller,
    client: std::net::IpAddr,
    /// The call's source port, for mounts that take calls from privileged ports only.
    port: u16,
    xid: u32,
    /// The mount the call is for, when its first handle names one.
    mount: Option<&'a Mount>,
    /// The connection's buffers, for READ data.
    buffers: &'a Arc<BufferPool>,
}

/// An NFS result: the OK body, or a status with the failure body.
fn result<T: Pack, E: Pack>(r: Result<T, (nfsstat3, E)>) -> Nfs3Result<T, E> {
    match r {
        Ok(ok) => Nfs3Result::Ok(ok),
        Err(err) => Nfs3Result::Err(err),
    }
}

fn name_of(raw: &[u8]) -> Result<&str, nfsstat3> {
    std::str::from_utf8(raw).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

impl Handler<'_> {
    fn reply<T: Pack>(&self, body: &T) -> Reply {
        Ok(rpc::success(self.xid, body).into())
    }

    /// The file id of a handle, for a client the handle's mount allows.
    async fn id(&self, fh: &nfs_fh3) -> Result<FileId, nfsstat3> {
        let id = match self.server.gateway.resolve_handle(&fh.data).await {
            None => return Err(nfsstat3::NFS3ERR_BADHANDLE),
            Some(r) => r.map_err(status)?,
        };
        if !self.server.gateway.allows(id, self.client) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if !self.server.port_allows(id, self.client, self.port) {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        Ok(id)
    }

    fn handle(&self, id: FileId) -> nfs_fh3 {
        nfs_fh3 {
            data: Opaque::owned(self.server.gateway.handle(id)),
        }
    }

    async fn attrs(&self, id: FileId) -> Option<Attrs> {
        self.server.gateway.getattr(id).await.ok()
    }

    async fn post_op(&self, id: FileId) -> post_op_attr {
        post_op(id, self.attrs(id).await.as_ref())
    }

    /// Weak cache consistency data of a directory after a change.
    async fn dir_wcc(&self, dir: FileId) -> wcc_data {
        wcc_data {
            before: Nfs3Option::None,
            after: self.post_op(dir).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::files::granted_access;
    use super::*;
    use crate::backend::types::FileKind;

    fn caller(uid: u32, gid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gid,
            gids: gids.to_vec(),
        }
    }

    /// WRITE's data is a slice of the call's record, not a copy, and decodes as the XDR
    /// decoder would; data that claims more than the record holds is garbage.
    #[test]
    fn write_data_is_decoded_in_place() {
        let args = WRITE3args {
            file: nfs_fh3 {
                data: Opaque::owned(vec![9; 12]),
            },
            offset: (5 << 32) + 7,
            count: 1000,
            stable: stable_how::DATA_SYNC,
            data: Opaque::owned((0..1000u32).map(|i| i as u8).collect()),
        };
        let mut record = Vec::new();
        args.pack(&mut record).unwrap();
        let record = Bytes::from(record);
        let Ok(decoded) = decode_write(&record) else {
            panic!("a well-formed WRITE did not decode");
        };
        assert_eq!(decoded.file, args.file);
        assert_eq!(decoded.offset, args.offset);
        assert_eq!(decoded.count, 1000);
        assert_eq!(decoded.stable, stable_how::DATA_SYNC);
        assert_eq!(&decoded.data[..], &args.data[..]);
        let within = record.as_ptr_range();
        assert!(
            within.contains(&decoded.data.as_ptr()),
            "the data was copied"
        );
        let cut = record.slice(..record.len() - 8);
        assert!(decode_write(&cut).is_err());
    }

    #[test]
    fn access_follows_owner_group_and_other_bits() {
        let f = Attrs::for_test(FileKind::Regular, 0o640, 1000, 100);
        assert_eq!(
            granted_access(&f, &caller(1000, 1, &[]), true),
            ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND
        );
        assert_eq!(
            granted_access(&f, &caller(2000, 100, &[]), true),
            ACCESS3_READ
        );
        assert_eq!(
            granted_access(&f, &caller(2000, 5, &[100]), true),
            ACCESS3_READ
        );
        assert_eq!(granted_access(&f, &caller(2000, 5, &[]), true), 0);
    }

    #[test]
    fn root_may_not_execute_what_no_one_may() {
        let f = Attrs::for_test(FileKind::Regular, 0o644, 1000, 100);
        assert_eq!(
            granted_access(&f, &caller(0, 0, &[]), true) & ACCESS3_EXECUTE,
            0
        );
        let x = Attrs::for_test(FileKind::Regular, 0o100, 1000, 100);
        assert_ne!(
            granted_access(&x, &caller(0, 0, &[]), true) & ACCESS3_EXECUTE,
            0
        );
    }

    #[test]
    fn read_only_mounts_grant_no_changes() {
        let d = Attrs::for_test(FileKind::Directory, 0o777, 1000, 100);
        let granted = granted_access(&d, &caller(1000, 100, &[]), false);
        assert_eq!(granted, ACCESS3_READ | ACCESS3_LOOKUP);
    }
}
