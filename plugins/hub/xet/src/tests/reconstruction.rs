//! Reconstruction plans in both JSON shapes the test server's cas_routes.py
//! emits (planned here as its cas_store.py plans them), assembled with
//! offsets and truncated tails, and the errors a bad plan or body gives.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::vectors::*;
use crate::chunking::Chunker;
use crate::hash::{file_hash, MerkleHash};
use crate::reconstruction::*;
use crate::xorb::{Xorb, XorbBuilder};

/// Two xorbs holding the chunks of `text_1mib`: chunks 0..6 and 6..14.
fn xorbs() -> (Vec<u8>, Xorb, Xorb) {
    let data = text_1mib();
    let mut c = Chunker::new();
    let mut chunks = c.push(&data);
    chunks.extend(c.finish());
    assert_eq!(chunks.len(), 14);
    let build = |cs: &[Vec<u8>]| {
        let mut b = XorbBuilder::new();
        for c in cs {
            b.add(c);
        }
        b.finish()
    };
    let a = build(&chunks[..6]);
    let b = build(&chunks[6..]);
    (data, a, b)
}

/// Byte offset of each chunk header in a serialized xorb, plus the end.
fn offsets(x: &Xorb) -> Vec<u64> {
    let mut out = vec![0u64];
    let mut pos = 0usize;
    while pos < x.bytes.len() {
        let b = &x.bytes[pos..];
        pos += 8 + u32::from_le_bytes([b[1], b[2], b[3], 0]) as usize;
        out.push(pos as u64);
    }
    out
}

/// Plans bytes `start..end` of a file made of `segments` (xorb, chunk range)
/// as cas_store.plan does, rendered as cas_routes renders v2 and v1.
fn plan_json(segments: &[(&Xorb, u32, u32)], start: u64, end: u64) -> (Value, Value) {
    let mut terms = Vec::new();
    let mut first = None;
    let mut pos = 0u64;
    for &(x, cs, ce) in segments {
        let mut span: Option<(u32, u32)> = None;
        let mut len = 0;
        for ci in cs..ce {
            let size = x.chunks[ci as usize].1;
            if pos + size > start && pos < end {
                first.get_or_insert(pos);
                span = Some((span.map_or(ci, |s| s.0), ci + 1));
                len += size;
            }
            pos += size;
        }
        if let Some((a, b)) = span {
            terms.push((x, a, b, len));
        }
    }
    type Spans<'a> = BTreeMap<String, (&'a Xorb, Vec<(u32, u32)>)>;
    let mut spans: Spans = BTreeMap::new();
    for &(x, a, b, _) in &terms {
        spans
            .entry(x.hash.to_hex())
            .or_insert((x, vec![]))
            .1
            .push((a, b));
    }
    let (mut v2x, mut v1x) = (json!({}), json!({}));
    for (h, (x, mut ranges)) in spans {
        ranges.sort();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(m) if a <= m.1 => m.1 = m.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let off = offsets(x);
        let url = |b0: u64, b1: u64| format!("http://cdn/xorbs/{h}?range=bytes%3D{b0}-{b1}&sig=x");
        v2x[&h] = merged
            .iter()
            .map(|&(a, b)| {
                let (b0, b1) = (off[a as usize], off[b as usize] - 1);
                json!({"url": url(b0, b1), "ranges": [{"chunks": {"start": a, "end": b}, "bytes": {"start": b0, "end": b1}}]})
            })
            .collect();
        v1x[&h] = merged
            .iter()
            .map(|&(a, b)| {
                let (b0, b1) = (off[a as usize], off[b as usize] - 1);
                json!({"range": {"start": a, "end": b}, "url": url(b0, b1), "url_range": {"start": b0, "end": b1}})
            })
            .collect();
    }
    let terms: Vec<Value> = terms
        .iter()
        .map(|(x, a, b, n)| json!({"hash": x.hash.to_hex(), "unpacked_length": n, "range": {"start": a, "end": b}}))
        .collect();
    let off = start - first.unwrap();
    (
        json!({"offset_into_first_range": off, "terms": terms, "xorbs": v2x}),
        json!({"offset_into_first_range": off, "terms": terms, "fetch_info": v1x}),
    )
}

