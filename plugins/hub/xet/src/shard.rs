//! MDB v2 shards as uploaded to `/v1/shards` or `/v2/shards`: a 48-byte
//! header (tag, version 2, footer size 0), the file-info section (per file: a
//! header, its terms, one range verification hash per term, optionally the
//! sha256 extension) closed by a bookend, then the CAS-info section (per
//! xorb: a header and one entry per chunk) closed by a bookend. All integers
//! little-endian, every record 48 bytes; no footer on upload.

use crate::hash::MerkleHash;
use crate::xorb::Xorb;

/// `HFRepoMetaData`, a zero byte and 17 fixed bytes: the MDB shard magic.
pub const SHARD_TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105,
    103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
];
/// File flag: a verification entry follows the terms, one per term.
pub const FLAG_VERIFICATION: u32 = 1 << 31;
/// File flag: a metadata extension (sha256) follows.
pub const FLAG_METADATA_EXT: u32 = 1 << 30;

/// One term of a file: chunks `chunk_start..chunk_end` of `xorb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSegment {
    pub xorb: MerkleHash,
    pub chunk_start: u32,
    /// Exclusive.
    pub chunk_end: u32,
    /// Uncompressed bytes of those chunks.
    pub unpacked: u32,
    /// [`crate::hash::range_verification_hash`] of those chunks' hashes.
    pub verification: MerkleHash,
}

struct FileEntry {
    hash: MerkleHash,
    segments: Vec<FileSegment>,
    sha256: Option<[u8; 32]>,
}

struct CasEntry {
    hash: MerkleHash,
    chunks: Vec<(MerkleHash, u64)>,
    serialized: u32,
}

/// Collects files and xorbs, then serializes the shard.
#[derive(Default)]
pub struct ShardBuilder {
    files: Vec<FileEntry>,
    xorbs: Vec<CasEntry>,
}

impl ShardBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists a file by its Xet hash and terms; `sha256` (the plain digest of
    /// the file's bytes, for repo commits) is stored in the hash word order,
    /// so that its string form is the usual sha256 hex.
    pub fn add_file(
        &mut self,
        file_hash: MerkleHash,
        segments: &[FileSegment],
        sha256: Option<[u8; 32]>,
    ) {
        self.files.push(FileEntry {
            hash: file_hash,
            segments: segments.to_vec(),
            sha256,
        });
    }

    /// Lists a xorb's chunks (hashes, sizes and unpacked offsets).
    pub fn add_xorb(&mut self, xorb: &Xorb) {
        self.xorbs.push(CasEntry {
            hash: xorb.hash,
            chunks: xorb.chunks.clone(),
            serialized: xorb.bytes.len() as u32,
        });
    }

    /// The serialized shard (no footer).
    pub fn to_bytes(&self) -> Vec<u8> {
        let records = 2
            + self
                .files
                .iter()
                .map(|f| 1 + 2 * f.segments.len() + usize::from(f.sha256.is_some()))
                .sum::<usize>()
            + self.xorbs.iter().map(|x| 1 + x.chunks.len()).sum::<usize>();
        let mut out = Vec::with_capacity(48 * (records + 1));
        out.extend_from_slice(&SHARD_TAG);
        out.extend_from_slice(&2u64.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());

        for f in &self.files {
            let mut flags = FLAG_VERIFICATION;
            if f.sha256.is_some() {
                flags |= FLAG_METADATA_EXT;
            }
            record(&mut out, &f.hash.0, &[flags, f.segments.len() as u32, 0, 0]);
            for s in &f.segments {
                record(
                    &mut out,
                    &s.xorb.0,
                    &[0, s.unpacked, s.chunk_start, s.chunk_end],
                );
            }
            for s in &f.segments {
                record(&mut out, &s.verification.0, &[0; 4]);
            }
            if let Some(sha) = f.sha256 {
                let mut stored = sha;
                for word in stored.chunks_exact_mut(8) {
                    word.reverse();
                }
                record(&mut out, &stored, &[0; 4]);
            }
        }
        record(&mut out, &[0xFF; 32], &[0; 4]);

        for x in &self.xorbs {
            let unpacked: u64 = x.chunks.iter().map(|c| c.1).sum();
            record(
                &mut out,
                &x.hash.0,
                &[0, x.chunks.len() as u32, unpacked as u32, x.serialized],
            );
            let mut offset = 0u64;
            for (h, len) in &x.chunks {
                record(&mut out, &h.0, &[offset as u32, *len as u32, 0, 0]);
                offset += len;
            }
        }
        record(&mut out, &[0xFF; 32], &[0; 4]);
        out
    }
}

/// Appends one 48-byte record: a hash and four u32 fields.
fn record(out: &mut Vec<u8>, hash: &[u8; 32], fields: &[u32; 4]) {
    out.extend_from_slice(hash);
    for f in fields {
        out.extend_from_slice(&f.to_le_bytes());
    }
}
