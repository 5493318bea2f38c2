//! Shards: re-parsed structurally (header, records, flags, bookends, CAS
//! blocks) with the verification hashes and sha256 word order checked.

use super::vectors::*;
use crate::hash::{range_verification_hash, MerkleHash};
use crate::shard::*;
use crate::upload::FileUploader;
use crate::xorb::Xorb;

/// One 48-byte record: hash and four u32 fields.
fn rec(b: &[u8], i: usize) -> (MerkleHash, [u32; 4]) {
    let r = &b[48 * i..48 * (i + 1)];
    let f = |k: usize| u32::from_le_bytes(r[32 + 4 * k..36 + 4 * k].try_into().unwrap());
    (
        MerkleHash(r[..32].try_into().unwrap()),
        [f(0), f(1), f(2), f(3)],
    )
}

const BOOKEND: MerkleHash = MerkleHash([0xFF; 32]);

/// A CAS block: header record and one record per chunk.
type Block = (MerkleHash, [u32; 4], Vec<(MerkleHash, [u32; 4])>);

struct ParsedFile {
    hash: MerkleHash,
    flags: u32,
    segments: Vec<FileSegment>,
    sha256: Option<MerkleHash>,
}

/// Parses a shard built here; panics on anything unexpected.
fn parse(b: &[u8]) -> (Vec<ParsedFile>, Vec<Block>) {
    assert_eq!(b.len() % 48, 0);
    assert_eq!(&b[..32], &SHARD_TAG);
    assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 2);
    assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 0);
    let mut i = 1;
    let mut files = Vec::new();
    loop {
        let (hash, [flags, n, r0, r1]) = rec(b, i);
        i += 1;
        if hash == BOOKEND {
            assert_eq!([flags, n, r0, r1], [0; 4]);
            break;
        }
        assert_eq!([r0, r1], [0, 0]);
        let n = n as usize;
        let mut segments: Vec<FileSegment> = (0..n)
            .map(|k| {
                let (xorb, [cas_flags, unpacked, chunk_start, chunk_end]) = rec(b, i + k);
                assert_eq!(cas_flags, 0);
                FileSegment {
                    xorb,
                    chunk_start,
                    chunk_end,
                    unpacked,
                    verification: MerkleHash::ZERO,
                }
            })
            .collect();
        i += n;
        assert_ne!(flags & FLAG_VERIFICATION, 0);
        for s in segments.iter_mut() {
            let (v, rest) = rec(b, i);
            assert_eq!(rest, [0; 4]);
            s.verification = v;
            i += 1;
        }
        let sha256 = (flags & FLAG_METADATA_EXT != 0).then(|| {
            let (h, rest) = rec(b, i);
            assert_eq!(rest, [0; 4]);
            i += 1;
            h
        });
        files.push(ParsedFile {
            hash,
            flags,
            segments,
            sha256,
        });
    }
    let mut xorbs = Vec::new();
    loop {
        let (hash, fields) = rec(b, i);
        i += 1;
        if hash == BOOKEND {
            assert_eq!(fields, [0; 4]);
            break;
        }
        let n = fields[1] as usize;
        let chunks = (0..n).map(|k| rec(b, i + k)).collect();
        i += n;
        xorbs.push((hash, fields, chunks));
    }
    assert_eq!(48 * i, b.len(), "bytes after the CAS bookend");
    (files, xorbs)
}

fn check_xorb_block(x: &Xorb, block: &Block) {
    let (hash, [flags, n, unpacked, serialized], chunks) = block;
    assert_eq!(*hash, x.hash);
    assert_eq!(*flags, 0);
    assert_eq!(*n as usize, x.chunks.len());
    assert_eq!(*unpacked as u64, x.chunks.iter().map(|c| c.1).sum::<u64>());
    assert_eq!(*serialized as usize, x.bytes.len());
    let mut offset = 0;
    for ((h, [off, len, r0, r1]), (ch, clen)) in chunks.iter().zip(&x.chunks) {
        assert_eq!(
            (h, *off as u64, *len as u64, *r0, *r1),
            (ch, offset, *clen, 0, 0)
        );
        offset += clen;
    }
}