/// The bodies a client would fetch for `plan`, looked up by xorb.
fn fetch_all(plan: &Plan, xorbs: &[&Xorb]) -> Vec<Option<Vec<u8>>> {
    plan.fetches
        .iter()
        .map(|f| {
            let x = xorbs.iter().find(|x| x.hash == f.xorb).unwrap();
            Some(x.bytes[f.byte_start as usize..=f.byte_end as usize].to_vec())
        })
        .collect()
}

fn both(segments: &[(&Xorb, u32, u32)], start: u64, end: u64) -> [Plan; 2] {
    let (v2, v1) = plan_json(segments, start, end);
    let p2 = parse_v2(v2.to_string().as_bytes()).unwrap();
    let p1 = parse_v1(v1.to_string().as_bytes()).unwrap();
    assert_eq!(p1, p2);
    [p2, p1]
}

#[test]
fn whole_file_assembles_and_verifies() {
    let (data, a, b) = xorbs();
    let segs = [(&a, 0, 6), (&b, 0, 8)];
    for plan in both(&segs, 0, data.len() as u64) {
        assert_eq!(plan.offset_into_first_range, 0);
        assert_eq!(plan.terms.len(), 2);
        assert_eq!(plan.fetches.len(), 2);
        assert_eq!(
            (plan.fetch_for(0), plan.fetch_for(1), plan.fetch_for(2)),
            (Some(0), Some(1), None)
        );
        let (bytes, hashes) = plan
            .assemble(&fetch_all(&plan, &[&a, &b]), data.len() as u64)
            .unwrap();
        assert!(bytes == data);
        assert_eq!(file_hash(&hashes).to_hex(), TEXT_1MIB_FILE);
    }
}

#[test]
fn ranges_with_offset_and_truncated_tail() {
    let (data, a, b) = xorbs();
    // A file that reuses xorb A around B: its two A terms share one merged fetch.
    let segs = [(&a, 0, 3), (&b, 0, 2), (&a, 3, 6)];
    let file: Vec<u8> = {
        let bound = |x: &Xorb, i: usize| x.chunks[..i].iter().map(|c| c.1).sum::<u64>() as usize;
        let b_start = bound(&a, 6);
        [
            &data[..bound(&a, 3)],
            &data[b_start..b_start + bound(&b, 2)],
            &data[bound(&a, 3)..bound(&a, 6)],
        ]
        .concat()
    };
    let n = file.len() as u64;
    for (start, end) in [
        (0, n),
        (1, n),
        (70_000, 70_001),
        (100_000, n - 5),
        (n - 1, n),
        (52_981, 300_000),
    ] {
        for plan in both(&segs, start, end) {
            let fetched = fetch_all(&plan, &[&a, &b]);
            let (bytes, hashes) = plan.assemble(&fetched, end - start).unwrap();
            assert!(
                bytes == file[start as usize..end as usize],
                "{start}..{end}"
            );
            let covered: u64 = plan.terms.iter().map(|t| t.unpacked_length).sum();
            assert_eq!(hashes.iter().map(|h| h.1).sum::<u64>(), covered);
        }
    }
    let [plan, _] = both(&segs, 0, n);
    assert_eq!(plan.fetches.len(), 2);
    assert_eq!(plan.fetch_for(0), plan.fetch_for(2));
    assert_eq!(plan.fetches[plan.fetch_for(0).unwrap()].chunk_end, 6);
    // Asking for less than the plan holds truncates the tail.
    let (bytes, _) = plan.assemble(&fetch_all(&plan, &[&a, &b]), 10).unwrap();
    assert_eq!(bytes, file[..10]);
}

