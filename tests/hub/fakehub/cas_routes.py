"""Xet CAS routes (under <hub>/cas) and the CDN routes (second listener).

CAS calls carry a short-lived Xet token; the CDN serves signed URLs without
any Authorization header, as presigned storage URLs do.
"""

import json
import os
from urllib.parse import urlencode

from . import xet_format as xf
from .cas_store import RangeNotSatisfiable
from .http_util import Response, json_response, parse_multi_range, parse_range
from .repo_store import HubError
from .xet_format import FormatError

H = r"(?P<h>[0-9a-f]{64})"
PFX = r"(?P<prefix>[A-Za-z0-9_-]+)"


def need_xet(app, req, write=False):
    denied = app.auth.check_xet(req.header("Authorization"), write)
    if denied:
        raise HubError(*denied)


def v2_gate(app):
    if app.disable_v2:
        raise HubError(404, "v2 API disabled on this server (--disable-v2)")


def hash_param(req):
    h = req.match.group("h")
    if not xf.is_hash_str(h):
        raise HubError(400, "bad hash")
    return h


# ---------------------------------------------------------------- uploads

def put_xorb(app, req):
    need_xet(app, req, write=True)
    h = hash_param(req)
    body = req.body()
    try:
        inserted = app.cas.put_xorb(h, body)
    except FormatError as e:
        raise HubError(400, f"xorb rejected: {e}")
    app.count("xorb_bytes", len(body))
    if inserted:
        app.count("xorbs_inserted")
    return json_response({"was_inserted": inserted})


def head_xorb(app, req):
    need_xet(app, req)
    idx = app.cas.xorb_index(hash_param(req))
    if idx is None:
        raise HubError(404, "no such xorb")
    return Response(200, b"", [("Content-Length", str(os.path.getsize(app.cas.xorb_path(idx.hash))))])


def _store_shard(app, req):
    need_xet(app, req, write=True)
    try:
        new, shard = app.cas.put_shard(req.body())
    except FormatError as e:
        raise HubError(400, f"shard rejected: {e}")
    app.count("files_registered", new)
    return new, shard


def put_shard_v1(app, req):
    new, _ = _store_shard(app, req)
    return json_response({"result": 1 if new else 0})


def put_shard_v2(app, req):
    v2_gate(app)
    try:
        new, shard = _store_shard(app, req)
    except HubError as e:
        if e.status != 400:
            raise
        lines = [{"type": "error", "message": e.message, "retryable": False}]
    else:
        n = len(shard.files) + len(shard.xorbs)
        lines = [{"type": "validating", "verified": n, "total": n},
                 {"type": "committing", "stage": "uploading"},
                 {"type": "committing", "stage": "syncing"},
                 {"type": "result", "result": 1 if new else 0}]
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    return Response(200, body, content_type="application/x-ndjson")


def no_global_dedup(app, req):
    need_xet(app, req)
    raise HubError(404, "no dedup information for this chunk")


def no_xorb_grants(app, req):
    need_xet(app, req, write=True)
    req.body()
    raise HubError(404, "xorb grants are not offered; upload the xorb directly")


def telemetry(app, req):
    req.body()
    return json_response({})


# ---------------------------------------------------------------- reconstruction

def _plan(app, req, h):
    rec = app.cas.file(h)
    if rec is None:
        raise HubError(404, f"file {h} not found")
    rng = parse_range(req.header("Range"), rec.size)
    start, end = rng if rng else (0, rec.size)
    try:
        return app.cas.plan(h, start, end)
    except RangeNotSatisfiable:
        raise HubError(416, "range not satisfiable")


def _term_json(terms):
    return [{"hash": x, "unpacked_length": n, "range": {"start": a, "end": b}} for x, a, b, n in terms]


def xorb_url(app, xh, b0, b1):
    rng = f"bytes={b0}-{b1}"
    return f"{app.cdn_base}/xorbs/{xh}?{urlencode(app.auth.sign('/xorbs/' + xh, rng))}"


def reconstruction_v1(app, req):
    need_xet(app, req)
    h = hash_param(req)
    off, terms, fetch = _plan(app, req, h)
    info = {xh: [{"range": {"start": a, "end": b}, "url": xorb_url(app, xh, b0, b1),
                  "url_range": {"start": b0, "end": b1}} for a, b, b0, b1 in spans]
            for xh, spans in fetch.items()}
    return json_response({"offset_into_first_range": off, "terms": _term_json(terms), "fetch_info": info})


def reconstruction_v2(app, req):
    v2_gate(app)
    need_xet(app, req)
    h = hash_param(req)
    off, terms, fetch = _plan(app, req, h)
    xorbs = {xh: [{"url": xorb_url(app, xh, b0, b1),
                   "ranges": [{"chunks": {"start": a, "end": b}, "bytes": {"start": b0, "end": b1}}]}
                  for a, b, b0, b1 in spans]
             for xh, spans in fetch.items()}
    return json_response({"offset_into_first_range": off, "terms": _term_json(terms), "xorbs": xorbs})


