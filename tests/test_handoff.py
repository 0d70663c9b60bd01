"""The ingest → event-loop hand-off: every call runs, in order, on the loop, with one wake-up for a burst."""

from __future__ import annotations

import asyncio
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


def test_a_burst_wakes_the_loop_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        inbox = LoopInbox(loop)
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(callback, *args):  # type: ignore[no-untyped-def]
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        seen: list[int] = []
        # The loop is busy here (this coroutine runs): all five calls are queued before the first drain.
        thread = threading.Thread(target=lambda: [inbox.call(seen.append, n) for n in range(5)])
        thread.start()
        thread.join()
        assert wakeups == 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert seen == [0, 1, 2, 3, 4]
        inbox.call(seen.append, 5)  # after the drain, the next call wakes the loop again
        assert wakeups == 2
        await asyncio.sleep(0)
        assert seen == [0, 1, 2, 3, 4, 5]

    asyncio.run(main())


def test_a_failing_call_does_not_stop_the_ones_after_it(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        inbox = LoopInbox(asyncio.get_running_loop())
        seen: list[int] = []

        def fail() -> None:
            raise ValueError("boom")

        inbox.call(seen.append, 1)
        inbox.call(fail)
        inbox.call(seen.append, 2)
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(main()) == [1, 2]
    assert "boom" in caplog.text


def test_a_closed_loop_refuses_every_call() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    inbox.call(print, "never run")  # the drain is due but never runs
    loop.close()
    with pytest.raises(RuntimeError):
        inbox.call(print, "after close")
