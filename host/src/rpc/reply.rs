//! Reply headers: accepted replies (a result, or why there is none), denied ones (an RPC
//! version mismatch, refused credentials), and the record mark of a finished reply. Replies
//! start with room for their record mark, so sealing one copies nothing.

use nfs3_types::rpc::accept_stat_data;
use nfs3_types::xdr_codec::Pack;

use super::call::AUTH_NULL;
use super::record::LAST_FRAGMENT;

const MSG_REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
pub(super) const MSG_DENIED: u32 = 1;

pub(super) fn pack_all(out: &mut Vec<u8>, words: &[u32]) {
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

/// A denied reply; `body` writes why.
pub(super) fn denied(xid: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_replies_carry_their_length() {
        let reply = seal(accepted(5, accept_stat_data::PROC_UNAVAIL));
        let mark = u32::from_be_bytes(reply[..4].try_into().unwrap());
        assert_eq!(mark, LAST_FRAGMENT | (reply.len() as u32 - 4));
        assert_eq!(
            &reply[4..8],
            &5u32.to_be_bytes(),
            "the xid follows the mark"
        );
    }
}
