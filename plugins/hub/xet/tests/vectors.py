#!/usr/bin/env python3
"""Produces the expected values embedded in src/tests/vectors.rs.

An independent implementation: the test server's Python Xet module
(tests/hub/fakehub/xet_format.py) for hashes, a plain byte-by-byte gear CDC
written here (table read from the gearhash 0.1 crate source in the cargo
registry), and the real hf_xet client's `hash_files` to confirm each file hash.

  PYTHONPATH=tests/hub ~/.cache/nfsgw/hub-venv/bin/python plugins/hub/xet/tests/vectors.py
"""

import glob
import os
import re
import tempfile

from fakehub import xet_format as xf

MASK = 0xFFFF_0000_0000_0000
MIN_CHUNK, MAX_CHUNK = 8 * 1024, 128 * 1024
U64 = (1 << 64) - 1


def gear_table():
    paths = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/gearhash-0.1.*/src/table.rs"))
    src = open(sorted(paths)[-1]).read()
    body = src[src.index("DEFAULT_TABLE"):]
    vals = [int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]+)", body)[:256]]
    assert len(vals) == 256
    return vals


def chunk_sizes(data, table):
    sizes, start, h = [], 0, 0
    for i, b in enumerate(data):
        h = ((h << 1) + table[b]) & U64
        n = i + 1 - start
        if (n >= MIN_CHUNK and h & MASK == 0) or n >= MAX_CHUNK:
            sizes.append(n)
            start, h = i + 1, 0
    if start < len(data):
        sizes.append(len(data) - start)
    return sizes


def splitmix64(seed, n):
    """n bytes: successive splitmix64 outputs, each written little-endian."""
    out, state = bytearray(), seed
    while len(out) < n:
        state = (state + 0x9E3779B97F4A7C15) & U64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:n])


def text_like(seed, n):
    """Low-entropy bytes (a 6-letter alphabet): compressible, still content-chunked."""
    return bytes(b"abcd \n"[x % 6] for x in splitmix64(seed, n))


INPUTS = {
    "RANDOM_100": lambda: splitmix64(1, 100),
    "RANDOM_3MIB": lambda: splitmix64(2, 3 << 20),
    "TEXT_1MIB": lambda: text_like(3, 1 << 20),
}

# Too big for the byte-at-a-time Python chunker: only the file hash, from hf_xet.
FILE_ONLY = {
    "RANDOM_70MIB": lambda: splitmix64(11, 70 << 20),
}


def hf_xet_hash(data):
    import hf_xet

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return hf_xet.hash_files([f.name])[0].hash


def main():
    table = gear_table()
    for name, make in INPUTS.items():
        data = make()
        sizes = chunk_sizes(data, table)
        chunks, pos = [], 0
        for s in sizes:
            chunks.append((xf.chunk_hash(data[pos:pos + s]), s))
            pos += s
        fh = xf.file_hash(chunks)
        real = hf_xet_hash(data)
        assert real == xf.hash_to_str(fh), (name, real, xf.hash_to_str(fh))
        print(f"// {name}: {len(data)} bytes, {len(sizes)} chunks; file hash confirmed by hf_xet.hash_files")
        print(f"pub const {name}_SIZES: &[u64] = &{sizes};")
        print(f"pub const {name}_CHUNKS: &[&str] = &[")
        for h, _ in chunks:
            print(f'    "{xf.hash_to_str(h)}",')
        print("];")
        print(f'pub const {name}_XORB: &str = "{xf.hash_to_str(xf.xorb_hash(chunks))}";')
        print(f'pub const {name}_FILE: &str = "{xf.hash_to_str(fh)}";')
        ver = xf.range_verification_hash([h for h, _ in chunks])
        print(f'pub const {name}_VERIFY: &str = "{xf.hash_to_str(ver)}";')
    for name, make in FILE_ONLY.items():
        data = make()
        print(f"// {name}: {len(data)} bytes; file hash from hf_xet.hash_files")
        print(f'pub const {name}_FILE: &str = "{hf_xet_hash(data)}";')


if __name__ == "__main__":
    main()
