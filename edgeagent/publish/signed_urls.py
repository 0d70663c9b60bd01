"""Short-lived, single-purpose URLs for what a browser fetches without headers (``<video src>``, a download
link): the long-lived bearer token never goes into a URL, where logs and history would keep it.

A URL names one purpose (``clip`` or ``export``), one camera and one time range, and expires within
seconds; it is an HMAC-SHA256 under a key made at random when the process starts (a restart invalidates
every URL given out).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode


class SignedUrls:
    def __init__(self, ttl_s: float = 60.0, clock: object = time.time) -> None:
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._clock = clock

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _mac(self, purpose: str, camera: str, start: str, end: str, expires: int) -> str:
        message = "\n".join((purpose, camera, start, end, str(expires))).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def query(self, purpose: str, camera: str, start: str, end: str) -> tuple[str, int]:
        """The query string for one use of ``purpose`` on ``camera`` over ``[start, end)``, and its expiry."""
        expires = int(self._now() + self.ttl_s)
        signature = self._mac(purpose, camera, start, end, expires)
        return urlencode({"start": start, "end": end, "expires": expires, "sig": signature}), expires

    def check(self, purpose: str, camera: str, start: str, end: str, expires: str, signature: str) -> str | None:
        """None when the URL is genuine and current; otherwise why not (one line)."""
        if not expires.isdigit() or len(expires) > 12 or len(signature) != 64:
            return "malformed signed URL"
        when = int(expires)
        if not hmac.compare_digest(self._mac(purpose, camera, start, end, when), signature):
            return "invalid signature"
        now = self._now()
        if when < now:
            return "this URL has expired"
        if when > now + self.ttl_s + 1:
            return "invalid expiry"
        return None
