//! Hash string form and the hash functions against the Python vectors.

use super::vectors::*;
use super::{chunk_list, hashes};
use crate::hash::*;

#[test]
fn string_form_reverses_each_word() {
    // §4.1 by hand: bytes 0..=31; each 8-byte word printed as a little-endian u64.
    let raw: [u8; 32] = std::array::from_fn(|i| i as u8);
    let h = MerkleHash(raw);
    let want = "0706050403020100\
                0f0e0d0c0b0a0908\
                1716151413121110\
                1f1e1d1c1b1a1918";
    assert_eq!(h.to_hex(), want);
    assert_eq!(h.to_string(), want);
    assert_eq!(MerkleHash::from_hex(want).unwrap(), h);
    assert_eq!(MerkleHash::from_hex(&want.to_uppercase()).unwrap(), h);
    assert_eq!(MerkleHash::ZERO.to_hex(), "0".repeat(64));
}

#[test]
fn string_form_round_trips() {
    for seed in 0..50u64 {
        let bytes = splitmix_bytes(seed, 32);
        let h = MerkleHash(bytes.try_into().unwrap());
        assert_eq!(MerkleHash::from_hex(&h.to_hex()).unwrap(), h);
    }
}

#[test]
fn bad_strings_are_errors() {
    let good = "ab".repeat(32);
    for bad in [
        String::new(),
        good[..63].to_string(),
        format!("{good}0"),
        format!("{}g", &good[..63]),
        format!("{} ", &good[..63]),
        // 64 bytes, but not 64 hex digits.
        format!("{}é", &good[..62]),
    ] {
        assert!(MerkleHash::from_hex(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn chunk_xorb_file_and_verification_hashes_match_vectors() {
    type Case = (
        Vec<u8>,
        &'static [u64],
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            random_100(),
            RANDOM_100_SIZES,
            RANDOM_100_CHUNKS,
            RANDOM_100_XORB,
            RANDOM_100_FILE,
            RANDOM_100_VERIFY,
        ),
        (
            random_3mib(),
            RANDOM_3MIB_SIZES,
            RANDOM_3MIB_CHUNKS,
            RANDOM_3MIB_XORB,
            RANDOM_3MIB_FILE,
            RANDOM_3MIB_VERIFY,
        ),
        (
            text_1mib(),
            TEXT_1MIB_SIZES,
            TEXT_1MIB_CHUNKS,
            TEXT_1MIB_XORB,
            TEXT_1MIB_FILE,
            TEXT_1MIB_VERIFY,
        ),
    ];
    for (data, sizes, chunk_strs, xorb, file, verify) in cases {
        let chunks = chunk_list(&data, sizes);
        let want = hashes(chunk_strs);
        let got: Vec<MerkleHash> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(got, want);
        assert_eq!(xorb_hash(&chunks).to_hex(), xorb);
        assert_eq!(file_hash(&chunks).to_hex(), file);
        assert_eq!(range_verification_hash(&want).to_hex(), verify);
    }
}

#[test]
fn degenerate_trees() {
    assert_eq!(aggregated_hash(&[]), MerkleHash::ZERO);
    assert_eq!(file_hash(&[]), MerkleHash::ZERO);
    let one = (chunk_hash(b"x"), 1);
    // A single child is its own root, but the file hash still keys it once more.
    assert_eq!(aggregated_hash(&[one]), one.0);
    assert_ne!(file_hash(&[one]), one.0);
    // Sizes take part in node text, so the same hashes with other sizes differ.
    let two = (chunk_hash(b"y"), 1);
    assert_ne!(
        aggregated_hash(&[one, two]),
        aggregated_hash(&[one, (two.0, 2)])
    );
}
