"""The bearer-token check, with failed attempts slowed down per client address.

The token is compared first, in constant time, on the raw bytes of the header (whatever they are: a
non-UTF-8 or NUL byte is just a wrong token). A request with the right token always passes at once,
whoever else guesses from the same address (operators may sit behind the same NAT as an attacker).
Only failures are counted: after ``max_failures`` in ``window_s`` an address gets 429 with a
``Retry-After`` that doubles with every further failure (up to ``max_penalty_s``), and each such answer
is held back a moment and closes the connection, so a guesser gets a few tries a second at most instead
of thousands. Failures are logged once a minute per address with a count, never with what was sent.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum

from aiohttp import web
from pydantic import SecretStr

from edgeagent.publish.ratelimit import BoundedTable, Clock, LogThrottle

log = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_S = 60.0
FIRST_PENALTY_S = 2.0
MAX_PENALTY_S = 300.0
MAX_TRACKED = 4096
THROTTLED_DELAY_S = 1.0  # a throttled guesser waits this long per attempt, on a connection it cannot reuse


class Verdict(Enum):
    ALLOWED = "allowed"
    UNAUTHORIZED = "unauthorized"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class AuthResult:
    verdict: Verdict
    retry_after_s: int = 0


class _Failures:
    __slots__ = ("blocked_until", "strikes", "times")

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=MAX_FAILURES)
        self.blocked_until = float("-inf")
        self.strikes = 0


def presented_token(header: str | None) -> bytes | None:
    """The credential of an ``Authorization: Bearer X`` header as raw bytes; never raises."""
    if not header:
        return None
    # aiohttp decodes header bytes with surrogateescape: this gives the bytes on the wire back.
    raw = header.encode("utf-8", "surrogateescape") if isinstance(header, str) else bytes(header)
    scheme, _, credential = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    credential = credential.strip()
    return credential or None


class AuthGuard:
    def __init__(
        self,
        token: SecretStr,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        first_penalty_s: float = FIRST_PENALTY_S,
        max_penalty_s: float = MAX_PENALTY_S,
        max_tracked: int = MAX_TRACKED,
        clock: Clock = time.monotonic,
    ) -> None:
        self._token = token.get_secret_value().encode()
        self.max_failures = max_failures
        self.window_s = window_s
        self.first_penalty_s = first_penalty_s
        self.max_penalty_s = max_penalty_s
        self._clock = clock
        self._failures: BoundedTable[_Failures] = BoundedTable(max_tracked, _Failures)
        self._log = LogThrottle(period_s=60.0, max_lines=20, max_keys=max_tracked, clock=clock)
        self.failures_total = 0
        self.throttled_total = 0

    @property
    def tracked(self) -> int:
        return len(self._failures)

    def check(self, header: str | None, address: str) -> AuthResult:
        presented = presented_token(header)
        if presented is not None and hmac.compare_digest(presented, self._token):
            return AuthResult(Verdict.ALLOWED)
        return self._failure(address)

    def _failure(self, address: str) -> AuthResult:
        now = self._clock()
        self.failures_total += 1
        entry = self._failures.get(address)
        if now < entry.blocked_until:
            entry.strikes += 1
            entry.blocked_until = now + self._penalty(entry.strikes)
            self.throttled_total += 1
            result = AuthResult(Verdict.THROTTLED, math.ceil(entry.blocked_until - now))
        else:
            while entry.times and now - entry.times[0] >= self.window_s:
                entry.times.popleft()
            if not entry.times and now - entry.blocked_until >= self.max_penalty_s:
                entry.strikes = 0  # quiet for long enough: forgiven
            entry.times.append(now)
            if len(entry.times) >= self.max_failures:
                entry.blocked_until = now + self._penalty(entry.strikes)
                entry.times.clear()
            result = AuthResult(Verdict.UNAUTHORIZED)
        unlogged = self._log.should_log(address)
        if unlogged is not None:
            state = "throttled" if now < entry.blocked_until else "not throttled"
            log.warning(
                "http: %d failed authentication(s) from %s since the last report (%s)",
                unlogged + 1, address, state,
            )  # fmt: skip
        return result

    def _penalty(self, strikes: int) -> float:
        return min(self.max_penalty_s, self.first_penalty_s * 2 ** min(strikes, 32))


async def refusal(result: AuthResult) -> web.Response:
    """The answer to a request that did not pass: 401, or 429 after a pause (on a closed connection)."""
    if result.verdict == Verdict.THROTTLED:
        await asyncio.sleep(THROTTLED_DELAY_S)
        response = web.Response(
            status=429, text="too many failed attempts\n", headers={"Retry-After": str(result.retry_after_s)}
        )
        response.force_close()
        return response
    return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": 'Bearer realm="edgeagent"'})
