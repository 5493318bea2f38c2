//! Call headers: the xid, program, version and procedure of a call, where it came from, and
//! the credentials it claims. A header is read by hand rather than by `nfs3_types`, so that a
//! call with a credential flavour nfsgw does not know still gets a proper rejection, and so
//! that no claimed length (a machine name, a group count) is allocated before it is checked.

use std::net::{IpAddr, SocketAddr};

use nfs3_types::rpc::{accept_stat_data, auth_stat};
use nfs3_types::xdr_codec::Pack;

use super::reply::{accepted, denied, pack_all};
use super::xdr::Reader;

pub(super) const RPC_VERSION: u32 = 2;
pub(super) const MSG_CALL: u32 = 0;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;
pub(super) const AUTH_NULL: u32 = 0;
pub(super) const AUTH_UNIX: u32 = 1;
/// Credentials are at most 400 bytes (RFC 5531).
pub const MAX_AUTH: usize = 400;
/// AUTH_UNIX machine names and group lists are at most this long (RFC 5531).
const MAX_MACHINE_NAME: usize = 255;
const MAX_GIDS: u32 = 16;

/// The credentials a call claims. Nothing here is verified: AUTH_UNIX is whatever the client
/// says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Null,
    Unix { uid: u32, gid: u32, gids: Vec<u32> },
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
    pub auth: Auth,
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

fn auth_from(flavor: u32, body: &[u8]) -> Option<Auth> {
    match flavor {
        AUTH_NULL => Some(Auth::Null),
        AUTH_UNIX => {
            let mut r = Reader::new(body);
            let _stamp = r.u32()?;
            r.opaque(MAX_MACHINE_NAME)?;
            let (uid, gid) = (r.u32()?, r.u32()?);
            let count = r.u32()?;
            if count > MAX_GIDS {
                return None;
            }
            let gids = (0..count).map(|_| r.u32()).collect::<Option<Vec<u32>>>()?;
            Some(Auth::Unix { uid, gid, gids })
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
        let auth = auth_from(flavor, body);
        let _verf_flavor = r.u32()?;
        r.opaque(MAX_AUTH)?;
        Some((prog, vers, proc_, auth))
    })();
    match header {
        None => Incoming::Reject(accepted(xid, accept_stat_data::GARBAGE_ARGS)),
        Some((_, _, _, None)) => Incoming::Reject(denied(xid, |out| {
            pack_all(out, &[AUTH_ERROR]);
            auth_stat::AUTH_BADCRED.pack(out).expect("writing to a Vec");
        })),
        Some((prog, vers, proc_, Some(auth))) => Incoming::Call(Call {
            client: peer.ip(),
            port: peer.port(),
            xid,
            prog,
            vers,
            proc_,
            auth,
            args: r.position(),
        }),
    }
}

/// Test helpers that build calls: used by this module's tests and by the record reader's.
#[cfg(test)]
pub(crate) mod build {
    use super::super::reply::pack_all;
    use super::{AUTH_NULL, MSG_CALL};

    /// A call to NFSv3 GETATTR with credentials `cred` of `flavor`, and a four-byte argument.
    pub fn call(rpcvers: u32, flavor: u32, cred: &[u8]) -> Vec<u8> {
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

    /// An AUTH_UNIX credential body from machine "host".
    pub fn unix_cred(uid: u32, gid: u32, gids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        pack_all(&mut out, &[1, 4]);
        out.extend_from_slice(b"host");
        pack_all(&mut out, &[uid, gid, gids.len() as u32]);
        pack_all(&mut out, gids);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{call, unix_cred};
    use super::*;
    use crate::rpc::reply::MSG_DENIED;
    use std::net::Ipv4Addr;

    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 700);

    #[test]
    fn auth_unix_calls_carry_the_credentials_and_the_args_offset() {
        let record = call(2, AUTH_UNIX, &unix_cred(1000, 100, &[4, 27]));
        let Incoming::Call(c) = parse_call(&record, LOCAL) else {
            panic!("not a call")
        };
        assert_eq!((c.xid, c.prog, c.vers, c.proc_), (7, 100003, 3, 1));
        assert_eq!(
            c.auth,
            Auth::Unix {
                uid: 1000,
                gid: 100,
                gids: vec![4, 27]
            }
        );
        assert_eq!(&record[c.args..], &0xdead_beef_u32.to_be_bytes());
    }

    #[test]
    fn null_auth_is_null_and_unknown_flavours_are_refused() {
        let Incoming::Call(c) = parse_call(&call(2, AUTH_NULL, &[]), LOCAL) else {
            panic!("not a call")
        };
        assert_eq!(c.auth, Auth::Null);
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
}
