"""Hub API routes: repos, commits, listings, resolve, Xet tokens, buckets."""

import base64
import hashlib
import json
from urllib.parse import parse_qs

from .http_util import Response, json_response, link_next, parse_range
from .repo_store import REPO_TYPES, HubError, list_dir, now_iso

T = r"(?P<t>models|datasets|spaces)"
ID = r"(?P<id>[^/]+/[^/]+)"
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def kind_of(req):
    return req.group("t")[:-1]


# ---------------------------------------------------------------- access

def identity(app, req):
    return app.auth.hub_identity(req.header("Authorization"))


def need_user(app, req):
    if identity(app, req) != "user":
        raise HubError(401, "Authorization header is required for this call")


def get_repo(app, req, kind=None, write=False):
    kind = kind or kind_of(req)
    repo = app.repos.get_repo(kind, req.group("id"))
    who = identity(app, req)
    if write and who != "user":
        raise HubError(401, "Authorization header is required for this call")
    if repo is None or (repo.private and who != "user"):
        raise HubError(404, f"Repository {req.group('id')} not found", "RepoNotFound")
    return repo


def get_bucket(app, req, write=False):
    b = app.repos.get_bucket(req.group("id"))
    who = identity(app, req)
    if write and who != "user":
        raise HubError(401, "Authorization header is required for this call")
    if b is None or (b.private and who != "user"):
        raise HubError(404, f"Bucket {req.group('id')} not found", "RepoNotFound")
    return b


def resolve_rev(repo, rev):
    sha = repo.resolve(rev)
    if sha is None:
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    return sha


def paginate(app, req, items):
    """Slice `items` by the opaque cursor; returns (page, headers)."""
    size = app.page_size
    try:
        start = int(base64.urlsafe_b64decode(req.query.get("cursor", "") + "==").decode() or 0)
    except ValueError:
        raise HubError(400, "invalid cursor")
    page = items[start:start + size]
    headers = []
    if start + size < len(items):
        cursor = base64.urlsafe_b64encode(str(start + size).encode()).decode().rstrip("=")
        headers.append(("Link", link_next(req, cursor)))
    return page, headers


def truthy(v):
    return str(v).lower() in ("1", "true", "yes")


# ---------------------------------------------------------------- user, repo admin

def whoami(app, req):
    need_user(app, req)
    return json_response({"type": "user", "id": "0" * 24, "name": app.user, "fullname": app.user,
                          "orgs": [], "auth": {"type": "access_token",
                                               "accessToken": {"displayName": "fakehub", "role": "write"}}})


def repo_url(app, req, kind, repo_id):
    return f"{req.base}/{PREFIX[kind]}{repo_id}"


def create_repo(app, req):
    need_user(app, req)
    body = req.json() or {}
    kind = body.get("type") or "model"
    if kind not in REPO_TYPES:
        raise HubError(400, f"invalid repo type {kind!r}")
    name, org = body.get("name"), body.get("organization") or app.user
    if not name or "/" in name:
        raise HubError(400, "invalid repo name")
    if kind == "space" and not body.get("sdk"):
        raise HubError(400, "a space needs an sdk")
    private = body.get("private") or body.get("visibility") == "private"
    repo_id = f"{org}/{name}"
    try:
        app.repos.create_repo(kind, repo_id, private, body.get("sdk"))
    except HubError as e:
        if e.status != 409:
            raise
        # the client reads "url" from a 409 too (create_repo with exist_ok)
        return json_response({"error": e.message, "url": repo_url(app, req, kind, repo_id)}, 409,
                             [("X-Error-Message", e.message)])
    return json_response({"url": repo_url(app, req, kind, repo_id), "name": repo_id, "id": repo_id})


def delete_repo(app, req):
    need_user(app, req)
    body = req.json() or {}
    kind = body.get("type") or "model"
    org = body.get("organization") or app.user
    app.repos.delete_repo(kind, f"{org}/{body.get('name')}")
    return json_response({})


def repo_info(app, req):
    repo = get_repo(app, req)
    sha = resolve_rev(repo, req.group("rev") or "main")
    files = repo.files(sha)
    c = repo.commit(sha)
    info = {"id": repo.id, "_id": sha[:24], "author": repo.id.split("/")[0], "sha": sha,
            "private": repo.private, "gated": False, "disabled": False, "lastModified": c["date"],
            "createdAt": repo.d["created"], "tags": [], "downloads": 0, "likes": 0,
            "siblings": [sibling(p, e) for p, e in sorted(files.items())],
            "usedStorage": sum(e["size"] for e in files.values())}
    if repo.type == "space":
        info["sdk"] = repo.d.get("sdk")
    return json_response(info)


