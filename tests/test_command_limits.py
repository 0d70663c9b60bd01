"""MQTT command limits: restarts spaced out, snapshot requests coalesced, offers capped, bounded logs."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from edgeagent.publish.command_limits import (
    MAX_OFFER_PAYLOAD_BYTES,
    CommandLimits,
    SnapshotCoalescer,
)
from edgeagent.publish.ratelimit import BoundedTable, LogThrottle, MinInterval, bounded
from tests.support.clock import ManualClock


def test_a_restart_runs_at_most_once_per_interval_per_camera(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(500.0)
    limits = CommandLimits(restart_interval_s=30, clock=clock)
    with caplog.at_level(logging.WARNING):
        allowed, other = [], []
        for _ in range(100):  # one every 3 s for 300 s
            allowed.append(limits.allow_restart("north"))
            other.append(limits.allow_restart("south"))
            clock.now += 3
    assert sum(allowed) == 10 and allowed[0] and allowed[10] and not any(allowed[1:10])
    assert other == allowed  # each camera has its own limit
    assert limits.refused["restart"] >= 90
    assert len([r for r in caplog.records if "restart for camera north" in r.getMessage()]) <= 5


def _offer(session_id: str, sdp: str = "v=0\r\n") -> bytes:
    return json.dumps({"session_id": session_id, "sdp": sdp}).encode()


def test_offers_are_capped_in_size_in_flight_and_by_session_id() -> None:
    clock = ManualClock(500.0)
    limits = CommandLimits(max_offers_in_flight=2, clock=clock)
    assert not limits.begin_offer("north", _offer("big", "v=0\r\n" + "a" * MAX_OFFER_PAYLOAD_BYTES))
    assert limits.begin_offer("north", _offer("s1"))
    assert limits.begin_offer("north", _offer("s2"))
    assert not limits.begin_offer("north", _offer("s3"))  # two being answered already
    limits.end_offer()
    assert not limits.begin_offer("north", _offer("s1"))  # reused id: refused, nothing is answered
    assert limits.begin_offer("north", _offer("s3"))
    limits.end_offer()
    limits.end_offer()
    assert limits.begin_offer("north", b"not json")  # the signaling code explains this one
    limits.end_offer()
    clock.now += 601
    assert limits.begin_offer("north", _offer("s1"))  # long forgotten
    assert limits.refused["offer"] == 3


async def test_snapshot_requests_are_coalesced_one_in_flight_one_per_interval() -> None:
    # Times are taken against the first request, when the interval starts: the snapshot's coroutine
    # first runs after the flood, which a busy machine may stretch (a 15 ms preemption in it made the
    # two runs' own start times 0.185 s apart, for a correct interval of 0.2 s from the first request).
    started: list[float] = []
    loop = asyncio.get_running_loop()
    second = asyncio.Event()

    async def snapshot(camera: str) -> None:
        started.append(loop.time())
        if len(started) == 2:
            second.set()
        await asyncio.sleep(0.05)

    coalescer = SnapshotCoalescer(snapshot, interval_s=0.2, clock=loop.time)
    first = loop.time()
    coalescer.request("north")
    assert coalescer.runs == 1  # started at once, not on a timer
    for _ in range(4999):  # a flood within a few ms
        coalescer.request("north")
    assert coalescer.runs == 1  # one in flight: the others wait for it
    await asyncio.wait_for(second.wait(), 5)
    assert started[1] - first >= 0.2 - 0.001  # exactly one more, and not before the interval was over
    await asyncio.sleep(0.3)
    assert len(started) == 2  # one for everything asked meanwhile
    assert coalescer.runs == 2 and coalescer.coalesced == 4998
    coalescer.close()


async def test_a_failing_snapshot_does_not_stop_later_requests() -> None:
    calls = 0

    async def broken(camera: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("decoder gone")

    loop = asyncio.get_running_loop()
    coalescer = SnapshotCoalescer(broken, interval_s=0.0, clock=loop.time)
    coalescer.request("north")
    await asyncio.sleep(0.01)
    coalescer.request("north")
    await asyncio.sleep(0.01)
    assert calls == 2


def test_bounded_tables_and_helpers() -> None:
    table: BoundedTable[list[int]] = BoundedTable(3, list)
    for key in "abcd":
        table.get(key)
    assert len(table) == 3 and table.peek("a") is None
    clock = ManualClock(500.0)
    interval = MinInterval(10, max_keys=2, clock=clock)
    assert interval.allow("x") and not interval.allow("x") and interval.wait_s("x") == 10
    throttle = LogThrottle(period_s=60, max_lines=2, clock=clock)
    assert [throttle.should_log(k) for k in "aab c"] == [0, None, 0, None, None]
    clock.now += 60
    assert throttle.should_log("a") == 1
    assert bounded("x" * 100, 10) == "xxxxxxxxxx...(100 chars)"
