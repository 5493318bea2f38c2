//! Reconstruction plans from the CAS (`GET /v2/reconstructions/{file}` and
//! the older `/v1/...`): parsing both JSON shapes into one [`Plan`] (terms in
//! file order plus the byte ranges to fetch), matching terms to fetches, and
//! assembling the requested bytes from the fetched xorb ranges while checking
//! them and collecting chunk hashes for verification.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::hash::{chunk_hash, MerkleHash};
use crate::xorb::decode_some;
use crate::FormatError;

/// One term: chunks `chunk_start..chunk_end` of `xorb`, `unpacked_length`
/// bytes once decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub xorb: MerkleHash,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub unpacked_length: u64,
}

/// One ranged GET: bytes `byte_start..=byte_end` of `url`, holding chunks
/// `chunk_start..chunk_end` of `xorb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub xorb: MerkleHash,
    pub url: String,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub byte_start: u64,
    /// Inclusive, the Range header to send.
    pub byte_end: u64,
}

/// A parsed reconstruction. Fetches are ordered by the first term that uses
/// their xorb (then as listed); fetches of xorbs no term uses come last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub offset_into_first_range: u64,
    pub terms: Vec<Term>,
    pub fetches: Vec<Fetch>,
}

#[derive(Deserialize)]
struct Span {
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
struct TermJson {
    hash: String,
    unpacked_length: u64,
    range: Span,
}

#[derive(Deserialize)]
struct V2 {
    offset_into_first_range: u64,
    terms: Vec<TermJson>,
    xorbs: BTreeMap<String, Vec<V2Fetch>>,
}

#[derive(Deserialize)]
struct V2Fetch {
    url: String,
    ranges: Vec<V2Range>,
}

#[derive(Deserialize)]
struct V2Range {
    chunks: Span,
    bytes: Span,
}

#[derive(Deserialize)]
struct V1 {
    offset_into_first_range: u64,
    terms: Vec<TermJson>,
    fetch_info: BTreeMap<String, Vec<V1Fetch>>,
}

#[derive(Deserialize)]
struct V1Fetch {
    range: Span,
    url: String,
    url_range: Span,
}

fn json_err(e: serde_json::Error) -> FormatError {
    FormatError::new(format!("bad reconstruction JSON: {e}"))
}

fn chunk_index(v: u64) -> Result<u32, FormatError> {
    u32::try_from(v).map_err(|_| FormatError::new(format!("chunk index {v} out of range")))
}

fn convert_terms(terms: Vec<TermJson>) -> Result<Vec<Term>, FormatError> {
    terms
        .into_iter()
        .map(|t| {
            let term = Term {
                xorb: MerkleHash::from_hex(&t.hash)?,
                chunk_start: chunk_index(t.range.start)?,
                chunk_end: chunk_index(t.range.end)?,
                unpacked_length: t.unpacked_length,
            };
            if term.chunk_end <= term.chunk_start {
                return Err(FormatError::new(format!(
                    "term over xorb {} has empty chunk range {}..{}",
                    t.hash, t.range.start, t.range.end
                )));
            }
            Ok(term)
        })
        .collect()
}

fn make_fetch(
    xorb: MerkleHash,
    url: String,
    chunks: Span,
    bytes: Span,
) -> Result<Fetch, FormatError> {
    let f = Fetch {
        xorb,
        url,
        chunk_start: chunk_index(chunks.start)?,
        chunk_end: chunk_index(chunks.end)?,
        byte_start: bytes.start,
        byte_end: bytes.end,
    };
    if f.chunk_end <= f.chunk_start || f.byte_end < f.byte_start {
        return Err(FormatError::new(format!(
            "fetch of xorb {xorb} has an empty range (chunks {}..{}, bytes {}-{})",
            f.chunk_start, f.chunk_end, f.byte_start, f.byte_end
        )));
    }
    Ok(f)
}

/// Orders the per-xorb fetch lists by first use in `terms`.
fn build_plan(
    offset: u64,
    terms: Vec<Term>,
    mut by_xorb: BTreeMap<MerkleHash, Vec<Fetch>>,
) -> Plan {
    let mut fetches = Vec::new();
    for t in &terms {
        if let Some(list) = by_xorb.remove(&t.xorb) {
            fetches.extend(list);
        }
    }
    fetches.extend(by_xorb.into_values().flatten());
    Plan {
        offset_into_first_range: offset,
        terms,
        fetches,
    }
}

/// Parses a v2 reconstruction (`xorbs: {hash: [{url, ranges: [{chunks, bytes}]}]}`);
/// each (url, range) pair becomes one [`Fetch`].
pub fn parse_v2(json: &[u8]) -> Result<Plan, FormatError> {
    let v: V2 = serde_json::from_slice(json).map_err(json_err)?;
    let terms = convert_terms(v.terms)?;
    let mut by_xorb = BTreeMap::new();
    for (hash, entries) in v.xorbs {
        let xorb = MerkleHash::from_hex(&hash)?;
        let mut list = Vec::new();
        for e in entries {
            for r in e.ranges {
                list.push(make_fetch(xorb, e.url.clone(), r.chunks, r.bytes)?);
            }
        }
        by_xorb.insert(xorb, list);
    }
    Ok(build_plan(v.offset_into_first_range, terms, by_xorb))
}

/// Parses a v1 reconstruction (`fetch_info: {hash: [{range, url, url_range}]}`).
pub fn parse_v1(json: &[u8]) -> Result<Plan, FormatError> {
    let v: V1 = serde_json::from_slice(json).map_err(json_err)?;
    let terms = convert_terms(v.terms)?;
    let mut by_xorb = BTreeMap::new();
    for (hash, entries) in v.fetch_info {
        let xorb = MerkleHash::from_hex(&hash)?;
        let list = entries
            .into_iter()
            .map(|e| make_fetch(xorb, e.url, e.range, e.url_range))
            .collect::<Result<Vec<_>, _>>()?;
        by_xorb.insert(xorb, list);
    }
    Ok(build_plan(v.offset_into_first_range, terms, by_xorb))
}

/// What [`Plan::assemble`] returns: the bytes, and (hash, length) of every
/// chunk of the terms walked, in file order.
pub type Assembled = (Vec<u8>, Vec<(MerkleHash, u64)>);

impl Plan {
    /// The index in `fetches` whose chunk range covers term `t`'s chunks (same xorb).
    pub fn fetch_for(&self, t: usize) -> Option<usize> {
        let term = self.terms.get(t)?;
        self.fetches.iter().position(|f| {
            f.xorb == term.xorb
                && f.chunk_start <= term.chunk_start
                && term.chunk_end <= f.chunk_end
        })
    }

