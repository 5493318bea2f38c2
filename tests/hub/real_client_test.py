#!/usr/bin/env python3
"""Proves tests/hub/fakehub against the real huggingface_hub + hf_xet clients.

Run with the venv made by tests/hub/setup.sh:
    "$NFSGW_HUB_VENV/bin/python" tests/hub/real_client_test.py [--keep]

Starts fakehub on free ports (twice more for the v1-only/short-token phase and
for the restart check), drives it only through the real clients (plus a few
raw HTTP calls for protocol details the clients hide), prints one PASS/FAIL
line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import argparse
import hashlib

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
TOKEN = "hf_fakehub_test_token"
SEED = 20261122
MiB = 1024 * 1024

ap = argparse.ArgumentParser()
ap.add_argument("--keep", action="store_true", help="keep the temporary directory (server data, logs)")
ARGS = ap.parse_args()

WORK = tempfile.mkdtemp(prefix="fakehub-test-")


# ------------------------------------------------------------------ server processes

class FakeHub:
    def __init__(self, name, *extra, data=None):
        self.name = name
        self.data = data or os.path.join(WORK, name + "-data")
        ready = os.path.join(WORK, name + ".ready")
        self.log = os.path.join(WORK, name + ".requests.jsonl")
        self.stderr = open(os.path.join(WORK, name + ".stderr"), "a")
        cmd = [sys.executable, "-m", "fakehub", "--port", "0", "--data", self.data, "--token", TOKEN,
               "--ready-file", ready, "--log", self.log, *extra]
        self.proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"fakehub {name} did not start; see {self.stderr.name}")
            time.sleep(0.05)
        with open(ready) as f:
            self.info = json.load(f)
        os.remove(ready)
        self.endpoint = self.info["endpoint"]

    def stats(self):
        return http("GET", self.endpoint + "/_fakehub/stats", auth=TOKEN)[2]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def http(method, url, auth=None, headers=None, body=None):
    """Raw HTTP helper: (status, headers, parsed-json-or-bytes). Does not follow redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    h = dict(headers or {})
    if auth:
        h["Authorization"] = "Bearer " + auth
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            status, hdrs, data = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, data = e.code, e.headers, e.read()
    if (hdrs.get("Content-Type") or "").startswith("application/json"):
        data = json.loads(data or b"null")
    return status, hdrs, data


# ------------------------------------------------------------------ client environment

HUB = FakeHub("main", "--page-size", "7")
os.environ.update({
    "HF_ENDPOINT": HUB.endpoint,
    "HF_TOKEN": TOKEN,
    "HF_HOME": os.path.join(WORK, "hf-home"),
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_XET_TELEMETRY_ENABLED": "0",
})
os.environ.pop("HF_HUB_OFFLINE", None)

import huggingface_hub  # noqa: E402  (must see the environment above)
from importlib.metadata import version  # noqa: E402
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    BucketNotFoundError, EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError)

api = HfApi(endpoint=HUB.endpoint, token=TOKEN)

# ------------------------------------------------------------------ reporting

results = []


def check(name):
    def deco(fn):
        try:
            detail = fn()
            results.append(True)
            print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
        except Exception as e:  # noqa: BLE001
            results.append(False)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
        return fn
    return deco


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_raises(exc_type, fn, status=None):
    try:
        fn()
    except exc_type as e:
        code = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None and code != status:
            raise AssertionError(f"{exc_type.__name__} with HTTP {code}, expected {status}")
        return f"{exc_type.__name__}, HTTP {code}"
    raise AssertionError(f"expected {exc_type.__name__}")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def rand_bytes(n, salt):
    return random.Random(f"{SEED}-{salt}").randbytes(n)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def fresh_cache():
    return tempfile.mkdtemp(dir=WORK, prefix="cache-")


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


# ------------------------------------------------------------------ data

SRC = os.path.join(WORK, "src")
SMALL = b"hello from the nfsgw fakehub test\n" * 3
MID = rand_bytes(3 * MiB, "mid")
BIG = rand_bytes(70 * MiB, "big")
small_path = write(os.path.join(SRC, "small.txt"), SMALL)
mid_path = write(os.path.join(SRC, "mid.bin"), MID)
big_path = write(os.path.join(SRC, "big.bin"), BIG)
MODEL = "tester/model-a"
state = {}

