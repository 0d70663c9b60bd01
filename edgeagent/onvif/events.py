"""A camera's motion and tamper events, by PullPoint: subscribe, pull, renew, and subscribe again when
the camera forgets the subscription (a reboot) or stops answering.

Sent and read as plain SOAP with WS-Addressing (``soap.py``): event messages are free-form XML that
cameras get wrong in many ways, and the lenient parser takes what can be read. Every request is bounded;
the pull's own wait (``PULL_WAIT_S``) is added to the timeout of that request only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from edgeagent.onvif import soap
from edgeagent.onvif.errors import OnvifError, OnvifTimeout, OnvifUnreachable
from edgeagent.onvif.link import OnvifLink
from edgeagent.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EVENTS_WSDL = "http://www.onvif.org/ver10/events/wsdl"
WSN = "http://docs.oasis-open.org/wsn/b-2"
PULL_WAIT_S = 5.0
TERMINATION_S = 60
RENEW_EVERY_S = 30.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
NO_EVENTS_RECHECK_S = 600.0
KINDS = ("motion", "tamper", "scenechange")  # the events worth an operator's attention
MAX_MESSAGES = 32
# A device that answers every pull at once, or with a flood, is held to these: a pull starts at most every
# MIN_PULL_INTERVAL_S, and at most EVENTS_PER_S events a second (bursts of MAX_MESSAGES) go on to MQTT and
# the bookmarks; the rest are counted as dropped. A real camera sends a handful a minute.
MIN_PULL_INTERVAL_S = 0.5
EVENTS_PER_S = 4.0
MAX_TOPIC_CHARS = 256
MAX_VALUE_CHARS = 64
DROPPED_LOG_EVERY_S = 60.0

EventSink = Callable[[dict[str, Any]], None]


class EventBudget:
    """A token bucket: ``allow()`` is False once a camera sends faster than ``rate`` for longer than its burst."""

    def __init__(self, rate: float = EVENTS_PER_S, burst: int = MAX_MESSAGES,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _cut(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


def _addressing(action: str, to: str) -> str:
    wsa = 'xmlns:wsa="http://www.w3.org/2005/08/addressing"'
    return (
        f"<wsa:Action {wsa}>{soap.escape(action)}</wsa:Action><wsa:To {wsa}>{soap.escape(to)}</wsa:To>"
        f"<wsa:MessageID {wsa}>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
    )


def parse_events(root: soap.etree._Element) -> list[dict[str, Any]]:
    """Motion and tamper notifications of a PullMessages reply: ``{time, topic, state}`` each."""
    events = []
    for message in soap.find_all(root, "NotificationMessage"):
        topics = soap.texts_of(message, "Topic")
        topic = topics[0] if topics else ""
        if not any(kind in topic.lower().replace("_", "") for kind in KINDS):
            continue
        inner = soap.find(message, "Message", "Message")  # (an lxml element without children is falsy)
        if inner is None:
            inner = soap.find(message, "Message")
        when = inner.get("UtcTime") if inner is not None else None
        state: Any = None
        data = soap.find(message, "Data")
        for item in soap.find_all(data if data is not None else message, "SimpleItem"):
            value = item.get("Value")
            if value is not None:
                state = {"true": True, "false": False}.get(value.strip().lower(), value.strip())
                break
        events.append({"time": _cut(when, MAX_VALUE_CHARS), "topic": topic[:MAX_TOPIC_CHARS],
                       "state": _cut(state, MAX_VALUE_CHARS)})  # fmt: skip
    return events


class EventPuller:
    def __init__(self, link: OnvifLink, sink: EventSink, renew_every_s: float = RENEW_EVERY_S,
                 pull_wait_s: float = PULL_WAIT_S, budget: EventBudget | None = None,
                 min_pull_interval_s: float = MIN_PULL_INTERVAL_S) -> None:  # fmt: skip
        self.link = link
        self.sink = sink
        self.renew_every_s = renew_every_s
        self.pull_wait_s = pull_wait_s
        self.budget = budget or EventBudget()
        self.min_pull_interval_s = min_pull_interval_s
        self.subscriptions = 0
        self.renewals = 0
        self.events = 0
        self.dropped = 0
        self._dropped_logged_at: float | None = None

    async def _send(self, url: str, action: str, body: str, wait_s: float = 0.0) -> soap.etree._Element:
        device = await self.link.connected()
        header = await device.security() + _addressing(action, url)
        reply = await soap.call(url, action, body, self.link.timeout_s + wait_s, header)
        return soap.raise_for_reply(reply, action.rpartition("/")[2])

    async def _subscribe(self) -> str | None:
        device = await self.link.connected()
        events = device.xaddrs.get("events")
        if events is None:
            return None
        body = (
            f'<tev:CreatePullPointSubscription xmlns:tev="{EVENTS_WSDL}">'
            f"<tev:InitialTerminationTime>PT{TERMINATION_S}S</tev:InitialTerminationTime>"
            "</tev:CreatePullPointSubscription>"
        )
        action = f"{EVENTS_WSDL}/EventPortType/CreatePullPointSubscriptionRequest"
        root = await self._send(events, action, body)
        address = soap.find(root, "SubscriptionReference", "Address")
        if address is None or not (address.text or "").strip().startswith(("http://", "https://")):
            raise OnvifError("CreatePullPointSubscription: no subscription address in the reply")
        self.subscriptions += 1
        return (address.text or "").strip()

    async def _pull(self, url: str) -> None:
        body = (
            f'<tev:PullMessages xmlns:tev="{EVENTS_WSDL}"><tev:Timeout>PT{self.pull_wait_s:g}S</tev:Timeout>'
            f"<tev:MessageLimit>{MAX_MESSAGES}</tev:MessageLimit></tev:PullMessages>"
        )
        action = f"{EVENTS_WSDL}/PullPointSubscription/PullMessagesRequest"
        root = await self._send(url, action, body, wait_s=self.pull_wait_s)
        for event in parse_events(root)[:MAX_MESSAGES]:
            self.events += 1
            if self.budget.allow():
                self.sink(event)
            else:
                self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if self._dropped_logged_at is None or now - self._dropped_logged_at >= DROPPED_LOG_EVERY_S:
            self._dropped_logged_at = now
            log.warning("camera %s: onvif events: more than %g a second; %d dropped so far",
                        self.link.camera, self.budget.rate, self.dropped)  # fmt: skip

    async def _renew(self, url: str) -> None:
        body = (
            f'<wsnt:Renew xmlns:wsnt="{WSN}"><wsnt:TerminationTime>PT{TERMINATION_S}S</wsnt:TerminationTime>'
            "</wsnt:Renew>"
        )
        await self._send(url, f"{WSN}/SubscriptionManager/RenewRequest", body)
        self.renewals += 1

    async def _unsubscribe(self, url: str) -> None:
        try:
            body = f'<wsnt:Unsubscribe xmlns:wsnt="{WSN}"/>'
            await self._send(url, f"{WSN}/SubscriptionManager/UnsubscribeRequest", body)
        except OnvifError:
            pass  # it ends by itself at its termination time

    async def _follow(self, url: str) -> None:
        renew_at = time.monotonic() + self.renew_every_s
        try:
            while True:
                started = time.monotonic()
                await self._pull(url)
                # A device that answers at once (it should hold the pull up to its timeout) is not pulled
                # in a tight loop.
                await asyncio.sleep(max(0.0, started + self.min_pull_interval_s - time.monotonic()))
                if time.monotonic() >= renew_at:
                    await self._renew(url)
                    renew_at = time.monotonic() + self.renew_every_s
        except asyncio.CancelledError:
            await asyncio.shield(self._unsubscribe(url))
            raise

    async def run(self) -> None:
        """Forever: subscribe and pull; after a failure wait (1 s doubling to 60 s) and subscribe again."""
        delay = BACKOFF_FIRST_S
        camera = self.link.camera
        while True:
            try:
                url = await self._subscribe()
                if url is None:
                    await asyncio.sleep(NO_EVENTS_RECHECK_S)  # no event service (yet): look again later
                    continue
                log.info("camera %s: onvif events: subscribed (%s)", camera, url)
                delay = BACKOFF_FIRST_S
                await self._follow(url)
            except OnvifError as exc:
                log.info("camera %s: onvif events: %s; subscribing again in %.0f s", camera, exc, delay)
                if isinstance(exc, OnvifTimeout | OnvifUnreachable):
                    await self.link.drop_quietly()  # a camera that went away: clock and services read again
                await asyncio.sleep(delay)
                delay = min(BACKOFF_MAX_S, delay * 2)


def spawn_link_tasks(tasks: BackgroundTasks, link: OnvifLink, sink: EventSink | None) -> list[asyncio.Task[None]]:
    """A camera's ONVIF background work: its clock checks, and its events when there is somewhere to send them."""
    spawned = [tasks.spawn(link.watch_clock(), f"onvif-clock-{link.camera}")]
    if sink is not None and link.section.events:
        spawned.append(tasks.spawn(EventPuller(link, sink).run(), f"onvif-events-{link.camera}"))
    return spawned
