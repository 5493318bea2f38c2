"""Xet binary formats: hashes, xorbs and shards.

Everything here is pure computation over bytes; storage lives in cas_store.
Layouts follow the Xet protocol as summarised in HUB-XET-PROTOCOL.md
(sections 4 and 5): keyed BLAKE3 hashes, a content-defined aggregation tree,
xorbs made of 8-byte-headed chunks, and MDB v2 shards.
"""

import struct
from dataclasses import dataclass, field

import blake3
import lz4.frame

# Keys of the three keyed-BLAKE3 hash domains.
DATA_KEY = bytes([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
                  157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41])
INTERNAL_NODE_KEY = bytes([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
                           93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63])
VERIFICATION_KEY = bytes([127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
                          164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195])
ZERO_HASH = bytes(32)

MAX_XORB_BYTES = 64 * 1024 * 1024
MAX_CHUNK_BYTES = 128 * 1024  # CDC forces a boundary here; compressed data may be a bit bigger


class FormatError(ValueError):
    """Malformed or inconsistent xorb/shard data (maps to HTTP 400)."""


# ---------------------------------------------------------------- hashes

def hash_to_str(raw: bytes) -> str:
    """32 raw bytes -> the 64-hex string form (each 8-byte word printed as a little-endian u64)."""
    if len(raw) != 32:
        raise FormatError("hash must be 32 bytes")
    return "".join(raw[i:i + 8][::-1].hex() for i in range(0, 32, 8))


def str_to_hash(text: str) -> bytes:
    """Inverse of hash_to_str; raises FormatError on anything but 64 hex digits."""
    if len(text) != 64:
        raise FormatError("hash string must be 64 hex digits")
    try:
        return b"".join(bytes.fromhex(text[i:i + 16])[::-1] for i in range(0, 64, 16))
    except ValueError as exc:
        raise FormatError("hash string is not hex") from exc


