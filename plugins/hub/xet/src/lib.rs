//! Xet formats for nfsgw's `hub` plugin: the keyed-BLAKE3 hashes and their
//! aggregation tree, gear content-defined chunking, xorb (de)serialization,
//! MDB v2 shard building, streaming upload of one file, and the parsing and
//! assembly of CAS reconstruction plans. Everything here is pure computation
//! over bytes (no I/O, no async), so it builds for `wasm32-wasip2` and natively;
//! the plugin does the HTTP around it.

use std::fmt;

pub mod chunking;
pub mod hash;
pub mod reconstruction;
pub mod shard;
pub mod upload;
pub mod xorb;

/// Malformed or inconsistent Xet data (a hash string, a xorb range, a
/// reconstruction plan or the bytes fetched for it); the text says what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl FormatError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        FormatError(msg.into())
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xet format error: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

#[cfg(test)]
mod tests;