    /// Assembles `len` bytes of the file starting `offset_into_first_range`
    /// into the first term, from the fetched bytes (`fetched[i]` = body of
    /// `fetches[i]`, only those needed). Checks each term decodes to
    /// `unpacked_length`. Also returns the chunk hashes (hash, len) of every
    /// chunk of every term, in file order, so a caller can verify a file hash.
    ///
    /// Terms are decoded while their fetch body is present; a term whose
    /// bytes are needed for `len` but whose body is absent is an error, one
    /// past `len` without a body ends the walk (the hash list is then partial).
    /// Asking for more bytes than the terms hold is an error.
    pub fn assemble(
        &self,
        fetched: &[Option<Vec<u8>>],
        len: u64,
    ) -> Result<Assembled, FormatError> {
        let want = usize::try_from(len)
            .map_err(|_| FormatError::new(format!("{len} bytes do not fit in memory")))?;
        let mut out = Vec::with_capacity(want.min(256 << 20));
        let mut hashes = Vec::new();
        let mut skip = self.offset_into_first_range;
        for (t, term) in self.terms.iter().enumerate() {
            let body = self
                .fetch_for(t)
                .and_then(|i| Some((i, fetched.get(i)?.as_ref()?)));
            let Some((i, body)) = body else {
                if out.len() >= want && skip == 0 {
                    return Ok((out, hashes));
                }
                return Err(FormatError::new(format!(
                    "no fetched bytes cover term {t} (xorb {} chunks {}..{})",
                    term.xorb, term.chunk_start, term.chunk_end
                )));
            };
            let fetch = &self.fetches[i];
            let chunks = decode_some(
                body,
                (term.chunk_start - fetch.chunk_start) as usize,
                (term.chunk_end - term.chunk_start) as usize,
            )
            .map_err(|e| FormatError::new(format!("term {t} (xorb {}): {}", term.xorb, e.0)))?;
            let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            if total != term.unpacked_length {
                return Err(FormatError::new(format!(
                    "term {t} (xorb {}) decodes to {total} bytes, the plan says {}",
                    term.xorb, term.unpacked_length
                )));
            }
            for chunk in &chunks {
                hashes.push((chunk_hash(chunk), chunk.len() as u64));
                let n = chunk.len() as u64;
                if skip >= n {
                    skip -= n;
                    continue;
                }
                let piece = &chunk[skip as usize..];
                skip = 0;
                let room = want - out.len();
                out.extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
        if skip > 0 {
            return Err(FormatError::new(format!(
                "offset_into_first_range {} is past the terms' {} bytes",
                self.offset_into_first_range,
                hashes.iter().map(|h| h.1).sum::<u64>()
            )));
        }
        if out.len() < want {
            return Err(FormatError::new(format!(
                "the plan holds {} bytes after the offset, {len} were asked",
                out.len()
            )));
        }
        Ok((out, hashes))
    }
}
