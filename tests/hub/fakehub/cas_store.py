"""Xet CAS storage: xorbs, shards, file reconstructions.

On disk, under <data>/cas:
  xorbs/<hash>          the serialized xorb exactly as uploaded
  xorbs/<hash>.json     its chunk index (chunk hash, size, byte span)
  shards/<blake3>       every accepted shard, for the record
  files/<hash>.json     a file's reconstruction (segments) and, for repo uploads, its sha256
Indexes are rebuilt from these files at start, so a server restarted on the
same --data directory serves what it stored before.
"""

import json
import os
import threading
from dataclasses import dataclass

from . import xet_format as xf
from .xet_format import FormatError


class RangeNotSatisfiable(Exception):
    pass


@dataclass
class FileRecord:
    hash: str
    size: int
    segments: list      # [(xorb_hash_str, chunk_start, chunk_end, unpacked_len)]
    sha256: str | None


@dataclass
class XorbIndex:
    hash: str
    chunks: list        # [(chunk_hash_str, size, byte_offset, byte_end)]
    serialized_len: int

    def chunk_span(self, c0, c1):
        """Byte span (start, inclusive end) covering chunks [c0, c1) in the serialized xorb."""
        return self.chunks[c0][2], self.chunks[c1 - 1][3] - 1


def _atomic_write(path, data: bytes):
    tmp = f"{path}.tmp{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CasStore:
    def __init__(self, root):
        self.root = root
        self.xorb_dir = os.path.join(root, "xorbs")
        self.shard_dir = os.path.join(root, "shards")
        self.file_dir = os.path.join(root, "files")
        for d in (self.xorb_dir, self.shard_dir, self.file_dir):
            os.makedirs(d, exist_ok=True)
        self.lock = threading.Lock()
        self.xorbs = {}
        self.files = {}
        self.by_sha256 = {}
        self._load()

    # ------------------------------------------------------------ state

    def _load(self):
        for name in os.listdir(self.xorb_dir):
            if name.endswith(".json"):
                with open(os.path.join(self.xorb_dir, name)) as f:
                    d = json.load(f)
                self.xorbs[d["hash"]] = XorbIndex(d["hash"], [tuple(c) for c in d["chunks"]],
                                                  d["serialized_len"])
        for name in os.listdir(self.file_dir):
            if name.endswith(".json"):
                with open(os.path.join(self.file_dir, name)) as f:
                    d = json.load(f)
                rec = FileRecord(d["hash"], d["size"], [tuple(s) for s in d["segments"]], d.get("sha256"))
                self.files[rec.hash] = rec
                if rec.sha256:
                    self.by_sha256[rec.sha256] = rec.hash

    def xorb_path(self, h):
        return os.path.join(self.xorb_dir, h)

    def has_xorb(self, h):
        return h in self.xorbs

    def xorb_index(self, h):
        return self.xorbs.get(h)

    def file(self, h):
        return self.files.get(h)

    def file_by_sha256(self, sha_hex):
        return self.by_sha256.get(sha_hex.lower())

    # ------------------------------------------------------------ uploads

    def put_xorb(self, hash_str, body: bytes) -> bool:
        """Verify and store a serialized xorb; returns False when it was already stored."""
        expected = xf.str_to_hash(hash_str)
        if hash_str in self.xorbs:
            return False
        xorb = xf.parse_xorb(body, expected)
        idx = XorbIndex(hash_str, [(xf.hash_to_str(c.hash), c.size, c.offset, c.end) for c in xorb.chunks],
                        xorb.serialized_len)
        with self.lock:
            if hash_str in self.xorbs:
                return False
            _atomic_write(self.xorb_path(hash_str), body)
            _atomic_write(self.xorb_path(hash_str) + ".json",
                          json.dumps({"hash": hash_str, "chunks": idx.chunks,
                                      "serialized_len": idx.serialized_len}).encode())
            self.xorbs[hash_str] = idx
        return True

    def put_shard(self, body: bytes):
        """Validate a shard against stored xorbs and register its files.

        Returns (new_files, shard) where new_files counts files not known before.
        Raises FormatError when the shard is malformed, references a xorb that
        was not uploaded first, or any hash in it does not match the data.
        """
        shard = xf.parse_shard(body)
        for sx in shard.xorbs:
            self._check_cas_block(sx)
        records = [self._check_file(sf) for sf in shard.files]
        new = 0
        with self.lock:
            _atomic_write(os.path.join(self.shard_dir, xf.keyed(xf.ZERO_HASH, body).hex()), body)
            for rec in records:
                old = self.files.get(rec.hash)
                if old is not None and (old.sha256 or not rec.sha256):
                    continue
                if old is None:
                    new += 1
                self.files[rec.hash] = rec
                if rec.sha256:
                    self.by_sha256[rec.sha256] = rec.hash
                _atomic_write(os.path.join(self.file_dir, rec.hash + ".json"),
                              json.dumps({"hash": rec.hash, "size": rec.size, "segments": rec.segments,
                                          "sha256": rec.sha256}).encode())
        return new, shard

    def _need_xorb(self, raw):
        h = xf.hash_to_str(raw)
        idx = self.xorbs.get(h)
        if idx is None:
            raise FormatError(f"shard references xorb {h} that was not uploaded")
        return idx

    def _check_cas_block(self, sx):
        idx = self._need_xorb(sx.hash)
        if len(sx.chunks) != len(idx.chunks):
            raise FormatError(f"shard lists {len(sx.chunks)} chunks for xorb {idx.hash}, it has {len(idx.chunks)}")
        pos = 0
        for i, (c, (ch, size, _, _)) in enumerate(zip(sx.chunks, idx.chunks)):
            if xf.hash_to_str(c.hash) != ch or c.unpacked_len != size or c.unpacked_offset != pos:
                raise FormatError(f"shard chunk {i} of xorb {idx.hash} does not match the xorb")
            pos += size
        if sx.unpacked != pos:
            raise FormatError(f"shard gives xorb {idx.hash} {sx.unpacked} bytes, it holds {pos}")

    def _check_file(self, sf) -> FileRecord:
        all_chunks, segs = [], []
        for i, seg in enumerate(sf.segments):
            idx = self._need_xorb(seg.xorb)
            if seg.chunk_end > len(idx.chunks):
                raise FormatError(f"segment {i} runs past the end of xorb {idx.hash}")
            sel = idx.chunks[seg.chunk_start:seg.chunk_end]
            if sum(c[1] for c in sel) != seg.unpacked:
                raise FormatError(f"segment {i} length does not match its chunks")
            raws = [xf.str_to_hash(c[0]) for c in sel]
            if sf.flags & xf.FLAG_VERIFICATION and xf.range_verification_hash(raws) != sf.verification[i]:
                raise FormatError(f"segment {i} verification hash does not match")
            all_chunks.extend((r, c[1]) for r, c in zip(raws, sel))
            segs.append((idx.hash, seg.chunk_start, seg.chunk_end, seg.unpacked))
        if xf.file_hash(all_chunks) != sf.hash:
            raise FormatError(f"file hash {xf.hash_to_str(sf.hash)} does not match its chunks")
        sha = xf.sha256_from_shard(sf.sha256) if sf.sha256 is not None else None
        return FileRecord(xf.hash_to_str(sf.hash), sf.size, segs, sha)

    # ------------------------------------------------------------ downloads

    def plan(self, file_hash, start=0, end=None):
        """Reconstruction plan for bytes [start, end) of a file.

        Returns (offset_into_first_range, terms, fetch) where terms is a list of
        (xorb, chunk_start, chunk_end, unpacked_len) in file order, trimmed to the
        chunks that overlap the range, and fetch maps each xorb to merged
        (chunk_start, chunk_end, byte_start, byte_end_inclusive) spans.
        """
        rec = self.files[file_hash]
        end = rec.size if end is None else min(end, rec.size)
        if start >= rec.size or start >= end:
            raise RangeNotSatisfiable(rec.size)
        terms, first_pos, pos = [], None, 0
        for xh, cs, ce, _ in rec.segments:
            idx = self.xorbs[xh]
            lo = hi = None
            length = 0
            for ci in range(cs, ce):
                size = idx.chunks[ci][1]
                if pos + size > start and pos < end:
                    if first_pos is None:
                        first_pos = pos
                    lo = ci if lo is None else lo
                    hi = ci + 1
                    length += size
                pos += size
            if lo is not None:
                terms.append((xh, lo, hi, length))
        spans = {}
        for xh, a, b, _ in terms:
            spans.setdefault(xh, []).append((a, b))
        fetch = {}
        for xh, ranges in spans.items():
            ranges.sort()
            merged = []
            for a, b in ranges:
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
                else:
                    merged.append((a, b))
            idx = self.xorbs[xh]
            fetch[xh] = [(a, b) + idx.chunk_span(a, b) for a, b in merged]
        return start - first_pos, terms, fetch

    def iter_bytes(self, file_hash, start=0, end=None, piece=1 << 20):
        """Yield the file's bytes [start, end) decoded from the stored xorbs."""
        off, terms, _ = self.plan(file_hash, start, end)
        rec = self.files[file_hash]
        remaining = min(rec.size if end is None else end, rec.size) - start
        skip = off
        for xh, cs, ce, _ in terms:
            idx = self.xorbs[xh]
            b0, b1 = idx.chunk_span(cs, ce)
            with open(self.xorb_path(xh), "rb") as f:
                f.seek(b0)
                blob = f.read(b1 + 1 - b0)
            for _, scheme, payload, usize in xf.iter_xorb_chunks(blob):
                data = xf.decode_chunk_payload(scheme, payload, usize)
                if skip:
                    data, skip = data[skip:], max(0, skip - len(data))
                data = data[:remaining]
                remaining -= len(data)
                for i in range(0, len(data), piece):
                    yield data[i:i + piece]
                if remaining <= 0:
                    return
