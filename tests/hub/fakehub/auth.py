"""Credentials: the Hub user token, short-lived Xet CAS tokens, signed CDN URLs."""

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


@dataclass
class XetToken:
    scope: str        # "models/ns/name", "datasets/...", "spaces/...", "buckets/ns/name"
    write: bool
    expires: int      # unix seconds


def bearer(header_value):
    if not header_value:
        return None
    kind, _, value = header_value.partition(" ")
    return value.strip() if kind.lower() == "bearer" else ""


class Auth:
    def __init__(self, hub_token, user, xet_ttl):
        self.hub_token = hub_token
        self.user = user
        self.xet_ttl = xet_ttl
        self.secret = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.xet_tokens = {}
        self.stats = {"xet_tokens_issued": 0, "xet_token_expired": 0, "xet_token_unknown": 0,
                      "hub_token_rejected": 0}

    # ------------------------------------------------------------ Hub

    def hub_identity(self, header_value):
        """'user' for the valid token, None when anonymous, False for a wrong token."""
        tok = bearer(header_value)
        if tok is None:
            return None
        if tok and hmac.compare_digest(tok, self.hub_token):
            return "user"
        with self.lock:
            self.stats["hub_token_rejected"] += 1
        return False

    # ------------------------------------------------------------ Xet CAS

    def issue_xet(self, scope, write):
        tok = ("xet_write_" if write else "xet_read_") + secrets.token_hex(16)
        exp = math.ceil(time.time() + self.xet_ttl)  # at least the full lifetime
        with self.lock:
            now = time.time()
            for k in [k for k, v in self.xet_tokens.items() if v.expires < now - 3600]:
                del self.xet_tokens[k]
            self.xet_tokens[tok] = XetToken(scope, write, exp)
            self.stats["xet_tokens_issued"] += 1
        return tok, exp

    def check_xet(self, header_value, need_write):
        """None if allowed, else (status, message)."""
        tok = bearer(header_value)
        info = self.xet_tokens.get(tok) if tok else None
        if info is None:
            with self.lock:
                self.stats["xet_token_unknown"] += 1
            return 401, "missing or unknown xet token"
        if info.expires <= time.time():
            with self.lock:
                self.stats["xet_token_expired"] += 1
            return 401, "xet token expired"
        if need_write and not info.write:
            return 403, "xet token is read-only"
        return None

    # ------------------------------------------------------------ signed URLs

    def _mac(self, path, rng, expires):
        msg = f"{path}\n{rng}\n{expires}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:32]

    def sign(self, path, rng="", lifetime=3600):
        """Query parameters that make `path` (with exactly `rng` as Range, if any) fetchable."""
        expires = int(time.time()) + lifetime
        q = {"expires": str(expires), "sig": self._mac(path, rng, expires)}
        if rng:
            q["range"] = rng
        return q

    def verify(self, path, query):
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            return False
        rng = query.get("range", "")
        good = hmac.compare_digest(query.get("sig", ""), self._mac(path, rng, expires))
        return good and expires >= time.time()
