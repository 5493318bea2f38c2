//! Xorb building and decoding: round trips over all three schemes, limits,
//! and hostile input that must give errors, never panics.

use std::io::Write;

use super::vectors::*;
use super::{chunk_list, hashes};
use crate::chunking::Chunker;
use crate::xorb::*;

fn lz4(data: &[u8]) -> Vec<u8> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Byte grouping as a writer does it: byte i to group i % 4, groups concatenated.
fn bg4_split(data: &[u8]) -> Vec<u8> {
    (0..4)
        .flat_map(|g| data.iter().skip(g).step_by(4).copied())
        .collect()
}

fn header(stored: usize, scheme: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0u8];
    h.extend_from_slice(&(stored as u32).to_le_bytes()[..3]);
    h.push(scheme);
    h.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    h
}

fn chunk(scheme: u8, payload: &[u8], len: usize) -> Vec<u8> {
    let mut c = header(payload.len(), scheme, len);
    c.extend_from_slice(payload);
    c
}

fn cdc(data: &[u8]) -> Vec<Vec<u8>> {
    let mut c = Chunker::new();
    let mut out = c.push(data);
    out.extend(c.finish());
    out
}

/// (scheme, stored size) of each chunk header in a serialized xorb.
fn schemes(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let stored = u32::from_le_bytes([bytes[pos + 1], bytes[pos + 2], bytes[pos + 3], 0]);
        out.push((bytes[pos + 4], stored as usize));
        pos += 8 + stored as usize;
    }
    out
}

#[test]
fn built_xorbs_round_trip_and_hash_like_python() {
    for (data, sizes, chunk_strs, xorb_hex, scheme) in [
        (
            random_3mib(),
            RANDOM_3MIB_SIZES,
            RANDOM_3MIB_CHUNKS,
            RANDOM_3MIB_XORB,
            0,
        ),
        (
            text_1mib(),
            TEXT_1MIB_SIZES,
            TEXT_1MIB_CHUNKS,
            TEXT_1MIB_XORB,
            1,
        ),
    ] {
        let chunks = cdc(&data);
        let mut b = XorbBuilder::new();
        assert!(b.is_empty());
        for (i, c) in chunks.iter().enumerate() {
            assert!(b.fits(c.len()));
            assert_eq!(b.add(c), i as u32);
        }
        assert!(!b.is_empty());
        let x = b.finish();
        assert_eq!(x.hash.to_hex(), xorb_hex);
        assert_eq!(x.chunks, chunk_list(&data, sizes));
        assert_eq!(
            x.chunks.iter().map(|c| c.0).collect::<Vec<_>>(),
            hashes(chunk_strs)
        );
        // Random data is stored (LZ4 would grow it), text is LZ4-compressed.
        let found = schemes(&x.bytes);
        assert_eq!(found.len(), chunks.len());
        for ((s, stored), c) in found.iter().zip(&chunks) {
            assert_eq!(*s, scheme);
            if scheme == 0 {
                assert_eq!(*stored, c.len());
            } else {
                assert!(*stored < c.len());
            }
        }
        assert_eq!(decode_chunks(&x.bytes).unwrap(), chunks);
    }
}

#[test]
fn decodes_all_schemes_and_stops_at_a_footer() {
    let a = text_like(7, 1001);
    let b = splitmix_bytes(8, 333);
    let c = text_like(9, 4099);
    let mut bytes = chunk(2, &lz4(&bg4_split(&a)), a.len());
    bytes.extend(chunk(0, &b, b.len()));
    bytes.extend(chunk(1, &lz4(&c), c.len()));
    let chunks = vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(decode_chunks(&bytes).unwrap(), chunks);
    // BG4 really regroups: the grouped bytes themselves are not the data.
    assert_ne!(bg4_split(&a), a);
    bytes.extend_from_slice(b"XETBLOB\x01 footer follows");
    assert_eq!(decode_chunks(&bytes).unwrap(), chunks);
    // Every BG4 remainder (len % 4) regroups correctly.
    for n in 1..=9 {
        let d = splitmix_bytes(n as u64, n);
        assert_eq!(
            decode_chunks(&chunk(2, &lz4(&bg4_split(&d)), n)).unwrap(),
            [d]
        );
    }
}

#[test]
fn hostile_ranges_are_errors() {
    let data = text_like(1, 500);
    let good = chunk(1, &lz4(&data), data.len());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("footer only", b"XETBLOB".to_vec()),
        ("truncated header", good[..5].to_vec()),
        ("truncated payload", good[..good.len() - 1].to_vec()),
        ("bad scheme", chunk(3, &data, data.len())),
        ("stored size mismatch", chunk(0, &data, data.len() + 1)),
        ("zero length", chunk(0, &[], 0)),
        ("decodes shorter", chunk(1, &lz4(&data), data.len() + 1)),
        ("decodes longer", chunk(1, &lz4(&data), data.len() - 1)),
        ("bg4 decodes longer", chunk(2, &lz4(&data), 3)),
        ("not lz4", chunk(1, &data, data.len())),
        (
            "second chunk truncated",
            [good.clone(), good[..20].to_vec()].concat(),
        ),
        (
            "huge claimed length",
            chunk(1, &lz4(&vec![0u8; 1 << 20]), (1 << 24) - 1),
        ),
    ];
    for (name, bytes) in cases {
        assert!(decode_chunks(&bytes).is_err(), "{name} decoded");
    }
    assert_eq!(decode_chunks(&good).unwrap(), [data]);
}

#[test]
fn mangled_xorbs_never_panic() {
    let mut b = XorbBuilder::new();
    for c in cdc(&text_like(5, 40_000)) {
        b.add(&c);
    }
    b.add(&splitmix_bytes(6, 3000));
    let bytes = b.finish().bytes;
    for cut in (0..bytes.len()).step_by(97) {
        let _ = decode_chunks(&bytes[..cut]);
        let _ = decode_chunks(&bytes[cut..]);
    }
    let noise = splitmix_bytes(42, 4096);
    for (i, &n) in noise.iter().enumerate() {
        let mut m = bytes.clone();
        let at = (i * 7919) % m.len();
        m[at] ^= n | 1;
        let _ = decode_chunks(&m);
    }
}

#[test]
fn limits() {
    let b = XorbBuilder::new();
    assert!(b.fits(MAX_XORB_BYTES - 8));
    assert!(!b.fits(MAX_XORB_BYTES - 7));
    let mut b = XorbBuilder::new();
    for i in 0..MAX_XORB_CHUNKS {
        assert!(b.fits(1));
        assert_eq!(b.add(&[i as u8]), i as u32);
    }
    assert!(!b.fits(1));
    let x = b.finish();
    assert_eq!(x.chunks.len(), MAX_XORB_CHUNKS);
    assert_eq!(x.bytes.len(), 9 * MAX_XORB_CHUNKS);
}
