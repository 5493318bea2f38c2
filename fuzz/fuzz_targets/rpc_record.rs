//! One ONC RPC record, as nfsgw reads it from a TCP connection, through the whole dispatcher:
//! the call header and credentials (`rpc`), then NFSv3 or MOUNT argument decoding and the
//! procedure itself, against a server with no mounts. Any record must be answered with its own
//! xid, or dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|record: &[u8]| {
    if let Some(reply) = nfsgw::nfs::answer_for_fuzzing(record) {
        // Replies start with a record mark, then echo the call's xid.
        assert_eq!(&reply[4..8], &record[..4]);
    }
});
