//! Content-defined chunking against the Python boundaries, and streaming invariance.

use super::vectors::*;
use crate::chunking::{Chunker, MAX_CHUNK, MIN_CHUNK};

fn chunk_all(data: &[u8], pieces: &[usize]) -> Vec<Vec<u8>> {
    let mut c = Chunker::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = pieces[i % pieces.len()].min(rest.len());
        out.extend(c.push(&rest[..n]));
        rest = &rest[n..];
        i += 1;
    }
    out.extend(c.finish());
    assert!(c.finish().is_none());
    out
}

fn sizes(chunks: &[Vec<u8>]) -> Vec<u64> {
    chunks.iter().map(|c| c.len() as u64).collect()
}

#[test]
fn boundaries_match_vectors() {
    for (data, want) in [
        (random_100(), RANDOM_100_SIZES),
        (random_3mib(), RANDOM_3MIB_SIZES),
        (text_1mib(), TEXT_1MIB_SIZES),
    ] {
        let chunks = chunk_all(&data, &[data.len()]);
        assert_eq!(sizes(&chunks), want);
        assert_eq!(chunks.concat(), data);
    }
}

#[test]
fn boundaries_do_not_depend_on_how_data_arrives() {
    let data = random_3mib();
    for pieces in [
        &[1usize][..],
        &[MIN_CHUNK - 65, MIN_CHUNK - 64, 3, MAX_CHUNK + 1],
        &[7, 8191, 65536, 100_003],
    ] {
        if pieces == [1] {
            // Byte at a time over a prefix only (slow in debug builds).
            let prefix = &data[..300_000];
            let want = sizes(&chunk_all(prefix, &[prefix.len()]));
            assert_eq!(sizes(&chunk_all(prefix, pieces)), want);
            continue;
        }
        assert_eq!(sizes(&chunk_all(&data, pieces)), RANDOM_3MIB_SIZES);
    }
}

#[test]
fn push_returns_only_completed_chunks() {
    let mut c = Chunker::new();
    assert!(c.push(&random_100()).is_empty());
    assert_eq!(c.finish().unwrap(), random_100());
    assert!(c.finish().is_none());
    assert!(Chunker::new().push(&[]).is_empty());
}

#[test]
fn sizes_stay_within_limits() {
    // Constant data never matches, so every chunk is cut at the maximum.
    let zeros = vec![0u8; 3 * MAX_CHUNK + 5];
    assert_eq!(
        sizes(&chunk_all(&zeros, &[zeros.len()])),
        [MAX_CHUNK as u64, MAX_CHUNK as u64, MAX_CHUNK as u64, 5]
    );
    let chunks = chunk_all(&text_1mib(), &[4096]);
    let last = chunks.len() - 1;
    for (i, c) in chunks.iter().enumerate() {
        assert!(c.len() <= MAX_CHUNK);
        assert!(i == last || c.len() >= MIN_CHUNK);
    }
}