#[test]
fn literal_v2_and_v1_documents() {
    let x = "0706050403020100".repeat(4);
    let v2 = format!(
        r#"{{"offset_into_first_range": 5, "terms": [{{"hash": "{x}", "unpacked_length": 99, "range": {{"start": 1, "end": 3}}}}],
            "xorbs": {{"{x}": [{{"url": "http://c/a", "ranges": [{{"chunks": {{"start": 0, "end": 2}}, "bytes": {{"start": 0, "end": 9}}}},
                                                              {{"chunks": {{"start": 2, "end": 4}}, "bytes": {{"start": 10, "end": 19}}}}]}}]}}}}"#
    );
    let p = parse_v2(v2.as_bytes()).unwrap();
    let h = MerkleHash::from_hex(&x).unwrap();
    assert_eq!(p.offset_into_first_range, 5);
    assert_eq!(
        p.terms,
        [Term {
            xorb: h,
            chunk_start: 1,
            chunk_end: 3,
            unpacked_length: 99
        }]
    );
    assert_eq!(p.fetches.len(), 2);
    assert_eq!(
        p.fetches[1],
        Fetch {
            xorb: h,
            url: "http://c/a".into(),
            chunk_start: 2,
            chunk_end: 4,
            byte_start: 10,
            byte_end: 19
        }
    );
    // Chunks 1..3 straddle both ranges: no single fetch covers the term.
    assert_eq!(p.fetch_for(0), None);
    let v1 = format!(
        r#"{{"offset_into_first_range": 0, "terms": [{{"hash": "{x}", "unpacked_length": 7, "range": {{"start": 0, "end": 1}}}}],
            "fetch_info": {{"{x}": [{{"range": {{"start": 0, "end": 4}}, "url": "u", "url_range": {{"start": 3, "end": 8}}}}]}}}}"#
    );
    let p = parse_v1(v1.as_bytes()).unwrap();
    assert_eq!(p.fetch_for(0), Some(0));
    assert_eq!(
        (
            p.fetches[0].byte_start,
            p.fetches[0].byte_end,
            &p.fetches[0].url[..]
        ),
        (3, 8, "u")
    );
}

#[test]
fn bad_plans_and_bodies_are_errors() {
    let (data, a, b) = xorbs();
    let segs = [(&a, 0, 6), (&b, 0, 8)];
    let n = data.len() as u64;
    let (v2, v1) = plan_json(&segs, 0, n);
    let plan = parse_v2(v2.to_string().as_bytes()).unwrap();
    let good = fetch_all(&plan, &[&a, &b]);
    assert!(
        plan.assemble(&good, n + 1).is_err(),
        "more than the plan holds"
    );
    let mut missing = good.clone();
    missing[1] = None;
    assert!(plan.assemble(&missing, n).is_err(), "needed body absent");
    // A body absent for a term past the wanted bytes is fine.
    assert_eq!(plan.assemble(&missing, 1000).unwrap().0, data[..1000]);
    assert!(plan.assemble(&good[..1], n).is_err(), "short fetched list");
    let mut cut = good.clone();
    cut[0].as_mut().unwrap().truncate(1000);
    assert!(plan.assemble(&cut, n).is_err(), "truncated body");
    let mut swapped = good.clone();
    swapped.swap(0, 1);
    assert!(plan.assemble(&swapped, n).is_err(), "wrong xorb's bytes");
    let mut lying = plan.clone();
    lying.terms[0].unpacked_length += 1;
    assert!(
        lying.assemble(&good, 10).is_err(),
        "unpacked_length mismatch"
    );
    let mut far = plan.clone();
    far.offset_into_first_range = n + 1;
    assert!(far.assemble(&good, 0).is_err(), "offset past the terms");

    let mut bad_hash = v1.clone();
    bad_hash["terms"][0]["hash"] = json!("zz");
    for doc in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        bad_hash.to_string().into_bytes(),
        v1.to_string().into_bytes(), // v1 shape given to the v2 parser
    ] {
        assert!(parse_v2(&doc).is_err());
    }
    let mut empty_range = v1.clone();
    empty_range["terms"][0]["range"]["end"] = json!(0);
    assert!(parse_v1(empty_range.to_string().as_bytes()).is_err());
    let mut huge = v1;
    huge["terms"][0]["range"]["end"] = json!(1u64 << 40);
    assert!(parse_v1(huge.to_string().as_bytes()).is_err());
}
