"""A clock that stands still until a test moves it: ``clock.now += 30`` is thirty seconds later."""

from __future__ import annotations


class ManualClock:
    """Passed where code takes ``clock: Callable[[], float]`` (time.monotonic by default)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
