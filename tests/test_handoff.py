"""The ingest → event-loop hand-off: every call runs, in order, on the loop, with one wake-up for a burst."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

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
        monkeypatch.setattr(os, "eventfd_write", lambda fd, value: (wakeups.append(1), original(fd, value))[1])
    else:
        def no_eventfd(*args: object) -> int:
            raise OSError("no eventfd here")

        monkeypatch.setattr(os, "eventfd", no_eventfd)
        original_soon = asyncio.BaseEventLoop.call_soon_threadsafe
        monkeypatch.setattr(asyncio.BaseEventLoop, "call_soon_threadsafe",
                            lambda loop, *args: (wakeups.append(1), original_soon(loop, *args))[1])
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
        thread = threading.Thread(target=lambda: [inbox.call(take, n) for n in range(5)])
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

        threads = [threading.Thread(target=lambda t=t: [inbox.call(take, t, n) for n in range(2000)]) for t in seen]
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


def test_calls_that_may_wait_wake_the_loop_only_once_the_oldest_is_that_old(wake: list[int]) -> None:
    async def main() -> None:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []
        inbox.call_within(0.05, seen.append, 1)
        inbox.call_within(0.05, seen.append, 2)
        assert wake == []
        await asyncio.sleep(0.06)
        assert seen == []  # nobody woke the loop for them
        inbox.call_within(0.05, seen.append, 3)  # the oldest is 60 ms old now
        assert len(wake) == 1
        deadline = asyncio.get_running_loop().time() + 5
        while seen != [1, 2, 3] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
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