print(f"huggingface_hub {huggingface_hub.__version__}, hf_xet {version('hf-xet')}, "
      f"server {HUB.endpoint}, cdn {HUB.info['cdn_url']}, workdir {WORK}", flush=True)


@check("whoami with the valid token")
def _():
    me = api.whoami()
    expect(me["name"] == "tester", me)
    return me["name"]


@check("create model repo")
def _():
    url = api.create_repo(MODEL)
    expect(url.repo_id == MODEL, url)
    expect_raises(HfHubHTTPError, lambda: api.create_repo(MODEL), status=409)
    api.create_repo(MODEL, exist_ok=True)
    return str(url)


@check("upload small text file (regular git blob, no Xet)")
def _():
    s0 = HUB.stats()
    info = api.upload_file(path_or_fileobj=small_path, path_in_repo="small.txt", repo_id=MODEL)
    s1 = HUB.stats()
    expect(delta(s0, s1, "xorbs_inserted") == 0, "a small text file must not go through Xet")
    expect(len(info.oid) == 40, info.oid)
    return f"commit {info.oid[:12]}"


@check("upload 3 MiB file through Xet")
def _():
    s0 = HUB.stats()
    api.upload_file(path_or_fileobj=mid_path, path_in_repo="weights/mid.bin", repo_id=MODEL)
    s1 = HUB.stats()
    n = delta(s0, s1, "xorbs_inserted")
    expect(n >= 1, f"server saw {n} new xorbs")
    expect(delta(s0, s1, "cas_shard_v2:POST") >= 1, "no shard upload seen")
    return f"{n} xorb, {delta(s0, s1, 'xorb_bytes')} xorb bytes"


@check("upload 70 MiB file through Xet, spanning two xorbs")
def _():
    s0 = HUB.stats()
    t = time.time()
    api.upload_file(path_or_fileobj=big_path, path_in_repo="weights/big.bin", repo_id=MODEL)
    s1 = HUB.stats()
    n = delta(s0, s1, "xorbs_inserted")
    expect(n >= 2, f"70 MiB should need 2 xorbs, server stored {n}")
    return f"{n} xorbs, {delta(s0, s1, 'xorb_bytes')} bytes, {time.time() - t:.1f}s"


@check("tree lists the uploaded files with sizes, LFS and Xet info")
def _():
    entries = {e.path: e for e in api.list_repo_tree(MODEL, recursive=True)}
    expect(set(entries) >= {".gitattributes", "small.txt", "weights", "weights/mid.bin", "weights/big.bin"},
           sorted(entries))
    big, small = entries["weights/big.bin"], entries["small.txt"]
    expect(big.size == len(BIG) and big.lfs is not None and big.lfs.sha256 == sha(BIG), big)
    expect(big.xet_hash and len(big.xet_hash) == 64, big)
    expect(small.lfs is None and small.size == len(SMALL), small)
    info = api.repo_info(MODEL)
    expect({s.rfilename for s in info.siblings} == {".gitattributes", "small.txt", "weights/mid.bin",
                                                    "weights/big.bin"}, info.siblings)
    state["xet_big"] = big.xet_hash
    return f"{len(entries)} entries, head {info.sha[:12]}"


@check("download all three back byte-identical (hf_hub_download, Xet reconstruction v2)")
def _():
    s0 = HUB.stats()
    cache = fresh_cache()
    for name, data in (("small.txt", SMALL), ("weights/mid.bin", MID), ("weights/big.bin", BIG)):
        p = hf_hub_download(MODEL, name, cache_dir=cache)
        expect(file_sha(p) == sha(data), f"{name}: sha256 differs")
    s1 = HUB.stats()
    expect(delta(s0, s1, "cas_reconstruction_v2:GET") >= 2, "no v2 reconstruction calls seen")
    expect(delta(s0, s1, "cdn_xorb:GET") >= 2, "no xorb range fetches seen")
    return f"{delta(s0, s1, 'cas_reconstruction_v2:GET')} reconstructions, {delta(s0, s1, 'cdn_xorb:GET')} xorb fetches"


@check("resolve serves a small file directly (200, X-Repo-Commit, git ETag)")
def _():
    st, h, body = http("GET", f"{HUB.endpoint}/{MODEL}/resolve/main/small.txt", auth=TOKEN)
    expect(st == 200 and body == SMALL, (st, body[:40]))
    expect(len(h["X-Repo-Commit"]) == 40 and h.get("X-Xet-Hash") is None, dict(h))
    st, h, body = http("GET", f"{HUB.endpoint}/{MODEL}/resolve/main/small.txt", auth=TOKEN,
                       headers={"Range": "bytes=6-15"})
    expect(st == 206 and body == SMALL[6:16], (st, body))
    return f"ranged small read -> {st} {h['Content-Range']}"


