#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets: one well-formed call of every NFSv3, MOUNT and
portmapper procedure, so the fuzzer starts past the RPC header's magic numbers.

    python3 fuzz/seeds.py fuzz/corpus     # then: cargo +nightly fuzz run rpc_record ...
"""
import os
import struct
import sys


def words(*ws):
    return b"".join(struct.pack(">I", w & 0xFFFFFFFF) for w in ws)


def opaque(b):
    return words(len(b)) + b + b"\0" * (-len(b) % 4)


def call(xid, prog, vers, proc_, args=b""):
    # AUTH_UNIX credentials (stamp, machine name, uid 0, gid 0, no groups), AUTH_NULL verifier.
    cred = words(1) + opaque(b"fuzz") + words(0, 0, 0)
    return words(xid, 0, 2, prog, vers, proc_, 1) + opaque(cred) + words(0, 0) + args


# The export root's handle: version 1, tag 0, inode 1, generation 0.
ROOT = opaque(bytes([1]) + struct.pack(">QQI", 0, 1, 0))
NAME = opaque(b"name")
SATTR = words(1, 0o644, 0, 0, 0, 0, 0)  # mode set; uid, gid, size unset; times unchanged
NFS3 = {
    0: b"",
    1: ROOT,
    2: ROOT + SATTR + words(0),
    3: ROOT + NAME,
    4: ROOT + words(0x3F),
    5: ROOT,
    6: ROOT + words(0, 0, 4096),
    7: ROOT + words(0, 0, 5, 2) + opaque(b"hello"),
    8: ROOT + NAME + words(1) + SATTR,
    9: ROOT + NAME + SATTR,
    10: ROOT + NAME + SATTR + opaque(b"target"),
    11: ROOT + NAME + words(3) + SATTR + words(1, 3),
    12: ROOT + NAME,
    13: ROOT + NAME,
    14: ROOT + NAME + ROOT + opaque(b"other"),
    15: ROOT + ROOT + NAME,
    16: ROOT + words(0, 0, 0, 0, 4096),
    17: ROOT + words(0, 0, 0, 0, 1024, 8192),
    18: ROOT,
    19: ROOT,
    20: ROOT,
    21: ROOT + words(0, 0, 0),
}
MOUNT = {0: b"", 1: opaque(b"/"), 2: b"", 3: opaque(b"/"), 4: b"", 5: b""}
PMAP = {
    (2, 3): words(100003, 3, 6, 0),  # GETPORT
    (2, 4): b"",  # DUMP
    (3, 3): words(100005, 3) + opaque(b"tcp") + opaque(b"") + opaque(b""),  # GETADDR
    (4, 4): b"",  # rpcbind DUMP
    (4, 6): b"",  # GETTIME
}

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus"
for target in ("rpc_record", "portmap_packet"):
    os.makedirs(os.path.join(out, target), exist_ok=True)
for proc_, args in NFS3.items():
    with open(os.path.join(out, "rpc_record", f"seed-nfs3-{proc_}"), "wb") as f:
        f.write(call(proc_ + 1, 100003, 3, proc_, args))
for proc_, args in MOUNT.items():
    with open(os.path.join(out, "rpc_record", f"seed-mount-{proc_}"), "wb") as f:
        f.write(call(100 + proc_, 100005, 3, proc_, args))
for (vers, proc_), args in PMAP.items():
    for first, proto in ((0, "udp"), (1, "tcp")):
        name = f"seed-pmap-v{vers}-{proc_}-{proto}"
        with open(os.path.join(out, "portmap_packet", name), "wb") as f:
            # The target's first byte picks the transport.
            f.write(bytes([first]) + call(200 + proc_, 100000, vers, proc_, args))
