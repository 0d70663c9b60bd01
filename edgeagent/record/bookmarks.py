"""What becomes a bookmark on a camera's recording timeline, and how many: the camera's ONVIF events
(motion, tamper, scene change) and the agent's own picture alarms (frozen, blank, blurred, moved).

Whoever controls a camera controls what its ONVIF service sends: any number of events, any topic text,
any time stamp. So a bookmark's kind comes from a closed list; its text is at most ``MAX_TEXT_CHARS``
printable characters with our password to the device masked (a device may echo it); its time is the
camera's own (its clock offset taken off) only when that lies within ``EVENT_PAST_S`` before and
``EVENT_FUTURE_S`` after the moment the event arrived, else that moment; and per camera and kind at most
one bookmark is made every ``COALESCE_S`` seconds, counted on our monotonic clock: a flood of events, or
an event that stays active and keeps repeating, is one mark per 10 s. A picture alarm is a bookmark when
it is raised (a new ``since``), under the same limit. Bookmarks are written in batches, off the event loop.

Nothing here imports the ONVIF client or PyAV: exports and ``edgeagent verify`` read ``bookmark_json``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from edgeagent.record.model import Bookmark
from edgeagent.record.schema import now_utc
from edgeagent.record.times import TimeRangeError, parse_time, rfc3339

log = logging.getLogger(__name__)

ONVIF = "onvif"
PICTURE = "picture"
ONVIF_KINDS = ("motion", "tamper", "scenechange")  # edgeagent.onvif.events.KINDS (a test holds them equal)
PICTURE_KINDS = ("frozen", "blank", "blurred", "moved")
PICTURE_TEXT = {"frozen": "picture frozen", "blank": "picture blank", "blurred": "picture blurred",
                "moved": "camera view moved"}  # fmt: skip
COALESCE_S = 10.0
MAX_TEXT_CHARS = 160
EVENT_PAST_S = 30.0  # a pull returns within seconds of the event; older stamps are the camera's clock
EVENT_FUTURE_S = 2.0
MAX_PENDING = 256  # bookmarks waiting for the disk; more are dropped (and counted)
TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/_.-|*")  # (* for a mask)
MASK = "***"


def bookmark_json(bookmark: Bookmark) -> dict[str, str]:
    """A bookmark as the HTTP listing and the export manifest give it."""
    return {"time": rfc3339(bookmark.at), "kind": bookmark.kind, "source": bookmark.source, "text": bookmark.text}


def _masked(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def bounded_text(text: str, secrets: Iterable[str] = (), allowed: frozenset[str] | None = None) -> str:
    """``text`` with every secret masked, characters outside ``allowed`` (or unprintable) as ``?``, and at
    most ``MAX_TEXT_CHARS`` long. Masked before and after the characters are replaced, and before the cut,
    so that no secret and no beginning of one is left."""
    secrets = [secret for secret in secrets if secret]
    text = _masked(text, secrets)
    text = "".join(ch if ch.isprintable() and (allowed is None or ch in allowed) else "?" for ch in text)
    text = _masked(text, secrets).strip()
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def onvif_kind(topic: str) -> str | None:
    """The kind of an ONVIF event by its topic (``tns1:RuleEngine/CellMotionDetector/Motion``: motion)."""
    folded = topic.lower().replace("_", "")
    return next((kind for kind in ONVIF_KINDS if kind in folded), None)


def active(state: Any) -> bool:
    """An event that says something started or goes on; a ``false`` state (it ended) is no bookmark."""
    if isinstance(state, str):
        return state.strip().lower() not in ("false", "0", "off", "inactive", "")
    return state is not False


def event_time(stamp: Any, received: datetime, clock_offset_s: float | None) -> datetime:
    """The event's own time on our clock when it is plausible, else the moment it arrived."""
    if not isinstance(stamp, str):
        return received
    try:
        moment = parse_time(stamp.strip(), "UtcTime") - timedelta(seconds=clock_offset_s or 0.0)
    except TimeRangeError:
        return received
    plausible = received - timedelta(seconds=EVENT_PAST_S) <= moment <= received + timedelta(seconds=EVENT_FUTURE_S)
    return moment if plausible else received


