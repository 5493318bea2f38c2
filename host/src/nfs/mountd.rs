//! The MOUNT v3 program (RFC 1813 appendix I): hands out the root handles of the export root
//! and of each mount (or a directory inside one), and lists the exports.

use nfs3_types::mount::{
    dirpath, export_node, fhandle3, mountres3, mountres3_ok, mountstat3, name,
};
use nfs3_types::rpc::accept_stat_data;
use nfs3_types::xdr_codec::{List, Opaque, Void};

use super::Server;
use crate::backend::types::Error;
use crate::rpc::{self, Call};

pub const PROGRAM: u32 = 100005;
pub const VERSION: u32 = 3;
const AUTH_UNIX: u32 = 1;
const AUTH_NULL: u32 = 0;
/// Procedure names by number, for metrics.
pub const PROCEDURES: [&str; 6] = ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"];

pub async fn dispatch(server: &Server, call: &Call, args: &[u8]) -> Vec<u8> {
    let xid = call.xid;
    match call.proc_ {
        0 => rpc::success(xid, &Void),
        1 if !super::bounds::mount(call.proc_, args) => {
            rpc::accepted(xid, accept_stat_data::GARBAGE_ARGS)
        }
        1 => match rpc::args::<dirpath<'static>>(args) {
            Some(path) => rpc::success(xid, &mnt(server, call, &path.0).await),
            None => rpc::accepted(xid, accept_stat_data::GARBAGE_ARGS),
        },
        // DUMP: nfsgw keeps no list of clients.
        2 => rpc::success(xid, &List::<nfs3_types::mount::mountbody>::default()),
        // UMNT, UMNTALL: nothing to forget; the reply is void.
        3 | 4 => rpc::success(xid, &Void),
        5 => {
            let mut dirs = vec!["/".to_string()];
            dirs.extend(
                server
                    .gateway
                    .mounts()
                    .iter()
                    .map(|m| format!("/{}", m.name)),
            );
            let nodes = dirs
                .into_iter()
                .map(|d| export_node {
                    ex_dir: dirpath(Opaque::owned(d.into_bytes())),
                    ex_groups: List::<name>::default(),
                })
                .collect();
            rpc::success(xid, &List(nodes))
        }
        _ => rpc::accepted(xid, accept_stat_data::PROC_UNAVAIL),
    }
}

/// MNT: the handle of an export path. The client is checked against the mount the path names
/// (its first part; the export root for "/") before the rest of the path is looked at, so a
/// client the mount does not allow learns nothing of what exists inside it.
async fn mnt(server: &Server, call: &Call, path: &[u8]) -> mountres3<'static> {
    let Ok(path) = std::str::from_utf8(path) else {
        return mountres3::Err(mountstat3::MNT3ERR_INVAL);
    };
    let client = call.client;
    let (top, _) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    let resolved = match server.resolve_path(top).await {
        Ok(id) if !server.gateway.allows(id, client) => {
            tracing::warn!(%client, path, "MNT refused: the client is not in the mount's allow list");
            return mountres3::Err(mountstat3::MNT3ERR_ACCES);
        }
        Ok(id) if !server.port_allows(id, client, call.port) => {
            tracing::warn!(%client, port = call.port, path, "MNT refused: the mount is `secure` and the call came from an unprivileged port");
            return mountres3::Err(mountstat3::MNT3ERR_ACCES);
        }
        Ok(_) => server.resolve_path(path).await,
        Err(e) => Err(e),
    };
    match resolved {
        Ok(id) => mountres3::Ok(mountres3_ok {
            fhandle: fhandle3(Opaque::owned(server.gateway.handle(id))),
            auth_flavors: vec![AUTH_UNIX, AUTH_NULL],
        }),
        Err(Error::NotFound) => mountres3::Err(mountstat3::MNT3ERR_NOENT),
        Err(Error::NotDir) => mountres3::Err(mountstat3::MNT3ERR_NOTDIR),
        Err(Error::Access) => mountres3::Err(mountstat3::MNT3ERR_ACCES),
        Err(Error::NameTooLong) => mountres3::Err(mountstat3::MNT3ERR_NAMETOOLONG),
        Err(_) => mountres3::Err(mountstat3::MNT3ERR_IO),
    }
}
