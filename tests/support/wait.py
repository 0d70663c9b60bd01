"""The one polling helper of the tests: for what has no event to await (a foreign process's state, a file
that appears, a counter in another component). Anything that can be awaited is awaited instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str = "the condition", interval: float = 0.05) -> T:
    """Call ``predicate`` every ``interval`` s until it returns something truthy, and return that value;
    AssertionError naming ``what`` (and the last value) after ``timeout`` s. It is called at least once,
    and once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        time.sleep(min(interval, remaining))


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not a timeout around one awaitable
    what: str = "the condition",
    interval: float = 0.05,
) -> T:
    """``wait_until`` on the event loop: ``predicate`` may be a plain function or return an awaitable
    (a coroutine that measures something); between calls the loop runs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        last: T = await value if isinstance(value, Awaitable) else value  # type: ignore[assignment]
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(min(interval, remaining))
