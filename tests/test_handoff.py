"""The ingest → event-loop hand-off: every call runs, in order, on the loop, with one wake-up for a burst."""

from __future__ import annotations

import asyncio
import os
import threading
import types
from typing import Any

import pytest

from edgeagent.camera import handoff
from edgeagent.camera.handoff import LoopInbox, inbox_for


def test_calls_from_a_thread_run_on_the_loop_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        inbox = inbox_for(loop)
        seen: list[tuple[int, bool]] = []
        done = asyncio.Event()

        def record(number: int) -> None:
            seen.append((number, threading.current_thread() is threading.main_thread()))
            if number == 999:
                done.set()

        def produce() -> None:
            for number in range(1000):
                inbox.call(record, number)

        thread = threading.Thread(target=produce)
        thread.start()
        await asyncio.wait_for(done.wait(), 10)
        thread.join()
        assert [n for n, _ in seen] == list(range(1000))
        assert all(on_loop for _, on_loop in seen)

    asyncio.run(main())


@pytest.fixture(params=["eventfd", "call_soon_threadsafe"])
def wake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the loop's wake-ups, through the eventfd or (where there is none) asyncio's own."""
    wakeups: list[int] = []
    if request.param == "eventfd":
        original = os.eventfd_write

        def counted_write(fd: int, value: int) -> None:
            wakeups.append(1)
            original(fd, value)

        monkeypatch.setattr(os, "eventfd_write", counted_write)
    else:
        def no_eventfd(*args: object) -> int:
            raise OSError("no eventfd here")

        monkeypatch.setattr(os, "eventfd", no_eventfd)
        original_soon = asyncio.BaseEventLoop.call_soon_threadsafe

        def counted_soon(loop: asyncio.BaseEventLoop, *args: Any) -> asyncio.Handle:
            wakeups.append(1)
            return original_soon(loop, *args)

        monkeypatch.setattr(asyncio.BaseEventLoop, "call_soon_threadsafe", counted_soon)
    return wakeups


def test_a_burst_wakes_the_loop_once(wake: list[int]) -> None:
    async def main() -> None:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []
        drained = asyncio.Event()

        def take(number: int) -> None:
            seen.append(number)
            drained.set()

        # The loop is busy here (this coroutine runs): all five calls are queued before the first drain.
        def burst() -> None:
            for number in range(5):
                inbox.call(take, number)

        thread = threading.Thread(target=burst)
        thread.start()
        thread.join()
        assert len(wake) == 1
        await asyncio.wait_for(drained.wait(), 5)
        assert seen == [0, 1, 2, 3, 4]
        drained.clear()
        inbox.call(take, 5)  # after the drain, the next call wakes the loop again
        assert len(wake) == 2
        await asyncio.wait_for(drained.wait(), 5)
        assert seen == [0, 1, 2, 3, 4, 5]

    asyncio.run(main())


def test_calls_from_many_threads_all_run_in_each_threads_order(wake: list[int]) -> None:
    async def main() -> None:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
        done = asyncio.Event()
        left = [3 * 2000]

        def take(thread: int, number: int) -> None:
            seen[thread].append(number)
            left[0] -= 1
            if not left[0]:
                done.set()

        def produce(thread: int) -> None:
            for number in range(2000):
                inbox.call(take, thread, number)

        threads = [threading.Thread(target=produce, args=(t,)) for t in seen]
        for thread in threads:
            thread.start()
        await asyncio.wait_for(done.wait(), 20)
        for thread in threads:
            thread.join()
        assert all(numbers == list(range(2000)) for numbers in seen.values())
        assert len(wake) < 3 * 2000  # calls rode along with wake-ups already sent

    asyncio.run(main())


def test_a_failing_call_does_not_stop_the_ones_after_it(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []

        def fail() -> None:
            raise ValueError("boom")

        done = asyncio.Event()
        inbox.call(seen.append, 1)
        inbox.call(fail)
        inbox.call(seen.append, 2)
        inbox.call(done.set)
        await asyncio.wait_for(done.wait(), 5)
        return seen

    assert asyncio.run(main()) == [1, 2]
    assert "boom" in caplog.text


def test_a_closed_loop_refuses_every_call() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    inbox.call(print, "never run")  # the drain is due but never runs
    loop.close()
    assert inbox._calls  # still queued: nothing ran it
    with pytest.raises(RuntimeError):
        inbox.call(print, "after close")


def test_calls_that_may_wait_wake_the_loop_only_once_the_oldest_is_that_old(
    wake: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(handoff, "time", types.SimpleNamespace(monotonic=lambda: now[0]))

    async def main() -> None:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []
        third = asyncio.Event()

        def take(number: int) -> None:
            seen.append(number)
            if number == 3:
                third.set()

        inbox.call_within(0.1, take, 1)
        now[0] += 0.09
        inbox.call_within(0.1, take, 2)
        assert wake == []  # nobody woke the loop for them
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert seen == []
        now[0] += 0.02
        inbox.call_within(0.1, take, 3)  # the oldest is 0.11 s old now
        assert len(wake) == 1
        await asyncio.wait_for(third.wait(), 5)
        assert seen == [1, 2, 3]

    asyncio.run(main())


def test_a_prompt_call_or_a_drain_takes_the_waiting_ones_along_in_order(wake: list[int]) -> None:
    async def main() -> None:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []
        inbox.call_within(10, seen.append, 1)
        inbox.drain()  # what a timer of the loop does
        assert seen == [1] and wake == []
        inbox.call_within(10, seen.append, 2)
        done = asyncio.Event()
        inbox.call(done.set)
        await asyncio.wait_for(done.wait(), 5)
        assert seen == [1, 2] and len(wake) == 1

    asyncio.run(main())
