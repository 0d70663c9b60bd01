"""A hostile ONVIF device cannot flood the agent with events: a token bucket per camera, pulls paced,
and every field of an event cut to a bounded length."""

from __future__ import annotations

import asyncio
from typing import Any

from lxml import etree

from edgeagent.onvif import events
from edgeagent.onvif.events import EventBudget, EventPuller, parse_events
from tests.support.clock import ManualClock


def reply(count: int, topic: str = "tns1:RuleEngine/CellMotionDetector/Motion", when: str = "2026-12-01T10:00:00Z",
          state: str = "true") -> etree._Element:  # fmt: skip
    message = (
        '<wsnt:NotificationMessage xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"'
        ' xmlns:tt="http://www.onvif.org/ver10/schema">'
        f"<wsnt:Topic>{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime=\"{when}\">"
        f'<tt:Data><tt:SimpleItem Name="State" Value="{state}"/></tt:Data></tt:Message></wsnt:Message>'
        "</wsnt:NotificationMessage>"
    )
    return etree.fromstring(f"<r>{message * count}</r>".encode())


def test_the_budget_lets_a_burst_through_then_its_rate() -> None:
    clock = ManualClock(100.0)
    budget = EventBudget(rate=4.0, burst=32, clock=clock)
    assert sum(budget.allow() for _ in range(100)) == 32
    clock.now += 1.0
    assert sum(budget.allow() for _ in range(100)) == 4
    clock.now += 3600.0  # a quiet hour refills the burst, never beyond it
    assert sum(budget.allow() for _ in range(100)) == 32


def test_every_field_of_an_event_is_cut_to_its_bound() -> None:
    [event] = parse_events(reply(1, topic="tns1:Motion" + "x" * 100_000, when="9" * 10_000, state="s" * 10_000))
    assert len(event["topic"]) == events.MAX_TOPIC_CHARS
    assert len(event["time"]) == events.MAX_VALUE_CHARS and len(event["state"]) == events.MAX_VALUE_CHARS
    [plain] = parse_events(reply(1))
    assert plain == {"time": "2026-12-01T10:00:00Z", "topic": "tns1:RuleEngine/CellMotionDetector/Motion",
                     "state": True}  # fmt: skip


class Link:
    camera = "north"


class InstantDevice(EventPuller):
    """A device that answers every pull at once with a full reply (it should hold the pull)."""

    pulls = 0

    async def _send(self, url: str, action: str, body: str, wait_s: float = 0.0) -> Any:
        self.pulls += 1
        return reply(events.MAX_MESSAGES)

    async def _unsubscribe(self, url: str) -> None:
        pass


async def test_a_device_answering_at_once_is_paced_and_its_flood_dropped_and_counted() -> None:
    received: list[dict[str, Any]] = []
    puller = InstantDevice(Link(), received.append, min_pull_interval_s=0.2)  # type: ignore[arg-type]
    follow = asyncio.ensure_future(puller._follow("http://device/pull"))
    await asyncio.sleep(1.0)  # the scenario: one second of a hostile device
    follow.cancel()
    await asyncio.gather(follow, return_exceptions=True)
    # Paced: at most one pull a 0.2 s (6 in a second, counting the one at once), not thousands.
    assert 1 <= puller.pulls <= 6, puller.pulls
    # Passed on: the burst and the rate (4 a second) at most; the rest dropped and counted.
    assert len(received) <= events.MAX_MESSAGES + 4 * 1.5
    assert puller.dropped == puller.events - len(received) and puller.dropped > 0
