"""The fakehub application: two HTTP listeners over one state.

  hub listener  (--port):      Hub API, resolve, Xet CAS under /cas
  cdn listener  (--cdn-port):  signed xorb ranges and whole-file downloads

The CDN gets its own port so that it is a different origin from the Hub, as
the real CDN is: huggingface_hub follows resolve redirects only within the
Hub and reads the Xet headers off the redirect response.
"""

import json
import os
import re
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from . import cas_routes, hub_routes
from .auth import INVALID_CREDENTIALS, Auth
from .cas_store import CasStore
from .http_util import Request, Response, error_response
from .repo_store import HubError, RepoStore


class App:
    def __init__(self, data, token, user="tester", page_size=50, xet_ttl=3600, disable_v2=False,
                 log_path=None, latency_ms=0):
        self.data = data
        self.cas = CasStore(os.path.join(data, "cas"))
        self.repos = RepoStore(os.path.join(data, "hub"))
        self.auth = Auth(token, user, xet_ttl)
        self.user = user
        self.page_size = page_size
        self.disable_v2 = disable_v2
        self.latency = latency_ms / 1000
        self.cdn_base = None
        self.stats_lock = threading.Lock()
        self.counters = {}
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.hub_routes = compile_routes(hub_routes.ROUTES + cas_routes.CAS_ROUTES)
        self.cdn_routes = compile_routes(cas_routes.CDN_ROUTES)

    def cas_url(self, req):
        return f"{req.base}/cas"

    def cdn_file_url(self, xet_hash):
        path = "/files/" + xet_hash
        return f"{self.cdn_base}{path}?{urlencode(self.auth.sign(path))}"

    def count(self, name, n=1):
        with self.stats_lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def snapshot_stats(self):
        with self.stats_lock:
            out = dict(self.counters)
        out.update(self.auth.stats)
        out["xorbs_stored"] = len(self.cas.xorbs)
        out["files_stored"] = len(self.cas.files)
        return out

    def record(self, listener, method, path, status, started):
        if self.log:
            self.log.write(json.dumps({"t": round(started, 3), "listener": listener, "m": method, "path": path,
                                       "status": status, "ms": round((time.time() - started) * 1000, 1)}) + "\n")


def compile_routes(routes):
    return [(methods, re.compile(pattern + r"$"), fn, name) for methods, pattern, fn, name in routes]


def make_handler(app, listener):
    routes = app.hub_routes if listener == "hub" else app.cdn_routes

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fakehub/1"

        def log_message(self, fmt, *args):   # quiet: the optional JSONL log replaces it
            pass

        def handle_one(self):
            started = time.time()
            if app.latency:
                time.sleep(app.latency)
            req = Request(self)
            try:
                resp = self.route(req)
            except HubError as e:
                resp = error_response(e)
            except Exception as e:  # a server bug: report it, keep serving
                traceback.print_exc(file=sys.stderr)
                resp = error_response(HubError(500, f"internal error: {e}"))
            # Always drain the request body so the connection stays usable.
            try:
                req.body()
            except Exception:
                self.close_connection = True
            self.send(req, resp)
            app.record(listener, req.method, self.path, resp.status, started)

        def route(self, req):
            allowed = False
            for methods, rx, fn, name in routes:
                m = rx.match(req.raw_path)
                if not m:
                    continue
                allowed = True
                if req.method not in methods:
                    continue
                req.match = m
                app.count(f"{name}:{req.method}")
                if listener == "hub" and not name.startswith("cas_"):
                    if app.auth.hub_identity(req.header("Authorization")) is False:
                        raise HubError(401, INVALID_CREDENTIALS)
                return fn(app, req)
            if allowed:
                raise HubError(405, f"{req.method} not allowed here")
            app.count("unrouted")
            raise HubError(404, f"no route for {req.method} {req.raw_path}")

        def send(self, req, resp: Response):
            self.send_response(resp.status)
            names = {k.lower() for k, _ in resp.headers}
            for k, v in resp.headers:
                self.send_header(k, v)
            if "content-length" not in names:
                self.send_header("Content-Length", str(resp.length if resp.length is not None else 0))
            self.end_headers()
            if req.method == "HEAD":
                return
            if isinstance(resp.body, bytes):
                self.wfile.write(resp.body)
            else:
                for piece in resp.body:
                    self.wfile.write(piece)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_one

    return Handler


class Server:
    """Both listeners, started on background threads."""

    def __init__(self, app, host="127.0.0.1", port=0, cdn_port=0):
        self.app = app
        self.hub = ThreadingHTTPServer((host, port), make_handler(app, "hub"))
        self.cdn = ThreadingHTTPServer((host, cdn_port), make_handler(app, "cdn"))
        self.hub.daemon_threads = self.cdn.daemon_threads = True
        self.host = host
        app.cdn_base = f"http://{host}:{self.cdn.server_address[1]}"
        self.threads = []

    @property
    def endpoint(self):
        return f"http://{self.host}:{self.hub.server_address[1]}"

    def ready_info(self):
        return {"endpoint": self.endpoint, "cas_url": self.endpoint + "/cas", "cdn_url": self.app.cdn_base,
                "port": self.hub.server_address[1], "cdn_port": self.cdn.server_address[1],
                "data": self.app.data, "pid": os.getpid()}

    def start(self):
        for srv in (self.hub, self.cdn):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        for srv in (self.hub, self.cdn):
            srv.shutdown()
            srv.server_close()
        self.app.repos.flush()
