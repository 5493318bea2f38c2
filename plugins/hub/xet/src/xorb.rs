//! Xorbs: the CAS storage objects, a concatenation of chunks each written as
//! an 8-byte header (`version 0 | compressed size u24 LE | scheme | uncompressed
//! size u24 LE`) plus payload. Schemes: 0 stored, 1 LZ4 frame, 2 byte-grouped
//! (BG4) then LZ4 frame. This module owns building xorbs for upload (LZ4 only
//! where it shrinks a chunk, ≤ 64 MiB and ≤ 8192 chunks each) and decoding
//! fetched chunk ranges, which may be followed by a footer.

use std::io::{Read, Write};

use crate::hash::{chunk_hash, xorb_hash, MerkleHash};
use crate::FormatError;

/// Largest serialized xorb the CAS accepts.
pub const MAX_XORB_BYTES: usize = 64 << 20;
/// Most chunks one xorb may hold.
pub const MAX_XORB_CHUNKS: usize = 8192;

const HEADER_LEN: usize = 8;
const SCHEME_NONE: u8 = 0;
const SCHEME_LZ4: u8 = 1;
const SCHEME_BG4_LZ4: u8 = 2;
/// Sizes in a chunk header are 24-bit.
const MAX_FIELD: usize = (1 << 24) - 1;

/// One chunk as found in a serialized xorb, not yet decoded.
struct RawChunk<'a> {
    scheme: u8,
    payload: &'a [u8],
    len: usize,
}

/// Walks the chunk headers of `bytes`, yielding each chunk until the end or a
/// byte that does not start a version-0 header (a footer).
struct RawChunks<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for RawChunks<'a> {
    type Item = Result<RawChunk<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.first().is_none_or(|&v| v != 0) {
            return None;
        }
        let at = self.offset;
        let fail = |msg: String| Some(Err(FormatError::new(format!("chunk at byte {at}: {msg}"))));
        if self.rest.len() < HEADER_LEN {
            let have = self.rest.len();
            self.rest = &[];
            return fail(format!("truncated header ({have} bytes)"));
        }
        let h = &self.rest[..HEADER_LEN];
        let stored = u24(&h[1..4]);
        let scheme = h[4];
        let len = u24(&h[5..8]);
        let end = HEADER_LEN + stored;
        let err = if scheme > SCHEME_BG4_LZ4 {
            Some(format!("unknown compression scheme {scheme}"))
        } else if len == 0 {
            Some("empty chunk".to_string())
        } else if scheme == SCHEME_NONE && stored != len {
            Some(format!("stored chunk of {stored} bytes claims {len}"))
        } else if end > self.rest.len() {
            Some(format!(
                "payload of {stored} bytes runs past the {} available",
                self.rest.len() - HEADER_LEN
            ))
        } else {
            None
        };
        if let Some(msg) = err {
            self.rest = &[];
            return fail(msg);
        }
        let payload = &self.rest[HEADER_LEN..end];
        self.rest = &self.rest[end..];
        self.offset += end;
        Some(Ok(RawChunk {
            scheme,
            payload,
            len,
        }))
    }
}

fn u24(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

fn lz4_decode(payload: &[u8], len: usize) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(len);
    // Reading one byte past the stated length bounds memory on hostile frames
    // and still detects frames that decode to more.
    lz4_flex::frame::FrameDecoder::new(payload)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| FormatError::new(format!("bad LZ4 frame: {e}")))?;
    Ok(out)
}

/// Undoes byte grouping: `data` holds 4 groups, byte `i` of the original
/// having gone to group `i % 4` (the first `len % 4` groups one byte longer).
fn bg4_regroup(data: &[u8]) -> Vec<u8> {
    let n = data.len();
    let mut out = vec![0u8; n];
    let mut pos = 0;
    for g in 0..4 {
        let size = n / 4 + usize::from(g < n % 4);
        for (k, &b) in data[pos..pos + size].iter().enumerate() {
            out[g + 4 * k] = b;
        }
        pos += size;
    }
    out
}