@check("resolve of a Xet file: 302 off-origin with X-Xet-Hash, Link xet-auth, linked size/etag")
def _():
    st, h, _ = http("HEAD", f"{HUB.endpoint}/{MODEL}/resolve/main/weights/big.bin", auth=TOKEN)
    expect(st == 302, st)
    expect(h["X-Xet-Hash"] == state["xet_big"] and int(h["X-Linked-Size"]) == len(BIG), dict(h))
    expect(h["X-Linked-Etag"].strip('"') == sha(BIG), h["X-Linked-Etag"])
    expect('rel="xet-auth"' in h["Link"] and h["Location"].startswith(HUB.info["cdn_url"]), dict(h))
    return h["Location"].split("?")[0]


@check("ranged read through resolve with a Range header (HfFileSystem, real client)")
def _():
    s0 = HUB.stats()
    fs = HfFileSystem(endpoint=HUB.endpoint, token=TOKEN)
    off, n = 40 * MiB - 12345, 2 * MiB + 777
    with fs.open(f"{MODEL}/weights/big.bin", "rb") as f:
        f.seek(off)
        part = f.read(n)
    expect(part == BIG[off:off + n], f"got {len(part)} bytes, content differs")
    s1 = HUB.stats()
    expect(delta(s0, s1, "resolve:GET") >= 1, "HfFileSystem did not use GET resolve")
    # and the same over plain HTTP, following the redirect to the CDN
    req = urllib.request.Request(f"{HUB.endpoint}/{MODEL}/resolve/main/weights/big.bin",
                                 headers={"Authorization": "Bearer " + TOKEN, "Range": "bytes=100-199"})
    with urllib.request.urlopen(req, timeout=60) as r:
        expect(r.status == 206 and r.read() == BIG[100:200], "plain ranged GET differs")
    return f"{n} bytes at offset {off}"


@check("CAS reconstruction honours Range (v2 and v1 shapes)")
def _():
    st, h, tok = http("GET", f"{HUB.endpoint}/api/models/{MODEL}/xet-read-token/main", auth=TOKEN)
    expect(st == 200 and h["X-Xet-Access-Token"] == tok["accessToken"], (st, dict(h)))
    cas, xtok = tok["casUrl"], tok["accessToken"]
    a, b = 67 * MiB, 67 * MiB + 99  # near the xorb boundary of the 70 MiB file
    st, _, v2 = http("GET", f"{cas}/v2/reconstructions/{state['xet_big']}", auth=xtok,
                     headers={"Range": f"bytes={a}-{b}"})
    expect(st == 200 and v2["terms"] and v2["xorbs"], (st, v2))
    # fetch and decode the terms by hand: proves the URLs, byte ranges and offset are right
    from fakehub import xet_format as xf
    out = b""
    for t in v2["terms"]:
        ent = next(e for e in v2["xorbs"][t["hash"]]
                   if e["ranges"][0]["chunks"]["start"] <= t["range"]["start"]
                   and t["range"]["end"] <= e["ranges"][0]["chunks"]["end"])
        r = ent["ranges"][0]
        st, _, blob = http("GET", ent["url"], headers={"Range": f"bytes={r['bytes']['start']}-{r['bytes']['end']}"})
        expect(st == 206, st)
        chunks = list(xf.iter_xorb_chunks(blob))
        first = t["range"]["start"] - r["chunks"]["start"]
        for _, scheme, payload, usize in chunks[first:first + t["range"]["end"] - t["range"]["start"]]:
            out += xf.decode_chunk_payload(scheme, payload, usize)
    got = out[v2["offset_into_first_range"]:][:b + 1 - a]
    expect(got == BIG[a:b + 1], "hand reconstruction differs")
    st, _, v1 = http("GET", f"{cas}/v1/reconstructions/{state['xet_big']}", auth=xtok,
                     headers={"Range": f"bytes={a}-{b}"})
    expect(st == 200 and v1["fetch_info"] and v1["terms"] == v2["terms"], st)
    st, _, _ = http("GET", f"{cas}/v2/reconstructions/{state['xet_big']}", auth=xtok,
                    headers={"Range": f"bytes={len(BIG)}-{len(BIG) + 5}"})
    expect(st == 416, f"range past the end gave {st}")
    st, _, _ = http("GET", f"{cas}/v2/reconstructions/{state['xet_big']}", auth="xet_bogus")
    expect(st == 401, f"bogus xet token gave {st}")
    return f"{len(v2['terms'])} term(s), offset {v2['offset_into_first_range']}"


