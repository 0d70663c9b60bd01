"""Small rate-limiting pieces with bounded memory, for anything a stranger can make the agent do.

Each keeps at most ``max_keys`` keys (least recently used dropped first), so an attacker with many
addresses or names grows nothing without bound. All take the time from a clock the caller can replace.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
Clock = Callable[[], float]


class BoundedTable(Generic[V]):
    """A dict that forgets its least recently used entries beyond ``max_keys``."""

    def __init__(self, max_keys: int, make: Callable[[], V]) -> None:
        self.max_keys = max_keys
        self._make = make
        self._entries: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._make()
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry

    def peek(self, key: str) -> V | None:
        return self._entries.get(key)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class MinInterval:
    """Per key, at most one event every ``interval_s``: ``allow(key)`` says whether this one may run."""

    def __init__(self, interval_s: float, max_keys: int = 1024, clock: Clock = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: BoundedTable[list[float]] = BoundedTable(max_keys, lambda: [float("-inf")])
        self.refused_total = 0

    def allow(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if now - last[0] < self.interval_s:
            self.refused_total += 1
            return False
        last[0] = now
        return True

    def wait_s(self, key: str) -> float:
        """How long until ``key`` may run again (0 when it may now)."""
        last = self._last.peek(key)
        return 0.0 if last is None else max(0.0, last[0] + self.interval_s - self._clock())


class _LogState:
    __slots__ = ("last", "suppressed")

    def __init__(self) -> None:
        self.last = float("-inf")
        self.suppressed = 0


class LogThrottle:
    """At most one log line per key every ``period_s`` and ``max_lines`` lines in all per period.

    ``should_log(key)`` returns ``None`` to stay quiet, or how many events of that key went unlogged
    since its last line (0 for the first), for the line to mention.
    """

    def __init__(
        self, period_s: float = 60.0, max_lines: int = 20, max_keys: int = 4096, clock: Clock = time.monotonic
    ) -> None:
        self.period_s = period_s
        self.max_lines = max_lines
        self._clock = clock
        self._keys: BoundedTable[_LogState] = BoundedTable(max_keys, _LogState)
        self._window_start = float("-inf")
        self._lines_in_window = 0

    def should_log(self, key: str) -> int | None:
        now = self._clock()
        state = self._keys.get(key)
        if now - self._window_start >= self.period_s:
            self._window_start = now
            self._lines_in_window = 0
        if now - state.last < self.period_s or self._lines_in_window >= self.max_lines:
            state.suppressed += 1
            return None
        suppressed = state.suppressed
        state.last = now
        state.suppressed = 0
        self._lines_in_window += 1
        return suppressed


def bounded(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a log line, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