def reconstruction_batch(app, req):
    need_xet(app, req)
    body = req.json() or []
    files, info = {}, {}
    for item in body:
        h = item.get("hash") if isinstance(item, dict) else item
        if not isinstance(h, str) or app.cas.file(h) is None:
            continue
        _, terms, fetch = app.cas.plan(h)
        files[h] = _term_json(terms)
        for xh, spans in fetch.items():
            have = info.setdefault(xh, [])
            for a, b, b0, b1 in spans:
                entry = {"range": {"start": a, "end": b}, "url": xorb_url(app, xh, b0, b1),
                         "url_range": {"start": b0, "end": b1}}
                if entry not in have:
                    have.append(entry)
    return json_response({"files": files, "fetch_info": info})


def head_file(app, req):
    need_xet(app, req)
    rec = app.cas.file(hash_param(req))
    if rec is None:
        raise HubError(404, "file not found")
    return Response(200, b"", [("Content-Length", str(rec.size))])


CAS_ROUTES = [
    (("POST",), rf"/cas/v1/xorbs/{PFX}/{H}", put_xorb, "cas_xorb_upload"),
    (("HEAD",), rf"/cas/v1/xorbs/{PFX}/{H}", head_xorb, "cas_xorb_head"),
    (("POST",), r"/cas/v1/shards", put_shard_v1, "cas_shard_v1"),
    (("POST",), r"/cas/v2/shards", put_shard_v2, "cas_shard_v2"),
    (("GET",), rf"/cas/v1/chunks/{PFX}/{H}", no_global_dedup, "cas_dedup_query"),
    (("POST",), rf"/cas/v1/xorb-grants/{PFX}/{H}", no_xorb_grants, "cas_xorb_grant"),
    (("GET",), rf"/cas/v1/reconstructions/{H}", reconstruction_v1, "cas_reconstruction_v1"),
    (("GET",), rf"/cas/v2/reconstructions/{H}", reconstruction_v2, "cas_reconstruction_v2"),
    (("POST",), r"/cas/v1/reconstructions", reconstruction_batch, "cas_reconstruction_batch"),
    (("HEAD",), rf"/cas/v1/files/{H}", head_file, "cas_file_head"),
    (("POST",), r"/cas/v1/telemetry", telemetry, "cas_telemetry"),
    (("POST",), r"/v1/telemetry", telemetry, "cas_telemetry_root"),
]


# ---------------------------------------------------------------- CDN listener

def cdn_xorb(app, req):
    h = hash_param(req)
    path = "/xorbs/" + h
    if not app.auth.verify(path, req.query):
        raise HubError(403, "bad or expired signature")
    signed = req.query.get("range", "")
    asked = req.header("Range") or signed
    if signed and asked.replace(" ", "") != signed:
        raise HubError(403, f"Range {asked!r} differs from the signed range {signed!r}")
    fpath = app.cas.xorb_path(h)
    size = os.path.getsize(fpath)
    ranges = parse_multi_range(asked) if asked else [(0, size - 1)]
    if any(b >= size for _, b in ranges):
        raise HubError(416, "range outside the xorb")
    with open(fpath, "rb") as f:
        parts = []
        for a, b in ranges:
            f.seek(a)
            parts.append((a, b, f.read(b + 1 - a)))
    if not asked:
        return Response(200, parts[0][2], content_type="application/octet-stream")
    if len(parts) == 1:
        a, b, data = parts[0]
        return Response(206, data, [("Content-Range", f"bytes {a}-{b}/{size}")], "application/octet-stream")
    boundary = "fakehub-byteranges"
    out = []
    for a, b, data in parts:
        out.append(f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                   f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return Response(206, b"".join(out), content_type=f"multipart/byteranges; boundary={boundary}")


def cdn_file(app, req):
    """Plain HTTP download of a whole Xet file (what a resolve redirect points at)."""
    h = hash_param(req)
    if not app.auth.verify("/files/" + h, req.query):
        raise HubError(403, "bad or expired signature")
    rec = app.cas.file(h)
    if rec is None:
        raise HubError(404, "file not found")
    rng = parse_range(req.header("Range"), rec.size)
    headers = [("Accept-Ranges", "bytes"), ("ETag", f'"{h}"')]
    if rec.size == 0:
        return Response(200, b"", headers, "application/octet-stream")
    start, end = rng if rng else (0, rec.size)
    body = app.cas.iter_bytes(h, start, end) if req.method == "GET" else iter(())
    status = 206 if rng else 200
    if rng:
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{rec.size}"))
    return Response(status, body, headers, "application/octet-stream", length=end - start)


CDN_ROUTES = [
    (("GET",), rf"/xorbs/{H}", cdn_xorb, "cdn_xorb"),
    (("GET", "HEAD"), rf"/files/{H}", cdn_file, "cdn_file"),
]
