//! Native unit tests of every module, grouped by topic, plus the
//! cross-checked vectors they share.

mod chunking;
mod hash;
mod reconstruction;
mod shard;
mod upload;
mod vectors;
mod xorb;

use crate::hash::{chunk_hash, MerkleHash};

/// Parses a list of hash strings from the vectors.
fn hashes(list: &[&str]) -> Vec<MerkleHash> {
    list.iter()
        .map(|s| MerkleHash::from_hex(s).unwrap())
        .collect()
}

/// Cuts `data` at the given sizes and hashes each piece.
fn chunk_list(data: &[u8], sizes: &[u64]) -> Vec<(MerkleHash, u64)> {
    let mut pos = 0;
    sizes
        .iter()
        .map(|&n| {
            let piece = &data[pos..pos + n as usize];
            pos += n as usize;
            (chunk_hash(piece), n)
        })
        .collect()
}
