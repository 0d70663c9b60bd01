"""A token bucket for the upload cap: bytes go out at ``rate`` on average, in bursts of one request.

``take(n)`` spends ``n`` tokens at once and, if that leaves the bucket in debt, waits until the debt is
paid back: a request larger than the bucket still goes (a part cannot be split), and the average holds.
"""

from __future__ import annotations

import asyncio
import time

BURST_S = 1.0  # at most this many seconds' worth of tokens saved up while idle


class TokenBucket:
    def __init__(self, bytes_per_s: float | None) -> None:
        self.rate = bytes_per_s
        self._tokens = 0.0
        self._at = time.monotonic()

    def _refill(self) -> None:
        assert self.rate is not None
        now = time.monotonic()
        self._tokens = min(self.rate * BURST_S, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def delay(self, count: int) -> float:
        """Spend ``count`` tokens; the seconds to wait before sending them (0 without a cap)."""
        if self.rate is None:
            return 0.0
        self._refill()
        self._tokens -= count
        return max(0.0, -self._tokens / self.rate)

    async def take(self, count: int) -> None:
        wait = self.delay(count)
        if wait > 0:
            await asyncio.sleep(wait)