def sibling(path, e):
    s = {"rfilename": path, "size": e["size"], "blobId": e["oid"]}
    if e["kind"] == "lfs":
        s["lfs"] = {"sha256": e["sha256"], "size": e["size"], "pointerSize": e["pointerSize"]}
    return s


# ---------------------------------------------------------------- listings

def file_entry(repo, sha, path, e, expand):
    d = {"type": "file", "oid": e["oid"], "size": e["size"], "path": path}
    if e["kind"] == "lfs":
        d["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": e["pointerSize"]}
        d["xetHash"] = e["xet"]
    if expand:
        d["lastCommit"] = repo.last_commit_for(sha, path)
    return d


def dir_entry(repo, sha, path, files, expand):
    pre = path + "/"
    oid = hashlib.sha1(json.dumps(sorted((p, e["oid"]) for p, e in files.items()
                                         if p.startswith(pre))).encode()).hexdigest()
    d = {"type": "directory", "oid": oid, "size": 0, "path": path}
    if expand:
        d["lastCommit"] = repo.last_commit_for(sha, path)
    return d


def repo_tree(app, req):
    repo = get_repo(app, req)
    sha = resolve_rev(repo, req.group("rev"))
    files = repo.files(sha)
    path = (req.group("path") or "").strip("/")
    try:
        names, dirs = list_dir(files, path, truthy(req.query.get("recursive", "false")))
    except KeyError:
        raise HubError(404, f"{path} does not exist on {req.group('rev')}", "EntryNotFound")
    order = sorted([(d, True) for d in dirs] + [(n, False) for n in names])
    page, headers = paginate(app, req, order)
    expand = truthy(req.query.get("expand", "false"))
    out = [dir_entry(repo, sha, p, files, expand) if is_dir else file_entry(repo, sha, p, files[p], expand)
           for p, is_dir in page]
    return json_response(out, headers=headers)


def repo_paths_info(app, req):
    repo = get_repo(app, req)
    sha = resolve_rev(repo, req.group("rev"))
    files = repo.files(sha)
    ctype = (req.header("Content-Type") or "").split(";")[0]
    if ctype == "application/json":
        body = req.json() or {}
        paths, expand = body.get("paths", []), truthy(body.get("expand", False))
    else:
        form = parse_qs(req.body().decode(), keep_blank_values=True)
        paths, expand = form.get("paths", []), truthy((form.get("expand") or ["false"])[-1])
    out = []
    for p in paths:
        p = p.strip("/")
        if p in files:
            out.append(file_entry(repo, sha, p, files[p], expand))
        elif any(f.startswith(p + "/") for f in files):
            out.append(dir_entry(repo, sha, p, files, expand))
    return json_response(out)


def repo_commits(app, req):
    repo = get_repo(app, req)
    sha = resolve_rev(repo, req.group("rev"))
    items = [{"id": s, "title": c["title"], "message": c["message"], "date": c["date"],
              "authors": [{"user": app.user}]} for s, c in repo.history(sha)]
    page, headers = paginate(app, req, items)
    return json_response(page, headers=headers)


# ---------------------------------------------------------------- upload / commit

def preupload(app, req):
    repo = get_repo(app, req, write=True)
    sha = resolve_rev(repo, req.group("rev"))
    files = repo.files(sha)
    body = req.json() or {}
    out = []
    for f in body.get("files", []):
        path = f.get("path", "")
        sample = base64.b64decode(f.get("sample", ""))
        mode = app.repos.upload_mode(repo, sha, path, int(f.get("size", 0)), sample)
        cur = files.get(path)
        oid = None
        if cur is not None:
            oid = cur["sha256"] if cur["kind"] == "lfs" else cur["oid"]
        out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return json_response({"files": out, "commitOid": sha})


def commit(app, req):
    repo = get_repo(app, req, write=True)
    if truthy(req.query.get("create_pr", "false")):
        raise HubError(400, "pull requests are not supported by this test server")
    lines = [json.loads(line) for line in req.body().splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "commit payload must start with a header line")
    ops = [(item.get("key"), item.get("value") or {}) for item in lines[1:]]
    branch = req.group("rev")
    sha = app.repos.commit(repo, branch, lines[0].get("value") or {}, ops, app.cas)
    url = f"{repo_url(app, req, repo.type, repo.id)}/commit/{sha}"
    return json_response({"success": True, "commitOid": sha, "commitUrl": url,
                          "pullRequestUrl": None, "hookOutput": ""})


# ---------------------------------------------------------------- Xet tokens