@check("CAS rejects a xorb whose content does not match its hash, and a shard naming a missing xorb")
def _():
    _, _, tok = http("GET", f"{HUB.endpoint}/api/models/{MODEL}/xet-write-token/main", auth=TOKEN)
    chunk = b"\x00" + (5).to_bytes(3, "little") + b"\x00" + (5).to_bytes(3, "little") + b"hello"
    st, _, body = http("POST", f"{tok['casUrl']}/v1/xorbs/default/{'ab' * 32}", auth=tok["accessToken"],
                       body=chunk)
    expect(st == 400 and "hash" in body["error"], (st, body))
    from fakehub import xet_format as xf
    fake = b"".join([xf.SHARD_TAG, (2).to_bytes(8, "little"), bytes(8),
                     bytes(32), (0).to_bytes(4, "little"), (1).to_bytes(4, "little"), bytes(8),
                     b"\x11" * 32, bytes(4), (5).to_bytes(4, "little"), (0).to_bytes(4, "little"),
                     (1).to_bytes(4, "little"), xf.BOOKEND_HASH, bytes(16),
                     xf.BOOKEND_HASH, bytes(16)])
    st, _, body = http("POST", f"{tok['casUrl']}/v1/shards", auth=tok["accessToken"], body=fake)
    expect(st == 400 and "not uploaded" in body["error"], (st, body))
    st, _, _ = http("POST", f"{tok['casUrl']}/v1/shards", auth="xet_read_nope", body=fake)
    expect(st == 401, st)
    return "400, 400, 401"


