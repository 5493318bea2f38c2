//! Upload of one file: its bytes are chunked, packed into xorbs that are
//! handed out as soon as they are full (so at most one xorb is held in
//! memory), and at the end the file hash and a shard describing the file
//! (one term per xorb) and every xorb it produced are computed.

use crate::chunking::Chunker;
use crate::hash::{file_hash, range_verification_hash, MerkleHash};
use crate::shard::{FileSegment, ShardBuilder};
use crate::xorb::{Xorb, XorbBuilder};

/// Streams one file's bytes into xorbs (≤64 MiB / 8192 chunks each) and, at
/// the end, the shard that describes the file and those xorbs.
#[derive(Default)]
pub struct FileUploader {
    chunker: Chunker,
    xorb: XorbBuilder,
    /// Every chunk of the file so far, for the file hash.
    chunks: Vec<(MerkleHash, u64)>,
    segments: Vec<FileSegment>,
    shard: ShardBuilder,
    size: u64,
}

/// What the CAS needs after the xorbs: the file's identity and its shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedFile {
    pub file_hash: MerkleHash,
    pub size: u64,
    /// References every xorb produced, in order; upload after all xorbs. For
    /// an empty file it lists the file (hash zero) with no terms and no xorbs.
    pub shard: Vec<u8>,
}

impl FileUploader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes the next bytes of the file; returns the xorbs that are full
    /// and ready to upload now.
    pub fn push(&mut self, data: &[u8]) -> Vec<Xorb> {
        self.size += data.len() as u64;
        let mut ready = Vec::new();
        for chunk in self.chunker.push(data) {
            self.add_chunk(&chunk, &mut ready);
        }
        ready
    }

    /// Ends the file: returns the last xorbs and the file's hash and shard.
    pub fn finish(mut self) -> (Vec<Xorb>, UploadedFile) {
        let mut ready = Vec::new();
        if let Some(chunk) = self.chunker.finish() {
            self.add_chunk(&chunk, &mut ready);
        }
        if !self.xorb.is_empty() {
            ready.push(self.close_xorb());
        }
        let hash = file_hash(&self.chunks);
        self.shard.add_file(hash, &self.segments, None);
        let file = UploadedFile {
            file_hash: hash,
            size: self.size,
            shard: self.shard.to_bytes(),
        };
        (ready, file)
    }

    fn add_chunk(&mut self, chunk: &[u8], ready: &mut Vec<Xorb>) {
        if !self.xorb.fits(chunk.len()) {
            ready.push(self.close_xorb());
        }
        self.xorb.add(chunk);
        self.chunks
            .push(self.xorb.chunks[self.xorb.chunks.len() - 1]);
    }

    /// Finishes the xorb under way, recording it as the file's next term.
    fn close_xorb(&mut self) -> Xorb {
        let xorb = std::mem::take(&mut self.xorb).finish();
        let hashes: Vec<MerkleHash> = xorb.chunks.iter().map(|c| c.0).collect();
        self.segments.push(FileSegment {
            xorb: xorb.hash,
            chunk_start: 0,
            chunk_end: xorb.chunks.len() as u32,
            unpacked: xorb.chunks.iter().map(|c| c.1).sum::<u64>() as u32,
            verification: range_verification_hash(&hashes),
        });
        self.shard.add_xorb(&xorb);
        xorb
    }
}
