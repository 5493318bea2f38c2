"""Hub-side state: git-like repos (model/dataset/space) and Xet buckets.

A repo is a chain of commits; each commit holds the full file table of its
snapshot, so any revision (branch or commit sha) can be read back. Small
"regular" files keep their bytes as git blobs under <data>/hub/blobs; "lfs"
files point at a Xet file (by sha256 and xet hash) stored in the CAS.
Buckets are flat, mutable path -> Xet file tables.

Everything is persisted as JSON under <data>/hub so a restart keeps state.
"""

import base64
import fnmatch
import hashlib
import json
import os
import threading
import time
from datetime import datetime, timezone

REPO_TYPES = ("model", "dataset", "space")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
DEFAULT_GITATTRIBUTES = "".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n"
    for p in ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.npy", "*.npz",
              "*.parquet", "*.arrow", "*.gz", "*.zip", "*.tar", "*.zst", "*.pkl", "*.msgpack"))


class HubError(Exception):
    """An API error with its HTTP status and the Hub's X-Error-Code."""

    def __init__(self, status, message, code=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def now_iso(ts=None):
    t = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def check_path(path, what="path"):
    """Reject paths a git tree or bucket could not hold."""
    bad = (not path or path.startswith("/") or path.endswith("/") or "//" in path or "\\" in path
           or "\0" in path or any(p in (".", "..") for p in path.split("/")))
    if bad or path == ".git" or path.startswith(".git/"):
        raise HubError(400, f"invalid {what}: {path!r}")


def parent_dirs(path):
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _atomic_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{threading.get_ident()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def list_dir(table, path, recursive):
    """(files, dirs) directly under / recursively under `path` ('' = root) of {file_path: value}.

    Raises KeyError when `path` is not a directory of the table.
    """
    prefix = path + "/" if path else ""
    files, dirs = [], set()
    found = not path
    for p in table:
        if not p.startswith(prefix):
            continue
        found = True
        rest = p[len(prefix):]
        if "/" not in rest:
            files.append(p)
        elif recursive:
            files.append(p)
            for d in parent_dirs(rest):
                dirs.add(prefix + d)
        else:
            dirs.add(prefix + rest.split("/", 1)[0])
    if not found:
        raise KeyError(path)
    return files, dirs


class Repo:
    def __init__(self, d):
        self.d = d

    type = property(lambda s: s.d["type"])
    id = property(lambda s: s.d["id"])
    private = property(lambda s: s.d["private"])

    def resolve(self, rev):
        """Commit sha for a branch name or a full commit sha, else None."""
        if rev in self.d["refs"]:
            return self.d["refs"][rev]
        if len(rev) == 40 and rev in self.d["commits"]:
            return rev
        return None

    def files(self, sha):
        return self.d["commits"][sha]["files"]

    def commit(self, sha):
        return self.d["commits"][sha]

    def history(self, sha):
        while sha:
            yield sha, self.d["commits"][sha]
            sha = self.d["commits"][sha]["parent"]

    def last_commit_for(self, sha, path):
        """The newest commit at or before `sha` that changed `path` (file or directory)."""
        def view(files):
            if path in files:
                return files[path]["oid"]
            pre = path + "/"
            return sorted((p, e["oid"]) for p, e in files.items() if p.startswith(pre))
        best = None
        for csha, c in self.history(sha):
            parent = c["parent"]
            if parent is None or view(self.files(parent)) != view(c["files"]):
                best = (csha, c)
                break
        csha, c = best if best else (sha, self.commit(sha))
        return {"id": csha, "title": c["title"], "date": c["date"]}


class Bucket:
    def __init__(self, d):
        self.d = d

    id = property(lambda s: s.d["id"])
    private = property(lambda s: s.d["private"])
    files = property(lambda s: s.d["files"])


SAVE_DELAY = 0.5


class RepoStore:
    def __init__(self, root):
        self.root = root
        self.save_lock = threading.Lock()
        self.unsaved = {}
        self.blob_dir = os.path.join(root, "blobs")
        os.makedirs(self.blob_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.repos = {}
        self.buckets = {}
        self.serial = 0
        for kind in REPO_TYPES:
            base = os.path.join(root, "repos", kind)
            for dirpath, _, names in os.walk(base):
                for n in names:
                    if n.endswith(".json"):
                        with open(os.path.join(dirpath, n)) as f:
                            d = json.load(f)
                        self.repos[(d["type"], d["id"])] = Repo(d)
        for dirpath, _, names in os.walk(os.path.join(root, "buckets")):
            for n in names:
                if n.endswith(".json"):
                    with open(os.path.join(dirpath, n)) as f:
                        d = json.load(f)
                    self.buckets[d["id"]] = Bucket(d)

    # ------------------------------------------------------------ persistence

    def _save_repo(self, repo):
        _atomic_json(os.path.join(self.root, "repos", repo.type, repo.id + ".json"), repo.d)

    def _save_bucket(self, b):
        """Writes the bucket's state at most every SAVE_DELAY seconds: a client making
        thousands of one-file batches (nfsgw's conformance suite does) must not rewrite the
        whole table each time. `flush` writes what is pending (at shutdown)."""
        with self.save_lock:
            if b.id in self.unsaved:
                return
            self.unsaved[b.id] = b
        timer = threading.Timer(SAVE_DELAY, self._write_bucket, (b.id,))
        timer.daemon = True
        timer.start()

    def _write_bucket(self, bucket_id):
        with self.lock, self.save_lock:
            b = self.unsaved.pop(bucket_id, None)
            if b is not None:
                _atomic_json(os.path.join(self.root, "buckets", b.id + ".json"), b.d)

    def flush(self):
        for bucket_id in list(self.unsaved):
            self._write_bucket(bucket_id)

    def put_blob(self, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = os.path.join(self.blob_dir, oid)
        if not os.path.exists(path):
            tmp = f"{path}.tmp{threading.get_ident()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return oid

    def blob(self, oid) -> bytes:
        with open(os.path.join(self.blob_dir, oid), "rb") as f:
            return f.read()

    # ------------------------------------------------------------ repos

    def get_repo(self, kind, repo_id):
        return self.repos.get((kind, repo_id))

    def create_repo(self, kind, repo_id, private=False, sdk=None):
        with self.lock:
            if (kind, repo_id) in self.repos:
                raise HubError(409, f"You already created this {kind} repo: {repo_id}")
            d = {"type": kind, "id": repo_id, "private": bool(private), "sdk": sdk,
                 "created": now_iso(), "refs": {}, "commits": {}}
            repo = Repo(d)
            repo.d["refs"]["main"] = self._new_commit(repo, None, "initial commit", "", {
                ".gitattributes": self._regular_entry(DEFAULT_GITATTRIBUTES.encode())})
            self.repos[(kind, repo_id)] = repo
            self._save_repo(repo)
            return repo

    def delete_repo(self, kind, repo_id):
        with self.lock:
            repo = self.repos.pop((kind, repo_id), None)
            if repo is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            os.remove(os.path.join(self.root, "repos", kind, repo_id + ".json"))

    def _regular_entry(self, data):
        return {"kind": "regular", "size": len(data), "oid": self.put_blob(data)}

    @staticmethod
    def _lfs_entry(sha256, size, xet_hash):
        ptr = lfs_pointer(sha256, size)
        return {"kind": "lfs", "size": size, "oid": git_blob_oid(ptr), "pointerSize": len(ptr),
                "sha256": sha256, "xet": xet_hash}

    def _new_commit(self, repo, parent, title, message, files):
        self.serial += 1
        date = now_iso()
        digest = json.dumps([parent, title, message, date, self.serial, time.time_ns(),
                             sorted((p, e["oid"]) for p, e in files.items())])
        sha = hashlib.sha1(digest.encode()).hexdigest()
        repo.d["commits"][sha] = {"parent": parent, "title": title, "message": message,
                                  "date": date, "files": files}
        return sha

    def upload_mode(self, repo, sha, path, size, sample: bytes):
        """'lfs' or 'regular', decided like the Hub: size, binary content, .gitattributes."""
        if size == 0:
            return "regular"
        if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
            return "lfs"
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            # a multibyte character may be cut at the end of the 512-byte sample
            try:
                sample[:-3].decode("utf-8")
            except UnicodeDecodeError:
                return "lfs"
        attrs = repo.files(sha).get(".gitattributes")
        if attrs and attrs["kind"] == "regular":
            name = path.rsplit("/", 1)[-1]
            for line in self.blob(attrs["oid"]).decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                    pat = parts[0]
                    if fnmatch.fnmatchcase(path, pat) or ("/" not in pat and fnmatch.fnmatchcase(name, pat)):
                        return "lfs"
        return "regular"

    def commit(self, repo, branch, header, ops, cas):
        """Apply NDJSON commit operations on top of `branch`; returns the new commit sha."""
        with self.lock:
            if branch not in repo.d["refs"]:
                if repo.resolve(branch):
                    raise HubError(400, "commits can only be made on a branch")
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo.d["refs"][branch]
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, f"A commit has happened since. Parent commit {parent_commit} is not the head")
            files = dict(repo.files(head))
            for key, value in ops:
                path = value.get("path", "")
                check_path(path.rstrip("/") if key == "deletedFolder" else path)
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, "only base64 content is supported")
                    files[path] = self._regular_entry(base64.b64decode(value.get("content", "")))
                elif key == "lfsFile":
                    files[path] = self._lfs_from_oid(repo, value, cas)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"{path} does not exist in {branch}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    pre = path.rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(pre)]
                    if not gone:
                        raise HubError(404, f"folder {path} does not exist in {branch}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            all_dirs = {d for p in files for d in parent_dirs(p)}
            clash = sorted(all_dirs & set(files))
            if clash:
                raise HubError(422, f"{clash[0]} would be both a file and a folder")
            title = header.get("summary") or "commit"
            sha = self._new_commit(repo, head, title, header.get("description", ""), files)
            repo.d["refs"][branch] = sha
            self._save_repo(repo)
            return sha

    def _lfs_from_oid(self, repo, value, cas):
        sha = str(value.get("oid", "")).lower()
        if value.get("algo", "sha256") != "sha256" or len(sha) != 64:
            raise HubError(400, "lfsFile needs a sha256 oid")
        xet = cas.file_by_sha256(sha)
        if xet is None:
            raise HubError(422, f"LFS object {sha} for {value.get('path')} was never uploaded "
                                "(no Xet shard carries this sha256)")
        size = cas.file(xet).size
        if value.get("size") is not None and int(value["size"]) != size:
            raise HubError(422, f"LFS object {sha} has {size} bytes, commit says {value['size']}")
        return self._lfs_entry(sha, size, xet)

    # ------------------------------------------------------------ buckets

    def get_bucket(self, bucket_id):
        return self.buckets.get(bucket_id)

    def create_bucket(self, bucket_id, private=False):
        with self.lock:
            if bucket_id in self.buckets:
                raise HubError(409, f"You already created this bucket: {bucket_id}")
            b = Bucket({"id": bucket_id, "private": bool(private), "created": now_iso(), "files": {}})
            self.buckets[bucket_id] = b
            self._save_bucket(b)
            return b

    def delete_bucket(self, bucket_id):
        with self.lock:
            if self.buckets.pop(bucket_id, None) is None:
                raise HubError(404, "Bucket not found", "RepoNotFound")
            os.remove(os.path.join(self.root, "buckets", bucket_id + ".json"))

    def bucket_batch(self, bucket, ops, cas, source_lookup):
        """Apply addFile/copyFile/deleteFile in order; returns the list of failures."""
        failed = []
        with self.lock:
            files = bucket.files
            for op in ops:
                kind, path = op.get("type"), op.get("path", "")
                try:
                    check_bucket_path(path)
                    if kind in ("addFile", "copyFile"):
                        xet = str(op.get("xetHash", "")).lower()
                        rec = cas.file(xet)
                        if rec is None:
                            raise HubError(422, f"unknown xet hash {xet}")
                        if kind == "copyFile" and not source_lookup(op.get("sourceRepoType"),
                                                                    op.get("sourceRepoId"), xet):
                            raise HubError(404, "source does not hold a file with this xet hash")
                        dirs = parent_dirs(path)
                        if any(d in files for d in dirs):
                            raise HubError(409, "a parent of this path is a file")
                        if any(p.startswith(path + "/") for p in files):
                            raise HubError(409, "this path is a folder")
                        mtime = op.get("mtime")
                        files[path] = {"xetHash": xet, "size": rec.size,
                                       "mtime": now_iso(mtime / 1000) if isinstance(mtime, (int, float)) else now_iso(),
                                       "uploadedAt": now_iso(), "contentType": op.get("contentType")}
                    elif kind == "deleteFile":
                        files.pop(path, None)
                    else:
                        raise HubError(400, f"unknown operation type {kind!r}")
                except HubError as e:
                    failed.append({"path": path, "error": e.message})
            self._save_bucket(bucket)
        return failed


def check_bucket_path(path):
    """Bucket key rules (see HUB-XET-PROTOCOL.md §2.5)."""
    bad = (not path or path.startswith("/") or path.endswith("/") or "//" in path or "\\" in path
           or "\0" in path or path.startswith("./") or "../" in path or path.endswith("..")
           or path in (".", ".."))
    if bad:
        raise HubError(400, f"invalid bucket path: {path!r}")