def onvif_bookmark(camera: str, event: Mapping[str, Any], received: datetime, clock_offset_s: float | None = None,
                   secrets: Iterable[str] = ()) -> Bookmark | None:  # fmt: skip
    """The bookmark an ONVIF event (``{time, topic, state}``, ``edgeagent.onvif.events``) makes, if any."""
    topic = event.get("topic")
    if not isinstance(topic, str) or not active(event.get("state")):
        return None
    kind = onvif_kind(topic)
    if kind is None:
        return None
    text = f"ONVIF {kind}: " + bounded_text(topic[: 4 * MAX_TEXT_CHARS], secrets, TOPIC_CHARS)
    return Bookmark(camera, event_time(event.get("time"), received, clock_offset_s), kind, ONVIF,
                    bounded_text(text, secrets))


class Coalescer:
    """At most one bookmark per camera and kind every ``window_s`` (pure logic, on an injectable clock)."""

    def __init__(self, window_s: float = COALESCE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}  # kinds are a closed list: bounded by the cameras
        self.coalesced = 0

    def allow(self, camera: str, kind: str) -> bool:
        now = self._clock()
        last = self._last.get((camera, kind))
        if last is not None and now - last < self.window_s:
            self.coalesced += 1
            return False
        self._last[(camera, kind)] = now
        return True

    def forget(self, camera: str) -> None:
        for key in [key for key in self._last if key[0] == camera]:
            del self._last[key]


class Bookmarker:
    """Takes events and alarm documents on the event loop, keeps the bookmarks they make, and writes them
    with ``store(batch)`` in a thread (one transaction per batch)."""

    def __init__(self, store: Callable[[list[Bookmark]], object], clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = now_utc) -> None:  # fmt: skip
        self._store = store
        self._now = now
        self.coalescer = Coalescer(clock=clock)
        self._pending: deque[Bookmark] = deque()
        self._writing: asyncio.Task[None] | None = None
        self._raised: dict[str, dict[str, str]] = {}  # per camera: picture alarm -> its "since", last seen
        self.stored = 0
        self.dropped = 0  # more than MAX_PENDING waiting, or the store failed

    def offer(self, bookmark: Bookmark) -> bool:
        """Keep ``bookmark`` unless its camera and kind had one within the window; True when kept."""
        if not self.coalescer.allow(bookmark.camera, bookmark.kind):
            return False
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return False
        self._pending.append(bookmark)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write(), name="bookmarks")
        return True

    async def _write(self) -> None:
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            try:
                await asyncio.to_thread(self._store, batch)
                self.stored += len(batch)
            except Exception as exc:
                self.dropped += len(batch)
                log.warning("bookmarks: storing %d failed: %s", len(batch), exc)

    def onvif_event(self, camera: str, event: Mapping[str, Any], clock_offset_s: float | None = None,
                    secrets: Iterable[str] = ()) -> bool:  # fmt: skip
        bookmark = onvif_bookmark(camera, event, self._now(), clock_offset_s, secrets)
        return bookmark is not None and self.offer(bookmark)

    def picture_alarms(self, camera: str, document: Mapping[str, Any]) -> int:
        """A camera's alarms document (``edgeagent.media.picture.alarms_document``) after a change: a
        bookmark for each picture alarm raised since the last one seen; returns how many were kept."""
        since = document.get("since")
        raised = {kind: when for kind, when in (since.items() if isinstance(since, dict) else ())
                  if kind in PICTURE_KINDS and isinstance(when, str)}  # fmt: skip
        before, self._raised[camera] = self._raised.get(camera, {}), raised
        kept = 0
        for kind in PICTURE_KINDS:
            when = raised.get(kind)
            if when is None or before.get(kind) == when:
                continue
            try:
                at = parse_time(when, "since")
            except TimeRangeError:
                at = self._now()
            kept += self.offer(Bookmark(camera, at, kind, PICTURE, PICTURE_TEXT[kind]))
        return kept

    def forget(self, camera: str) -> None:
        """A camera removed (or changed) by a reload."""
        self._raised.pop(camera, None)
        self.coalescer.forget(camera)

    async def close(self) -> None:
        """Wait for what is being written (before the index closes)."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
