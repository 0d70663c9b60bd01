"""Limits on what MQTT commands can make the agent do, whoever can publish on the broker.

Per camera: a ``restart`` at most every ``restart_interval_s`` (more are ignored); snapshot requests
coalesced (one decode in flight, one start per ``snapshot_interval_s``, any number of requests meanwhile
fold into one more); WebRTC offers capped in size and in number being answered at once, and refused
without an answer for a session id seen recently (its answer topic belongs to someone else's viewer).
What is refused is counted and logged at most once a minute per kind and camera. Topics are bounded
before anything is parsed or logged: ``MqttPublisher`` drops longer ones in paho's thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edgeagent.publish.ratelimit import BoundedTable, Clock, LogThrottle, MinInterval, bounded

log = logging.getLogger(__name__)

MAX_TOPIC_CHARS = 512
RESTART_INTERVAL_S = 30.0
SNAPSHOT_INTERVAL_S = 2.0
MAX_OFFER_PAYLOAD_BYTES = 64 * 1024 + 1024  # the SDP's 64 kB and the JSON around it
SESSION_ID_MEMORY_S = 600.0
MAX_REMEMBERED_SESSIONS = 4096


@dataclass(slots=True)
class _Coalesced:
    last_start: float = float("-inf")
    running: asyncio.Task[object] | None = None
    timer: asyncio.TimerHandle | None = None
    pending: bool = False


@dataclass
class SnapshotCoalescer:
    """``request(key)`` runs ``run(key)`` now, or folds into the one run already due for ``key``."""

    run: Callable[[str], Awaitable[object]]
    interval_s: float = SNAPSHOT_INTERVAL_S
    clock: Clock = time.monotonic
    runs: int = 0
    coalesced: int = 0
    _keys: dict[str, _Coalesced] = field(default_factory=dict)

    def request(self, key: str) -> None:
        state = self._keys.setdefault(key, _Coalesced())
        if state.running is not None or state.timer is not None:
            if state.pending:
                self.coalesced += 1
            state.pending = True
            return
        self._schedule(key, state)

    def _schedule(self, key: str, state: _Coalesced) -> None:
        wait = state.last_start + self.interval_s - self.clock()
        if wait > 0:
            state.timer = asyncio.get_running_loop().call_later(wait, self._start, key, state)
        else:
            self._start(key, state)

    def _start(self, key: str, state: _Coalesced) -> None:
        state.timer = None
        state.pending = False
        state.last_start = self.clock()
        self.runs += 1
        state.running = asyncio.ensure_future(self.run(key))
        state.running.add_done_callback(lambda task: self._done(key, state, task))

    def _done(self, key: str, state: _Coalesced, task: asyncio.Task[object]) -> None:
        state.running = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("mqtt: requested snapshot of camera %s failed: %s", key, task.exception())
        if state.pending:
            self._schedule(key, state)

    def close(self) -> None:
        for state in self._keys.values():
            if state.timer is not None:
                state.timer.cancel()
            if state.running is not None:
                state.running.cancel()


class CommandLimits:
    """The policy for every MQTT command; each ``allow_*`` says yes or counts and logs the refusal."""

    def __init__(
        self,
        *,
        restart_interval_s: float = RESTART_INTERVAL_S,
        max_offers_in_flight: int = 4,
        clock: Clock = time.monotonic,
    ) -> None:
        self._clock = clock
        self._restarts = MinInterval(restart_interval_s, clock=clock)
        self.max_offers_in_flight = max(1, max_offers_in_flight)
        self.offers_in_flight = 0
        self._sessions: BoundedTable[list[float]] = BoundedTable(MAX_REMEMBERED_SESSIONS, lambda: [float("-inf")])
        self._log = LogThrottle(period_s=60.0, max_lines=20, clock=clock)
        self.refused: Counter[str] = Counter()

    def _refuse(self, kind: str, camera: str, reason: str) -> bool:
        self.refused[kind] += 1
        unlogged = self._log.should_log(f"{kind}/{camera}")
        if unlogged is not None:
            more = f" ({unlogged} more since the last line)" if unlogged else ""
            log.warning("mqtt: %s for camera %s ignored: %s%s", kind, bounded(camera, 64), reason, more)
        return False

    def allow_restart(self, camera: str) -> bool:
        if self._restarts.allow(camera):
            return True
        wait = self._restarts.wait_s(camera)
        return self._refuse("restart", camera, f"one restart per {self._restarts.interval_s:g} s ({wait:.0f} s to go)")

    def begin_offer(self, camera: str, payload: bytes) -> bool:
        """Whether this offer may be answered; when it may, call ``end_offer`` once it is."""
        if len(payload) > MAX_OFFER_PAYLOAD_BYTES:
            return self._refuse("offer", camera, f"payload of {len(payload)} bytes")
        if self.offers_in_flight >= self.max_offers_in_flight:
            return self._refuse("offer", camera, f"{self.offers_in_flight} offers already being answered")
        try:
            message = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            message = None  # malformed: the signaling code says why
        session_id = message.get("session_id") if isinstance(message, dict) else None
        if isinstance(session_id, str):
            now = self._clock()
            seen = self._sessions.peek(session_id[:128])
            if seen is not None and now - seen[0] < SESSION_ID_MEMORY_S:
                return self._refuse("offer", camera, "session id already used")
            self._sessions.get(session_id[:128])[0] = now
        self.offers_in_flight += 1
        return True

    def end_offer(self) -> None:
        self.offers_in_flight = max(0, self.offers_in_flight - 1)