@check("paginated tree listing (page size 7, 30 files in one upload_folder commit)")
def _():
    folder = os.path.join(WORK, "many")
    for i in range(30):
        write(os.path.join(folder, f"d{i % 3}", f"f{i:02d}.txt"), f"file number {i}\n".encode() * (i + 1))
    api.upload_folder(folder_path=folder, path_in_repo="many", repo_id=MODEL)
    s0 = HUB.stats()
    entries = list(api.list_repo_tree(MODEL, path_in_repo="many", recursive=True))
    s1 = HUB.stats()
    files = [e for e in entries if e.__class__.__name__ == "RepoFile"]
    dirs = [e for e in entries if e.__class__.__name__ == "RepoFolder"]
    pages = delta(s0, s1, "repo_tree:GET")
    expect(len(files) == 30 and len(dirs) == 3, (len(files), len(dirs)))
    expect(len({e.path for e in entries}) == len(entries), "duplicate entries across pages")
    expect(pages == -(-33 // 7), f"{pages} pages for 33 entries")
    top = list(api.list_repo_tree(MODEL, path_in_repo="many/d1", expand=True))
    expect(len(top) == 10 and all(e.last_commit is not None for e in top), top[:2])
    info = api.get_paths_info(MODEL, ["many/d2/f02.txt", "many/d0", "missing.txt"])
    expect(sorted(i.path for i in info) == ["many/d0", "many/d2/f02.txt"], info)
    return f"{len(entries)} entries over {pages} pages"


@check("read at a pinned revision after a second commit changes the file")
def _():
    v1, v2 = rand_bytes(200_000, "rev1"), rand_bytes(210_000, "rev2")
    c1 = api.upload_file(path_or_fileobj=v1, path_in_repo="data/changing.bin", repo_id=MODEL).oid
    c2 = api.upload_file(path_or_fileobj=v2, path_in_repo="data/changing.bin", repo_id=MODEL).oid
    expect(c1 != c2, "same commit twice")
    cache = fresh_cache()
    old = hf_hub_download(MODEL, "data/changing.bin", revision=c1, cache_dir=cache)
    new = hf_hub_download(MODEL, "data/changing.bin", cache_dir=cache)
    expect(file_sha(old) == sha(v1), "pinned revision did not give the old bytes")
    expect(file_sha(new) == sha(v2), "main did not give the new bytes")
    sizes = {e.path: e.size for e in api.list_repo_tree(MODEL, path_in_repo="data", revision=c1)}
    expect(sizes == {"data/changing.bin": len(v1)}, sizes)
    expect(api.repo_info(MODEL, revision=c1).sha == c1, "repo_info at a commit")
    commits = [c.commit_id for c in api.list_repo_commits(MODEL)]
    expect(commits[0] == c2 and commits[1] == c1, commits[:3])
    return f"{c1[:10]} -> {c2[:10]}"


@check("dataset repo: create, upload (Xet), list, download")
def _():
    rid = "tester/dataset-a"
    api.create_repo(rid, repo_type="dataset")
    data = rand_bytes(1 * MiB + 3, "dataset")
    api.upload_file(path_or_fileobj=data, path_in_repo="train/part-0.parquet", repo_id=rid, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="tiny.csv", repo_id=rid, repo_type="dataset")
    names = sorted(e.path for e in api.list_repo_tree(rid, repo_type="dataset", recursive=True))
    expect(names == [".gitattributes", "tiny.csv", "train", "train/part-0.parquet"], names)
    cache = fresh_cache()
    p = hf_hub_download(rid, "train/part-0.parquet", repo_type="dataset", cache_dir=cache)
    q = hf_hub_download(rid, "tiny.csv", repo_type="dataset", cache_dir=cache)
    expect(file_sha(p) == sha(data) and open(q, "rb").read() == b"a,b\n1,2\n", "dataset bytes differ")
    expect_raises(RepositoryNotFoundError, lambda: api.repo_info(rid))  # it is not a model
    return "ok"


@check("space repo: create (sdk static), upload, download")
def _():
    rid = "tester/space-a"
    api.create_repo(rid, repo_type="space", space_sdk="static")
    html = b"<html><body>fakehub</body></html>\n"
    blob = rand_bytes(300_000, "space")
    api.upload_file(path_or_fileobj=html, path_in_repo="index.html", repo_id=rid, repo_type="space")
    api.upload_file(path_or_fileobj=blob, path_in_repo="assets/model.bin", repo_id=rid, repo_type="space")
    cache = fresh_cache()
    a = hf_hub_download(rid, "index.html", repo_type="space", cache_dir=cache)
    b = hf_hub_download(rid, "assets/model.bin", repo_type="space", cache_dir=cache)
    expect(open(a, "rb").read() == html and file_sha(b) == sha(blob), "space bytes differ")
    expect(api.space_info(rid).sdk == "static", "sdk")
    return "ok"


BUCKET = "tester/bucket-a"


@check("bucket: create, upload through the bucket batch API (Xet), list with pagination")
def _():
    url = api.create_bucket(BUCKET)
    expect_raises(HfHubHTTPError, lambda: api.create_bucket(BUCKET), status=409)
    s0 = HUB.stats()
    files = [(small_path, "docs/readme.txt"), (mid_path, "blobs/mid.bin"), (big_path, "blobs/big.bin")]
    files += [(f"n{i}".encode() * 50 + bytes([i]), f"many/n{i:02d}.dat") for i in range(12)]
    api.batch_bucket_files(BUCKET, add=files)
    s1 = HUB.stats()
    expect(delta(s0, s1, "bucket_batch:POST") == 1, "one batch call expected")
    tree = list(api.list_bucket_tree(BUCKET, recursive=True))
    paths = [e.path for e in tree if e.type == "file"]
    expect(len(paths) == 15 and "blobs/big.bin" in paths, paths)
    pages = delta(s1, HUB.stats(), "bucket_tree:GET")
    expect(pages >= 3, f"only {pages} listing page(s)")
    top = sorted(e.path for e in api.list_bucket_tree(BUCKET))
    expect(top == ["blobs", "docs", "many"], top)
    info = api.bucket_info(BUCKET)
    expect(info.total_files == 15, info)
    return (f"{url.url}, {len(tree)} entries over {pages} pages, "
            f"{delta(s0, s1, 'xorbs_inserted')} new xorb(s) for 15 files")


@check("bucket: download byte-identical (download_bucket_files), paths-info, resolve")
def _():
    out = os.path.join(WORK, "bucket-out")
    api.download_bucket_files(BUCKET, [("blobs/big.bin", os.path.join(out, "big.bin")),
                                       ("blobs/mid.bin", os.path.join(out, "mid.bin")),
                                       ("docs/readme.txt", os.path.join(out, "readme.txt"))])
    expect(file_sha(os.path.join(out, "big.bin")) == sha(BIG), "big differs")
    expect(file_sha(os.path.join(out, "mid.bin")) == sha(MID), "mid differs")
    expect(open(os.path.join(out, "readme.txt"), "rb").read() == SMALL, "small differs")
    infos = list(api.get_bucket_paths_info(BUCKET, ["blobs/mid.bin", "nope"]))
    expect(len(infos) == 1 and infos[0].size == len(MID), infos)
    meta = api.get_bucket_file_metadata(BUCKET, "blobs/mid.bin")
    expect(meta.size == len(MID) and meta.xet_file_data.file_hash == infos[0].xet_hash, meta)
    return "3 files"


@check("bucket: rename (copyFile + deleteFile in one batch) and delete")
def _():
    src = next(iter(api.get_bucket_paths_info(BUCKET, ["blobs/mid.bin"])))
    s0 = HUB.stats()
    api.batch_bucket_files(BUCKET, copy=[("bucket", BUCKET, src.xet_hash, "renamed/mid.bin")],
                           delete=["blobs/mid.bin"])
    s1 = HUB.stats()
    expect(delta(s0, s1, "xorbs_inserted") == 0, "a rename must not upload data")
    paths = {e.path for e in api.list_bucket_tree(BUCKET, recursive=True) if e.type == "file"}
    expect("renamed/mid.bin" in paths and "blobs/mid.bin" not in paths, sorted(paths))
    out = os.path.join(WORK, "renamed.bin")
    api.download_bucket_files(BUCKET, [("renamed/mid.bin", out)])
    expect(file_sha(out) == sha(MID), "renamed content differs")
    api.batch_bucket_files(BUCKET, delete=["docs/readme.txt"])
    paths = {e.path for e in api.list_bucket_tree(BUCKET, recursive=True) if e.type == "file"}
    expect("docs/readme.txt" not in paths and len(paths) == 14, sorted(paths))
    expect_raises(EntryNotFoundError, lambda: api.get_bucket_file_metadata(BUCKET, "docs/readme.txt"))
    return f"{len(paths)} files left"


@check("bucket: overwrite and a bad path are reported per operation")
def _():
    api.batch_bucket_files(BUCKET, add=[(b"version two\n", "many/n00.dat")])
    out = os.path.join(WORK, "n00.dat")
    api.download_bucket_files(BUCKET, [("many/n00.dat", out)])
    expect(open(out, "rb").read() == b"version two\n", "overwrite not visible")
    err = expect_raises(HfHubHTTPError, lambda: api.batch_bucket_files(BUCKET, delete=["../escape"]))
    return err


@check("401 with a wrong token")
def _():
    bad = HfApi(endpoint=HUB.endpoint, token="hf_wrong_token")
    r1 = expect_raises(HfHubHTTPError, lambda: bad.repo_info(MODEL), status=401)
    expect_raises(HfHubHTTPError, lambda: bad.whoami(), status=401)
    expect_raises(HfHubHTTPError, lambda: hf_hub_download(MODEL, "small.txt", token="hf_wrong_token",
                                                          cache_dir=fresh_cache()), status=401)
    expect_raises(HfHubHTTPError, lambda: bad.list_bucket_tree(BUCKET).__iter__().__next__(), status=401)
    st, h, _ = http("GET", f"{HUB.endpoint}/api/models/{MODEL}/xet-read-token/main", auth="hf_wrong_token")
    expect(st == 401 and h["X-Error-Message"] == "Invalid credentials in Authorization header", st)
    return r1


@check("404 for a missing repo, file, revision and bucket")
def _():
    out = [expect_raises(RepositoryNotFoundError, lambda: api.repo_info("tester/no-such-repo"), status=404),
           expect_raises(RepositoryNotFoundError, lambda: hf_hub_download("tester/no-such-repo", "x",
                                                                          cache_dir=fresh_cache()), status=404),
           expect_raises(EntryNotFoundError, lambda: hf_hub_download(MODEL, "no/such/file.bin",
                                                                     cache_dir=fresh_cache()), status=404),
           expect_raises(RevisionNotFoundError, lambda: hf_hub_download(MODEL, "small.txt", revision="nope",
                                                                        cache_dir=fresh_cache()), status=404),
           expect_raises(RevisionNotFoundError, lambda: hf_hub_download(MODEL, "small.txt", revision="f" * 40,
                                                                        cache_dir=fresh_cache()), status=404),
           expect_raises(EntryNotFoundError, lambda: list(api.list_repo_tree(MODEL, path_in_repo="nope"))),
           expect_raises(BucketNotFoundError, lambda: api.bucket_info("tester/no-such-bucket"), status=404)]
    return "; ".join(out)


# ------------------------------------------------------------------ v1-only server, short-lived Xet tokens

TTL = 5


@check(f"v1 fallback + token refresh: server with --disable-v2 and {TTL}s Xet tokens")
def _():
    hub2 = FakeHub("v1", "--disable-v2", "--xet-token-ttl", str(TTL))
    try:
        api2 = HfApi(endpoint=hub2.endpoint, token=TOKEN)
        rid = "tester/v1-model"
        api2.create_repo(rid)
        data1, data2 = rand_bytes(3 * MiB, "v1-a"), rand_bytes(2 * MiB + 5, "v1-b")
        api2.upload_file(path_or_fileobj=data1, path_in_repo="a.bin", repo_id=rid)
        s0 = hub2.stats()
        # A raw token stops working once expired.
        _, _, tok = http("GET", f"{hub2.endpoint}/api/models/{rid}/xet-read-token/main", auth=TOKEN)
        expect(tok["exp"] - time.time() <= TTL + 1, tok)
        url = f"{tok['casUrl']}/v1/reconstructions/{api2.get_paths_info(rid, ['a.bin'])[0].xet_hash}"
        st1 = http("GET", url, auth=tok["accessToken"])[0]
        time.sleep(TTL + 1.5)
        st2 = http("GET", url, auth=tok["accessToken"])[0]
        expect((st1, st2) == (200, 401), f"before/after expiry: {st1}/{st2}")
        # The real clients keep working past expiry: they must fetch new tokens.
        api2.upload_file(path_or_fileobj=data2, path_in_repo="b.bin", repo_id=rid)
        cache = fresh_cache()
        pa = hf_hub_download(rid, "a.bin", cache_dir=cache, endpoint=hub2.endpoint, token=TOKEN)
        time.sleep(TTL + 1.5)
        pb = hf_hub_download(rid, "b.bin", cache_dir=cache, endpoint=hub2.endpoint, token=TOKEN)
        expect(file_sha(pa) == sha(data1) and file_sha(pb) == sha(data2), "v1 downloads differ")
        s1 = hub2.stats()
        expect(delta(s0, s1, "cas_shard_v1:POST") >= 1, "no v1 shard upload")
        expect(delta(s0, s1, "cas_reconstruction_v1:GET") >= 2, "no v1 reconstructions")
        expect(s1.get("cas_reconstruction_v2:GET", 0) >= 1 and s1.get("cas_shard_v2:POST", 0) >= 1,
               "the client did not try v2 first")
        issued = delta(s0, s1, "xet_tokens_issued")
        expect(issued >= 3, f"only {issued} Xet tokens issued across expiries")
        return (f"v1 shards {delta(s0, s1, 'cas_shard_v1:POST')}, v1 reconstructions "
                f"{delta(s0, s1, 'cas_reconstruction_v1:GET')}, tokens issued {issued}, "
                f"expired-token rejections {s1.get('xet_token_expired', 0)}")
    finally:
        hub2.stop()


# ------------------------------------------------------------------ persistence

@check("restart on the same --data serves the same repos and buckets")
def _():
    HUB.stop()
    hub3 = FakeHub("restart", "--page-size", "7", data=HUB.data)
    try:
        cache = fresh_cache()
        p = hf_hub_download(MODEL, "weights/big.bin", cache_dir=cache, endpoint=hub3.endpoint, token=TOKEN)
        expect(file_sha(p) == sha(BIG), "big differs after restart")
        api3 = HfApi(endpoint=hub3.endpoint, token=TOKEN)
        n = sum(1 for e in api3.list_bucket_tree(BUCKET, recursive=True) if e.type == "file")
        expect(n == 14, n)
        return f"{n} bucket files"
    finally:
        hub3.stop()


# ------------------------------------------------------------------ summary

passed, failed = results.count(True), results.count(False)
try:
    HUB.stop()
except Exception:  # noqa: BLE001
    pass
if ARGS.keep or failed:
    print(f"workdir kept: {WORK}")
else:
    shutil.rmtree(WORK, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
