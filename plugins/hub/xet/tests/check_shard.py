#!/usr/bin/env python3
"""Feeds xorbs and shards written by the Rust test `dump_for_python_check`
to the test server's CAS store, which re-verifies every xorb hash, parses each
shard with `parse_shard` and checks its xorb blocks, verification hashes and
file hash.

  d=$(mktemp -d); NFSGW_XET_DUMP=$d cargo test --manifest-path plugins/Cargo.toml \
      -p nfsgw-xet dump_for_python_check
  PYTHONPATH=tests/hub ~/.cache/nfsgw/hub-venv/bin/python plugins/hub/xet/tests/check_shard.py $d
"""

import os
import sys
import tempfile

from fakehub import xet_format as xf
from fakehub.cas_store import CasStore


def main(dump):
    names = sorted(os.listdir(dump))
    store = CasStore(tempfile.mkdtemp())
    for n in names:
        if ".xorb." in n:
            h = n.rsplit(".", 1)[1]
            assert store.put_xorb(h, open(os.path.join(dump, n), "rb").read())
    shards = [n for n in names if ".shard." in n]
    assert shards, "nothing dumped"
    for n in shards:
        h = n.rsplit(".", 1)[1]
        blob = open(os.path.join(dump, n), "rb").read()
        new, shard = store.put_shard(blob)
        assert new == 1 and [xf.hash_to_str(f.hash) for f in shard.files] == [h], n
        rec = store.file(h)
        data = b"".join(store.iter_bytes(h))
        assert len(data) == rec.size
        print(f"{n}: ok ({rec.size} bytes, {len(shard.xorbs)} xorb(s), flags {shard.files[0].flags:#x})")


if __name__ == "__main__":
    main(sys.argv[1])