impl RawChunk<'_> {
    fn decode(&self) -> Result<Vec<u8>, FormatError> {
        let data = match self.scheme {
            SCHEME_NONE => self.payload.to_vec(),
            SCHEME_LZ4 => lz4_decode(self.payload, self.len)?,
            _ => bg4_regroup(&lz4_decode(self.payload, self.len)?),
        };
        if data.len() > self.len {
            return Err(FormatError::new(format!(
                "chunk decodes to more than the {} bytes its header says",
                self.len
            )));
        }
        if data.len() < self.len {
            return Err(FormatError::new(format!(
                "chunk decodes to {} bytes, its header says {}",
                data.len(),
                self.len
            )));
        }
        Ok(data)
    }
}

/// Decodes chunks `skip .. skip + count` of `bytes` (which starts at a chunk
/// header), checking the headers of the skipped ones without decoding them.
pub(crate) fn decode_some(
    bytes: &[u8],
    skip: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>, FormatError> {
    let mut chunks = RawChunks {
        rest: bytes,
        offset: 0,
    };
    for i in 0..skip {
        match chunks.next() {
            Some(c) => {
                c?;
            }
            None => {
                return Err(FormatError::new(format!(
                    "fetched range ends after {i} chunks, {} needed",
                    skip + count
                )))
            }
        }
    }
    let out = chunks
        .take(count)
        .map(|c| c?.decode())
        .collect::<Result<Vec<_>, _>>()?;
    if out.len() < count {
        return Err(FormatError::new(format!(
            "fetched range ends after {} chunks, {} needed",
            skip + out.len(),
            skip + count
        )));
    }
    Ok(out)
}

/// Decodes the consecutive chunks in `bytes` (a fetched byte range of a
/// serialized xorb that starts at a chunk header), returning each chunk's
/// uncompressed bytes; checks headers (version 0, sizes, schemes 0/1/2) and
/// that each decodes to its stated length; stops at a footer.
pub fn decode_chunks(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FormatError> {
    let out = RawChunks {
        rest: bytes,
        offset: 0,
    }
    .map(|c| c?.decode())
    .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(FormatError::new(
            "no chunk header at the start of the range",
        ));
    }
    Ok(out)
}

/// Packs chunks into one xorb. Check [`XorbBuilder::fits`] before each
/// [`XorbBuilder::add`]: `add` does not refuse a chunk that breaks the limits.
#[derive(Default)]
pub struct XorbBuilder {
    bytes: Vec<u8>,
    pub(crate) chunks: Vec<(MerkleHash, u64)>,
}

impl XorbBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a chunk of `chunk_len` uncompressed bytes can still be added
    /// within [`MAX_XORB_BYTES`] and [`MAX_XORB_CHUNKS`] (a chunk is never
    /// stored larger than uncompressed).
    pub fn fits(&self, chunk_len: usize) -> bool {
        self.chunks.len() < MAX_XORB_CHUNKS
            && self.bytes.len() + HEADER_LEN + chunk_len <= MAX_XORB_BYTES
    }

    /// Appends a chunk (1 byte .. 16 MiB; CDC chunks are ≤ 128 KiB), LZ4
    /// compressed when that makes it smaller; returns its index in the xorb.
    pub fn add(&mut self, chunk: &[u8]) -> u32 {
        assert!(
            !chunk.is_empty() && chunk.len() <= MAX_FIELD,
            "xorb chunk of {} bytes",
            chunk.len()
        );
        let packed = lz4_encode(chunk).filter(|p| p.len() < chunk.len());
        let (scheme, payload) = match &packed {
            Some(p) => (SCHEME_LZ4, &p[..]),
            None => (SCHEME_NONE, chunk),
        };
        self.bytes.push(0);
        self.bytes
            .extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
        self.bytes.push(scheme);
        self.bytes
            .extend_from_slice(&(chunk.len() as u32).to_le_bytes()[..3]);
        self.bytes.extend_from_slice(payload);
        self.chunks.push((chunk_hash(chunk), chunk.len() as u64));
        (self.chunks.len() - 1) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The serialized xorb and its hash.
    pub fn finish(self) -> Xorb {
        Xorb {
            hash: xorb_hash(&self.chunks),
            bytes: self.bytes,
            chunks: self.chunks,
        }
    }
}

fn lz4_encode(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len()));
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// A finished xorb, ready to upload to `/v1/xorbs/default/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xorb {
    pub hash: MerkleHash,
    /// The serialized chunks (no footer): the upload body.
    pub bytes: Vec<u8>,
    /// Each chunk's hash and uncompressed length, in order.
    pub chunks: Vec<(MerkleHash, u64)>,
}
