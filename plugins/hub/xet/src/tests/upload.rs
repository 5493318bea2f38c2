//! Streaming upload: file hash and xorbs match the vectors however the bytes
//! arrive, xorbs split at the limits, and the shard lists them in order.

use super::vectors::*;
use crate::hash::{file_hash, MerkleHash};
use crate::upload::{FileUploader, UploadedFile};
use crate::xorb::{decode_chunks, Xorb, MAX_XORB_BYTES};

fn upload(data: &[u8], piece: usize) -> (Vec<Xorb>, UploadedFile) {
    let mut up = FileUploader::new();
    let mut xorbs = Vec::new();
    for p in data.chunks(piece.max(1)) {
        xorbs.extend(up.push(p));
    }
    let (rest, file) = up.finish();
    xorbs.extend(rest);
    (xorbs, file)
}

#[test]
fn file_hash_and_xorb_match_vectors() {
    for (data, xorb, file) in [
        (random_100(), RANDOM_100_XORB, RANDOM_100_FILE),
        (random_3mib(), RANDOM_3MIB_XORB, RANDOM_3MIB_FILE),
        (text_1mib(), TEXT_1MIB_XORB, TEXT_1MIB_FILE),
    ] {
        for piece in [data.len(), 65_537, 4095] {
            let (xorbs, up) = upload(&data, piece);
            assert_eq!(xorbs.len(), 1);
            assert_eq!(xorbs[0].hash.to_hex(), xorb);
            assert_eq!(up.file_hash.to_hex(), file);
            assert_eq!(up.size, data.len() as u64);
            assert_eq!(decode_chunks(&xorbs[0].bytes).unwrap().concat(), data);
        }
    }
}

#[test]
fn empty_file() {
    let (xorbs, up) = upload(&[], 1);
    assert!(xorbs.is_empty());
    assert_eq!((up.file_hash, up.size), (MerkleHash::ZERO, 0));
    // Header, one file record with no terms, two bookends.
    assert_eq!(up.shard.len(), 4 * 48);
}

#[test]
fn big_file_spans_several_xorbs() {
    // Random data is stored uncompressed, so 70 MiB cannot fit one xorb.
    let data = random_70mib();
    let mut up = FileUploader::new();
    let mut xorbs = Vec::new();
    for p in data.chunks(1 << 20) {
        let ready = up.push(p);
        // A full xorb is handed out as soon as the next chunk does not fit.
        assert!(ready.len() <= 1);
        xorbs.extend(ready);
    }
    assert_eq!(xorbs.len(), 1, "first xorb not handed out before finish");
    let (rest, file) = up.finish();
    xorbs.extend(rest);
    assert_eq!(xorbs.len(), 2);
    assert!(xorbs[0].bytes.len() <= MAX_XORB_BYTES);
    assert!(xorbs[0].bytes.len() > MAX_XORB_BYTES - 8 - (128 << 10));
    let all: Vec<(MerkleHash, u64)> = xorbs.iter().flat_map(|x| x.chunks.clone()).collect();
    assert_eq!(file.file_hash, file_hash(&all));
    assert_eq!(file.file_hash.to_hex(), RANDOM_70MIB_FILE);
    let back: Vec<u8> = xorbs
        .iter()
        .flat_map(|x| decode_chunks(&x.bytes).unwrap().concat())
        .collect();
    assert!(back == data);
    // The shard: one file with one term per xorb, then both CAS blocks, in order.
    let s = &file.shard;
    let term = |i: usize| &s[48 * (2 + i)..48 * (3 + i)];
    assert_eq!(
        u32::from_le_bytes(s[48 + 36..48 + 40].try_into().unwrap()),
        2
    );
    for (i, x) in xorbs.iter().enumerate() {
        assert_eq!(&term(i)[..32], &x.hash.0);
        let end = u32::from_le_bytes(term(i)[44..48].try_into().unwrap());
        assert_eq!(end as usize, x.chunks.len());
    }
    let cas = 48 * (1 + 1 + 2 + 2 + 1);
    assert_eq!(&s[cas..cas + 32], &xorbs[0].hash.0);
    let cas2 = cas + 48 * (1 + xorbs[0].chunks.len());
    assert_eq!(&s[cas2..cas2 + 32], &xorbs[1].hash.0);
}

/// Writes xorbs and shards for `tests/check_shard.py` (which feeds them to
/// the test server's CAS store) when `NFSGW_XET_DUMP` names a directory.
#[test]
fn dump_for_python_check() {
    let Some(dir) = std::env::var_os("NFSGW_XET_DUMP") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for (name, data) in [
        ("random_3mib", random_3mib()),
        ("text_1mib", text_1mib()),
        ("random_100", random_100()),
        ("random_70mib", random_70mib()),
    ] {
        let (xorbs, file) = upload(&data, 1 << 20);
        for x in &xorbs {
            std::fs::write(dir.join(format!("{name}.xorb.{}", x.hash)), &x.bytes).unwrap();
        }
        std::fs::write(
            dir.join(format!("{name}.shard.{}", file.file_hash)),
            &file.shard,
        )
        .unwrap();
    }
}
