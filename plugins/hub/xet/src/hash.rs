//! Xet hashes: the 32-byte [`MerkleHash`] and its string form (four
//! little-endian 64-bit words in hex), chunk hashes (keyed BLAKE3 with the data
//! key), the content-defined aggregation tree (groups of 2..9 children, mean 4)
//! that yields xorb hashes and, keyed once more with a zero key, file hashes,
//! and the per-term range verification hash that shards carry.

use std::fmt;

use crate::FormatError;

const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];
const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];
const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];

/// Largest group the aggregation tree merges into one node.
const MAX_GROUP: usize = 9;

/// A 32-byte Xet hash, stored as raw bytes; [`MerkleHash::to_hex`] gives the
/// string form used in URLs, JSON and tree-node text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub struct MerkleHash(pub [u8; 32]);

impl MerkleHash {
    /// The all-zero hash (the file hash of an empty file).
    pub const ZERO: MerkleHash = MerkleHash([0; 32]);

    /// The Xet string form: each 8-byte word with its bytes reversed, in hex.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for word in self.0.chunks_exact(8) {
            for &b in word.iter().rev() {
                s.push(HEX[(b >> 4) as usize] as char);
                s.push(HEX[(b & 15) as usize] as char);
            }
        }
        s
    }

    /// Parses the string form (64 hex digits, either case).
    pub fn from_hex(s: &str) -> Result<MerkleHash, FormatError> {
        let text = s.as_bytes();
        if text.len() != 64 {
            return Err(FormatError::new(format!(
                "hash string must be 64 hex digits, got {} characters",
                text.len()
            )));
        }
        let nibble = |c: u8| -> Result<u8, FormatError> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(FormatError::new(format!("hash string {s:?} is not hex"))),
            }
        };
        let mut out = [0u8; 32];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
            // Byte i of the text sits in word i / 8, counted from that word's end.
            out[(i / 8) * 8 + 7 - i % 8] = byte;
        }
        Ok(MerkleHash(out))
    }

    /// The last 8 bytes as a little-endian integer (drives the tree's grouping).
    fn last_word(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[24..32]);
        u64::from_le_bytes(w)
    }
}

impl fmt::Display for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn keyed(key: &[u8; 32], data: &[u8]) -> MerkleHash {
    MerkleHash(*blake3::keyed_hash(key, data).as_bytes())
}

/// The hash of one chunk's uncompressed bytes.
pub fn chunk_hash(data: &[u8]) -> MerkleHash {
    keyed(&DATA_KEY, data)
}

/// How many of `level` (at least one entry) form the next group: up to and
/// including the first entry at index 2 or more whose last word is a multiple
/// of 4, else `MAX_GROUP` entries (or all when fewer); two or fewer are one group.
fn group_len(level: &[(MerkleHash, u64)]) -> usize {
    if level.len() <= 2 {
        return level.len();
    }
    let end = level.len().min(MAX_GROUP);
    (2..end)
        .find(|&i| level[i].0.last_word().is_multiple_of(4))
        .map_or(end, |i| i + 1)
}

fn merge(group: &[(MerkleHash, u64)]) -> (MerkleHash, u64) {
    let mut text = String::with_capacity(group.len() * 80);
    let mut total = 0u64;
    for (h, n) in group {
        text.push_str(&h.to_hex());
        text.push_str(" : ");
        text.push_str(&n.to_string());
        text.push('\n');
        total += n;
    }
    (keyed(&INTERNAL_NODE_KEY, text.as_bytes()), total)
}

/// The root of the aggregation tree over `(hash, size)` children: each level
/// is cut into content-defined groups (see `group_len`), each group becomes
/// one node hashed over its `"{hash} : {size}\n"` lines, until one remains.
/// A single child is its own root; no children give [`MerkleHash::ZERO`].
pub fn aggregated_hash(children: &[(MerkleHash, u64)]) -> MerkleHash {
    let mut level = children.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 3 + 1);
        let mut rest = &level[..];
        while !rest.is_empty() {
            let n = group_len(rest);
            next.push(merge(&rest[..n]));
            rest = &rest[n..];
        }
        level = next;
    }
    level.first().map_or(MerkleHash::ZERO, |c| c.0)
}

/// A xorb's hash: the aggregation root over its chunks.
pub fn xorb_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    aggregated_hash(chunks)
}

/// A file's Xet hash: the aggregation root over all its chunks, keyed once
/// more with an all-zero key; [`MerkleHash::ZERO`] for an empty file.
pub fn file_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    if chunks.is_empty() {
        return MerkleHash::ZERO;
    }
    keyed(&[0; 32], &aggregated_hash(chunks).0)
}

/// The verification hash of one file term: keyed BLAKE3 over the raw bytes
/// of the hashes of the xorb chunks the term covers, in order.
pub fn range_verification_hash(chunks: &[MerkleHash]) -> MerkleHash {
    let mut hasher = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for h in chunks {
        hasher.update(&h.0);
    }
    MerkleHash(*hasher.finalize().as_bytes())
}
