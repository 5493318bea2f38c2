"""Command line: python3 -m fakehub --port N --data DIR --token TOKEN [...]

Prints one line `fakehub ready {json}` on stdout once both listeners accept
connections, and writes the same JSON to --ready-file when given.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

from .server import App, Server


def main(argv=None):
    p = argparse.ArgumentParser(prog="fakehub", description="Local Hugging Face Hub + Xet CAS test server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="Hub API port (0 = any free port)")
    p.add_argument("--cdn-port", type=int, default=0, help="CDN port for signed downloads (0 = any free port)")
    p.add_argument("--data", required=True, help="state directory (created if missing, reused if present)")
    p.add_argument("--token", required=True, help="the one valid Hub user token")
    p.add_argument("--user", default="tester", help="user name that --token belongs to")
    p.add_argument("--page-size", type=int, default=50, help="entries per page in tree and list calls")
    p.add_argument("--xet-token-ttl", type=int, default=3600, help="lifetime of Xet CAS tokens, seconds")
    p.add_argument("--disable-v2", action="store_true",
                   help="answer 404 on the v2 reconstruction and shard APIs (clients fall back to v1)")
    p.add_argument("--latency-ms", type=int, default=0,
                   help="wait this long before answering each request, as a distant Hub would")
    p.add_argument("--ready-file", help="write the ready JSON here")
    p.add_argument("--log", help="append one JSON line per request to this file")
    a = p.parse_args(argv)

    os.makedirs(a.data, exist_ok=True)
    app = App(a.data, a.token, user=a.user, page_size=a.page_size, xet_ttl=a.xet_token_ttl,
              disable_v2=a.disable_v2, log_path=a.log, latency_ms=a.latency_ms)
    server = Server(app, a.host, a.port, a.cdn_port).start()
    info = server.ready_info()
    if a.ready_file:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.ready_file)))
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, a.ready_file)
    print("fakehub ready " + json.dumps(info), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
