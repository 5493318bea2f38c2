//! One portmapper packet (a UDP datagram, or a TCP record), through the portmapper's parser
//! and answers for portmap v2 and rpcbind v3/v4.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfsgw::portmap::{Proto, Table};

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static TABLE: Table = Table::new(
            "127.0.0.1:2049".parse().unwrap(),
            "127.0.0.1:111".parse().unwrap(),
        );
    }
    let (proto, packet) = match data.split_first() {
        Some((first, rest)) if first & 1 == 0 => (Proto::Udp, rest),
        Some((_, rest)) => (Proto::Tcp, rest),
        None => return,
    };
    TABLE.with(|table| {
        if let Some(reply) = table.answer(packet, proto, "127.0.0.1".parse().unwrap()) {
            // Replies leave room for a record mark, then echo the call's xid.
            assert_eq!(&reply[4..8], &packet[..4]);
        }
    });
});