def token_response(app, req, scope, write):
    tok, exp = app.auth.issue_xet(scope, write)
    cas = app.cas_url(req)
    headers = [("X-Xet-Cas-Url", cas), ("X-Xet-Access-Token", tok), ("X-Xet-Token-Expiration", str(exp))]
    return json_response({"accessToken": tok, "exp": exp, "casUrl": cas}, headers=headers)


def repo_xet_token(app, req):
    write = req.group("mode") == "write"
    repo = get_repo(app, req, write=write)
    resolve_rev(repo, req.group("rev"))
    return token_response(app, req, f"{repo.type}s/{repo.id}", write)


def bucket_xet_token(app, req):
    write = req.group("mode") == "write"
    b = get_bucket(app, req, write=write)
    return token_response(app, req, f"buckets/{b.id}", write)


# ---------------------------------------------------------------- resolve

def xet_redirect(app, req, xet, size, etag, refresh_route, extra=()):
    """302 to the signed CDN URL of a Xet file, carrying the Xet headers the client reads."""
    loc = app.cdn_file_url(xet)
    recon = f"{app.cas_url(req)}/v2/reconstructions/{xet}"
    headers = [("Location", loc), ("X-Xet-Hash", xet), ("X-Linked-Size", str(size)),
               ("X-Linked-Etag", f'"{etag}"'), ("ETag", f'"{etag}"'),
               ("Link", f'<{refresh_route}>; rel="xet-auth", <{recon}>; rel="xet-reconstruction-info"'),
               ("Accept-Ranges", "bytes")] + list(extra)
    return Response(302, b"", headers)


def resolve(app, req):
    kind = (req.group("t") or "models")[:-1]
    repo = get_repo(app, req, kind=kind)
    sha = resolve_rev(repo, req.group("rev"))
    path = req.group("path")
    e = repo.files(sha).get(path)
    if e is None:
        raise HubError(404, f"{path} does not exist on {req.group('rev')}", "EntryNotFound")
    common = [("X-Repo-Commit", sha)]
    if e["kind"] == "lfs":
        route = f"{req.base}/api/{kind}s/{repo.id}/xet-read-token/{sha}"
        return xet_redirect(app, req, e["xet"], e["size"], e["sha256"], route, common)
    data = app.repos.blob(e["oid"])
    return ranged_bytes(req, data, common + [("ETag", f'"{e["oid"]}"')])


def ranged_bytes(req, data, headers):
    rng = parse_range(req.header("Range"), len(data))
    headers = headers + [("Accept-Ranges", "bytes")]
    if rng is None:
        return Response(200, data, headers, "application/octet-stream")
    a, b = rng
    headers.append(("Content-Range", f"bytes {a}-{b - 1}/{len(data)}"))
    return Response(206, data[a:b], headers, "application/octet-stream")


def bucket_resolve(app, req):
    b = get_bucket(app, req)
    path = req.group("path")
    f = b.files.get(path)
    if f is None:
        raise HubError(404, f"{path} does not exist in bucket {b.id}", "EntryNotFound")
    route = f"{req.base}/api/buckets/{b.id}/xet-read-token"
    return xet_redirect(app, req, f["xetHash"], f["size"], f["xetHash"], route)


# ---------------------------------------------------------------- buckets

def bucket_json(b):
    return {"id": b.id, "private": b.private, "createdAt": b.d["created"],
            "size": sum(f["size"] for f in b.files.values()), "totalFiles": len(b.files)}


def create_bucket(app, req):
    need_user(app, req)
    body = req.json() or {}
    ns, name = req.group("id").split("/")
    if ns == "me":
        ns = app.user
    private = body.get("private") or body.get("visibility") == "private"
    b = app.repos.create_bucket(f"{ns}/{name}", private)
    return json_response({"url": f"{req.base}/buckets/{b.id}", "id": b.id, "name": b.id})


def bucket_info(app, req):
    return json_response(bucket_json(get_bucket(app, req)))


def delete_bucket(app, req):
    need_user(app, req)
    get_bucket(app, req, write=True)
    app.repos.delete_bucket(req.group("id"))
    return json_response({})


def list_buckets(app, req):
    ns = req.group("ns")
    who = identity(app, req)
    if ns == "me":
        need_user(app, req)
        ns = app.user
    items = [bucket_json(b) for bid, b in sorted(app.repos.buckets.items())
             if bid.split("/")[0] == ns and (not b.private or who == "user")]
    page, headers = paginate(app, req, items)
    return json_response(page, headers=headers)


def bucket_file_json(path, f):
    return {"type": "file", "path": path, "size": f["size"], "xetHash": f["xetHash"],
            "mtime": f["mtime"], "uploadedAt": f["uploadedAt"]}