def is_hash_str(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def keyed(key: bytes, data: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    return keyed(DATA_KEY, data)


def _cut(children):
    """Length of the next group when collapsing one tree level (2..9 entries, mean 4)."""
    if len(children) <= 2:
        return len(children)
    end = min(9, len(children))
    for i in range(2, end):
        word3 = struct.unpack_from("<Q", children[i][0], 24)[0]
        if word3 % 4 == 0:
            return i + 1
    return end


def _merge(group):
    text = "".join(f"{hash_to_str(h)} : {n}\n" for h, n in group)
    return keyed(INTERNAL_NODE_KEY, text.encode()), sum(n for _, n in group)


def aggregated_hash(children) -> bytes:
    """Root of the aggregation tree over [(raw_hash, size)], as used for xorbs and files."""
    if not children:
        return ZERO_HASH
    level = list(children)
    while len(level) > 1:
        nxt, i = [], 0
        while i < len(level):
            n = _cut(level[i:])
            nxt.append(_merge(level[i:i + n]))
            i += n
        level = nxt
    return level[0][0]


def xorb_hash(chunks) -> bytes:
    return aggregated_hash(chunks)


def file_hash(chunks) -> bytes:
    """Xet file id: the aggregated root, keyed once more with an all-zero salt."""
    if not chunks:
        return ZERO_HASH
    return keyed(ZERO_HASH, aggregated_hash(chunks))


def range_verification_hash(raw_chunk_hashes) -> bytes:
    return keyed(VERIFICATION_KEY, b"".join(raw_chunk_hashes))


# ---------------------------------------------------------------- xorbs

SCHEME_NONE, SCHEME_LZ4, SCHEME_BG4_LZ4 = 0, 1, 2


@dataclass
class XorbChunk:
    hash: bytes          # raw chunk hash of the uncompressed bytes
    size: int            # uncompressed length
    offset: int          # byte offset of the chunk header inside the serialized xorb
    end: int             # byte offset just past the chunk payload


@dataclass
class Xorb:
    hash: bytes
    chunks: list
    serialized_len: int  # bytes covered by the chunk sequence (a trailing footer is excluded)

    @property
    def unpacked_len(self):
        return sum(c.size for c in self.chunks)


def _bg4_regroup(data: bytes) -> bytes:
    """Undo the byte grouping: data holds 4 groups (byte i went to group i % 4)."""
    n = len(data)
    sizes = [n // 4 + (1 if g < n % 4 else 0) for g in range(4)]
    out = bytearray(n)
    pos = 0
    for g in range(4):
        out[g::4] = data[pos:pos + sizes[g]]
        pos += sizes[g]
    return bytes(out)


def decode_chunk_payload(scheme: int, payload: bytes, expected_len: int) -> bytes:
    if scheme == SCHEME_NONE:
        data = payload
    elif scheme == SCHEME_LZ4:
        data = lz4.frame.decompress(payload)
    elif scheme == SCHEME_BG4_LZ4:
        data = _bg4_regroup(lz4.frame.decompress(payload))
    else:
        raise FormatError(f"unknown compression scheme {scheme}")
    if len(data) != expected_len:
        raise FormatError(f"chunk decodes to {len(data)} bytes, header says {expected_len}")
    return data


def iter_xorb_chunks(blob: bytes, start: int = 0, end: int | None = None):
    """Yield (offset, scheme, payload, uncompressed_len) for each chunk in blob[start:end].

    Stops at the end or at the first byte that does not start a version-0 chunk
    header (a serialized xorb may carry a footer after its chunks).
    """
    end = len(blob) if end is None else end
    pos = start
    while pos + 8 <= end:
        version = blob[pos]
        if version != 0:
            break
        csize = int.from_bytes(blob[pos + 1:pos + 4], "little")
        scheme = blob[pos + 4]
        usize = int.from_bytes(blob[pos + 5:pos + 8], "little")
        if scheme > SCHEME_BG4_LZ4 or pos + 8 + csize > end:
            break
        yield pos, scheme, blob[pos + 8:pos + 8 + csize], usize
        pos += 8 + csize


def parse_xorb(blob: bytes, expected_hash: bytes | None = None) -> Xorb:
    """Decode every chunk, hash it, and check the xorb's aggregated hash."""
    if len(blob) > MAX_XORB_BYTES + 1024 * 1024:
        raise FormatError("xorb too large")
    chunks = []
    last_end = 0
    for off, scheme, payload, usize in iter_xorb_chunks(blob):
        if usize == 0 or usize > MAX_CHUNK_BYTES:
            raise FormatError(f"chunk at {off} has impossible size {usize}")
        data = decode_chunk_payload(scheme, payload, usize)
        last_end = off + 8 + len(payload)
        chunks.append(XorbChunk(chunk_hash(data), usize, off, last_end))
    if not chunks:
        raise FormatError("xorb holds no chunks")
    got = xorb_hash([(c.hash, c.size) for c in chunks])
    if expected_hash is not None and got != expected_hash:
        raise FormatError(f"xorb hash mismatch: content hashes to {hash_to_str(got)}")
    return Xorb(got, chunks, last_end)


# ---------------------------------------------------------------- shards

SHARD_TAG = b"HFRepoMetaData\x00" + bytes([85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217,
                                           92, 205, 209, 74, 169])
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
BOOKEND_HASH = b"\xff" * 32
ENTRY = 48  # every record in both sections is 48 bytes


@dataclass
class FileSegment:
    xorb: bytes
    unpacked: int
    chunk_start: int
    chunk_end: int       # exclusive


@dataclass
class ShardFile:
    hash: bytes
    flags: int
    segments: list
    verification: list = field(default_factory=list)   # raw range hashes, one per segment
    sha256: bytes | None = None                         # raw 32 bytes as stored (word-swapped)

    @property
    def size(self):
        return sum(s.unpacked for s in self.segments)


@dataclass
class ShardXorbChunk:
    hash: bytes
    unpacked_offset: int
    unpacked_len: int


@dataclass
class ShardXorb:
    hash: bytes
    flags: int
    unpacked: int
    on_disk: int
    chunks: list


@dataclass
class Shard:
    files: list
    xorbs: list
    footer: bytes


def sha256_from_shard(raw: bytes) -> str:
    """The plain sha256 hex of a FileMetadataExt value (stored with the hash word order)."""
    return hash_to_str(raw)


def parse_shard(blob: bytes) -> Shard:
    if len(blob) < 48 + 2 * ENTRY:
        raise FormatError("shard too short")
    tag = blob[:32]
    version, footer_size = struct.unpack_from("<QQ", blob, 32)
    if tag != SHARD_TAG or version != 2:
        raise FormatError("not an MDB v2 shard")
    body_end = len(blob) - footer_size
    if body_end < 48:
        raise FormatError("bad footer size")
    pos = 48

    def need(n):
        if pos + n > body_end:
            raise FormatError("shard truncated")

    files = []
    while True:
        need(ENTRY)
        fhash = blob[pos:pos + 32]
        flags, n = struct.unpack_from("<II", blob, pos + 32)
        pos += ENTRY
        if fhash == BOOKEND_HASH:
            break
        need(ENTRY * n)
        segs = []
        for _ in range(n):
            x = blob[pos:pos + 32]
            _cas_flags, unpacked, cs, ce = struct.unpack_from("<IIII", blob, pos + 32)
            if ce <= cs:
                raise FormatError("empty chunk range in file segment")
            segs.append(FileSegment(x, unpacked, cs, ce))
            pos += ENTRY
        ver = []
        if flags & FLAG_VERIFICATION:
            need(ENTRY * n)
            for _ in range(n):
                ver.append(blob[pos:pos + 32])
                pos += ENTRY
        sha = None
        if flags & FLAG_METADATA_EXT:
            need(ENTRY)
            sha = blob[pos:pos + 32]
            pos += ENTRY
        files.append(ShardFile(fhash, flags, segs, ver, sha))

    xorbs = []
    while True:
        need(ENTRY)
        xh = blob[pos:pos + 32]
        flags, n, unpacked, on_disk = struct.unpack_from("<IIII", blob, pos + 32)
        pos += ENTRY
        if xh == BOOKEND_HASH:
            break
        need(ENTRY * n)
        chunks = []
        for _ in range(n):
            ch = blob[pos:pos + 32]
            off, ln = struct.unpack_from("<II", blob, pos + 32)
            chunks.append(ShardXorbChunk(ch, off, ln))
            pos += ENTRY
        xorbs.append(ShardXorb(xh, flags, unpacked, on_disk, chunks))
    return Shard(files, xorbs, blob[body_end:])