#[test]
fn uploaded_file_shard_parses_and_verifies() {
    let data = random_3mib();
    let mut up = FileUploader::new();
    let mut xorbs = up.push(&data);
    let (rest, file) = up.finish();
    xorbs.extend(rest);
    assert_eq!(xorbs.len(), 1);
    let (files, blocks) = parse(&file.shard);
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.hash.to_hex(), RANDOM_3MIB_FILE);
    assert_eq!(f.flags, FLAG_VERIFICATION);
    assert!(f.sha256.is_none());
    assert_eq!(f.segments.len(), 1);
    let s = &f.segments[0];
    assert_eq!(
        (s.xorb, s.chunk_start, s.chunk_end),
        (xorbs[0].hash, 0, RANDOM_3MIB_SIZES.len() as u32)
    );
    assert_eq!(s.unpacked as usize, data.len());
    assert_eq!(s.verification.to_hex(), RANDOM_3MIB_VERIFY);
    assert_eq!(blocks.len(), 1);
    check_xorb_block(&xorbs[0], &blocks[0]);
}

#[test]
fn several_files_terms_and_sha256() {
    let mut xorbs = Vec::new();
    for data in [text_1mib(), random_100()] {
        let mut up = FileUploader::new();
        up.push(&data);
        xorbs.extend(up.finish().0);
    }
    let (t, r) = (&xorbs[0], &xorbs[1]);
    let term = |x: &Xorb, a: usize, b: usize| {
        let hs: Vec<MerkleHash> = x.chunks[a..b].iter().map(|c| c.0).collect();
        FileSegment {
            xorb: x.hash,
            chunk_start: a as u32,
            chunk_end: b as u32,
            unpacked: x.chunks[a..b].iter().map(|c| c.1).sum::<u64>() as u32,
            verification: range_verification_hash(&hs),
        }
    };
    let segs = [term(t, 2, 5), term(r, 0, 1), term(t, 9, 14)];
    // sha256 of the empty string, as plain digest bytes.
    let sha_hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let sha: [u8; 32] =
        std::array::from_fn(|i| u8::from_str_radix(&sha_hex[2 * i..2 * i + 2], 16).unwrap());
    let fh = MerkleHash([7; 32]);
    let mut b = ShardBuilder::new();
    b.add_file(fh, &segs, Some(sha));
    b.add_file(MerkleHash::ZERO, &[], None);
    b.add_xorb(t);
    b.add_xorb(r);
    let bytes = b.to_bytes();
    // header + (1 + 3 + 3 + 1) + 1 + bookend + (1 + 14) + (1 + 1) + bookend
    assert_eq!(bytes.len(), 48 * (1 + 8 + 1 + 1 + 15 + 2 + 1));
    let (files, blocks) = parse(&bytes);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].hash, fh);
    assert_eq!(files[0].flags, FLAG_VERIFICATION | FLAG_METADATA_EXT);
    assert_eq!(files[0].segments, segs);
    // Stored in the hash word order: its string form is the usual hex.
    assert_eq!(files[0].sha256.unwrap().to_hex(), sha_hex);
    assert_eq!(
        &files[0].sha256.unwrap().0[..8],
        &[0x14, 0x1c, 0xfc, 0x98, 0x42, 0xc4, 0xb0, 0xe3]
    );
    for s in &files[0].segments {
        let x = if s.xorb == t.hash { t } else { r };
        let hs: Vec<MerkleHash> = x.chunks[s.chunk_start as usize..s.chunk_end as usize]
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(s.verification, range_verification_hash(&hs));
    }
    assert_eq!(
        (files[1].hash, files[1].segments.len()),
        (MerkleHash::ZERO, 0)
    );
    assert_eq!(blocks.len(), 2);
    check_xorb_block(t, &blocks[0]);
    check_xorb_block(r, &blocks[1]);
}
