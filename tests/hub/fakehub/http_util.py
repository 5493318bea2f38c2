"""Small HTTP plumbing shared by the Hub, CAS and CDN routes."""

import json
import re
from urllib.parse import parse_qs, unquote, urlencode

from .repo_store import HubError


class Request:
    def __init__(self, handler):
        self.handler = handler
        self.method = handler.command
        raw = handler.path
        self.raw_path, _, qs = raw.partition("?")
        self.query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        self.query_all = parse_qs(qs, keep_blank_values=True)
        self.headers = handler.headers
        self._body = None
        self.match = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def body(self) -> bytes:
        if self._body is None:
            self._body = read_body(self.handler)
        return self._body

    def json(self):
        try:
            return json.loads(self.body() or b"null")
        except ValueError as exc:
            raise HubError(400, f"invalid JSON body: {exc}") from exc

    def group(self, name):
        v = self.match.group(name)
        return unquote(v) if v is not None else None

    @property
    def base(self):
        host = self.header("Host") or "%s:%d" % self.handler.server.server_address[:2]
        return f"http://{host}"


def read_body(handler) -> bytes:
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        parts = []
        while True:
            line = handler.rfile.readline()
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(parts)
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


class Response:
    def __init__(self, status=200, body=b"", headers=None, content_type=None, length=None):
        self.status = status
        self.headers = list(headers or [])
        self.body = body            # bytes, or an iterable of bytes with `length` given
        self.length = length if length is not None else (len(body) if isinstance(body, bytes) else None)
        if content_type:
            self.headers.append(("Content-Type", content_type))

    def add(self, name, value):
        self.headers.append((name, value))
        return self


def json_response(obj, status=200, headers=None):
    return Response(status, json.dumps(obj).encode(), headers, "application/json")


def error_response(err: HubError):
    headers = [("X-Error-Message", err.message)]
    if err.code:
        headers.append(("X-Error-Code", err.code))
    return json_response({"error": err.message}, err.status, headers)


RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(value, size):
    """One HTTP byte range -> (start, end_exclusive); None when absent.

    Raises HubError(416) when it cannot be satisfied, HubError(400) when malformed.
    """
    if not value:
        return None
    m = RANGE_RE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise HubError(400, f"unsupported Range header {value!r}")
    a, b = m.group(1), m.group(2)
    if a == "":
        n = int(b)
        if n == 0:
            raise HubError(416, "empty suffix range")
        return max(0, size - n), size
    start = int(a)
    end = size if b == "" else min(int(b) + 1, size)
    if start >= size or end <= start:
        raise HubError(416, f"range {value} not satisfiable for {size} bytes")
    return start, end


def parse_multi_range(value):
    """'bytes=a-b,c-d' -> [(a, b_inclusive), ...] (explicit ranges only)."""
    if not value or not value.startswith("bytes="):
        return None
    out = []
    for part in value[6:].split(","):
        a, _, b = part.strip().partition("-")
        if not a.isdigit() or not b.isdigit() or int(b) < int(a):
            raise HubError(400, f"unsupported Range header {value!r}")
        out.append((int(a), int(b)))
    return out


def link_next(req, cursor):
    q = dict(req.query)
    q["cursor"] = cursor
    return f'<{req.base}{req.raw_path}?{urlencode(q)}>; rel="next"'