def bucket_tree(app, req):
    b = get_bucket(app, req)
    prefix = (req.group("path") or "").strip("/")
    files = dict(b.files)
    try:
        names, dirs = list_dir(files, prefix, truthy(req.query.get("recursive", "false")))
    except KeyError:
        names, dirs = [], set()
    order = sorted([(d, True) for d in dirs] + [(n, False) for n in names])
    page, headers = paginate(app, req, order)
    out = []
    for p, is_dir in page:
        if is_dir:
            newest = max((f["uploadedAt"] for q, f in files.items() if q.startswith(p + "/")), default=now_iso())
            out.append({"type": "directory", "path": p, "uploadedAt": newest})
        else:
            out.append(bucket_file_json(p, files[p]))
    return json_response(out, headers=headers)


def bucket_paths_info(app, req):
    b = get_bucket(app, req)
    paths = (req.json() or {}).get("paths", [])
    if len(paths) > 1000:
        raise HubError(400, "at most 1000 paths per call")
    return json_response([bucket_file_json(p, b.files[p]) for p in paths if p in b.files])


def bucket_batch(app, req):
    b = get_bucket(app, req, write=True)
    ops = []
    for line in req.body().splitlines():
        if line.strip():
            try:
                ops.append(json.loads(line))
            except ValueError:
                raise HubError(400, "batch body must be NDJSON")

    def source_lookup(kind, source_id, xet):
        if kind == "bucket":
            src = app.repos.get_bucket(source_id or "")
            return src is not None and any(f["xetHash"] == xet for f in src.files.values())
        src = app.repos.get_repo(kind or "", source_id or "")
        return src is not None and any(e.get("xet") == xet for c in src.d["commits"].values()
                                       for e in c["files"].values())

    failed = app.repos.bucket_batch(b, ops, app.cas, source_lookup)
    status = 422 if ops and len(failed) == len(ops) else 200
    return json_response({"failed": failed}, status)


def validate_yaml(app, req):
    """Model-card metadata check the client runs before committing a README.md: all accepted."""
    req.body()
    return json_response({"errors": [], "warnings": []})


def not_found(app, req):
    raise HubError(404, "not found")


def stats(app, req):
    need_user(app, req)
    return json_response(app.snapshot_stats())


REV = r"(?P<rev>[^/]+)"
ROUTES = [
    (("GET",), r"/api/whoami-v2", whoami, "whoami"),
    (("POST",), r"/api/validate-yaml", validate_yaml, "validate_yaml"),
    (("POST",), r"/api/repos/create", create_repo, "repo_create"),
    (("DELETE",), r"/api/repos/delete", delete_repo, "repo_delete"),
    (("GET",), rf"/api/{T}/{ID}(?:/revision/{REV})?", repo_info, "repo_info"),
    (("GET",), rf"/api/{T}/{ID}/tree/{REV}(?:/(?P<path>.*))?", repo_tree, "repo_tree"),
    (("POST",), rf"/api/{T}/{ID}/paths-info/{REV}", repo_paths_info, "repo_paths_info"),
    (("GET",), rf"/api/{T}/{ID}/commits/{REV}", repo_commits, "repo_commits"),
    (("POST",), rf"/api/{T}/{ID}/preupload/{REV}", preupload, "preupload"),
    (("POST",), rf"/api/{T}/{ID}/commit/{REV}", commit, "commit"),
    (("GET",), rf"/api/{T}/{ID}/xet-(?P<mode>read|write)-token/{REV}", repo_xet_token, "xet_token"),
    (("GET", "HEAD"), rf"/(?:(?P<t>datasets|spaces)/)?{ID}/resolve/{REV}/(?P<path>.+)", resolve, "resolve"),
    (("GET",), r"/api/buckets/(?P<ns>[^/]+)", list_buckets, "bucket_list"),
    (("POST",), rf"/api/buckets/{ID}", create_bucket, "bucket_create"),
    (("GET",), rf"/api/buckets/{ID}", bucket_info, "bucket_info"),
    (("DELETE",), rf"/api/buckets/{ID}", delete_bucket, "bucket_delete"),
    (("GET",), rf"/api/buckets/{ID}/tree(?:/(?P<path>.*))?", bucket_tree, "bucket_tree"),
    (("POST",), rf"/api/buckets/{ID}/paths-info", bucket_paths_info, "bucket_paths_info"),
    (("POST",), rf"/api/buckets/{ID}/batch", bucket_batch, "bucket_batch"),
    (("GET",), rf"/api/buckets/{ID}/xet-(?P<mode>read|write)-token", bucket_xet_token, "xet_token"),
    (("GET", "HEAD"), rf"/buckets/{ID}/resolve/(?P<path>.+)", bucket_resolve, "bucket_resolve"),
    (("GET",), r"/_fakehub/stats", stats, "stats"),
]
