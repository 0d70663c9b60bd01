"""One camera's publisher to the centre's media server: one peer connection, one copy of the picture.

The peer connection sends the camera's live-view track (``CameraTrack``): H.264 as the camera sent it,
the cached GOP first, and the same track goes on through camera reboots, so the media server sees one
publisher whose picture pauses and resumes. When the media server lets the publication go (restarted,
session expired, ICE failed, not connected in time) the publisher makes a new peer connection and
publishes again, with capped, jittered exponential backoff, for as long as it is wanted.

Its figures are for operators: why it does not publish (a reason from ``signaling.REASONS`` and the
redacted error), how often it started, and what was sent (aiortc's counters, read every ``STATS_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from edgeagent.camera.packet import StreamInfo
from edgeagent.live.feed import CameraFeed
from edgeagent.live.ice import offered_host_addresses
from edgeagent.live.offer import h264_preferences
from edgeagent.live.track import CameraTrack
from edgeagent.uplink.sent import Sent, sent_by
from edgeagent.uplink.signaling import Signaling, SignalingError
from edgeagent.urls import redact_text

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 20.0
KEEPALIVE_S = 15.0
CONNECT_TIMEOUT_S = 15.0
RESTART_GAP_S = 2.0
STATS_S = 1.0  # how often the peer connection's counters are read for health and /metrics


class UplinkState(enum.StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    PUBLISHING = "publishing"  # the peer connection is connected: the media server gets the picture
    RETRYING = "retrying"


class NotConnected(SignalingError):
    """The media server answered, but the peer connection did not connect (ICE, DTLS)."""

    reason = "not_connected"


class UplinkPublisher:
    def __init__(
        self,
        camera: str,
        feed: CameraFeed,
        signaling: Callable[[], Signaling],
        configuration: RTCConfiguration,
        host_addresses: Sequence[str] = (),
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.camera = camera
        self.feed = feed
        self._signaling = signaling
        self._configuration = configuration
        self._host_addresses = tuple(host_addresses)
        self._connect_timeout_s = connect_timeout_s
        self.state = UplinkState.STOPPED
        self.pc: RTCPeerConnection | None = None
        self.track: CameraTrack | None = None
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0  # publishes started: a peer connection and an offer each
        self.publications = 0  # publications that reached "connected"
        self.last_error: str | None = None
        self.reason: str | None = None  # of the latest failure of this run (None once published)
        self.camera_restarts = 0  # the camera's stream restarted under a publication, which went on
        self.server_restarts = 0  # connected publications lost while wanted, and so published again
        self.published_at: float | None = None
        self.lost_at: float | None = None
        self.retry_at: float | None = None  # while retrying: when the next attempt starts
        self.last_recovery_s: float | None = None  # from a lost publication to the next one connected
        self._sent_before = Sent()  # the peer connections already closed
        self._sent_now: dict[RTCPeerConnection, Sent] = {}  # the open ones, as last read
        self._picture_started = False
        self._stopped_at = float("-inf")
        feed.hub.on_stream_change(self._on_stream_change)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self.state = UplinkState.CONNECTING
            self.reason = None
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"uplink-{self.camera}")

    def halt(self) -> asyncio.Task[None] | None:
        """Stop at once (a start right after makes a new publication); the old publication's clean-up goes
        on in the returned task."""
        task, self._task = self._task, None
        self.state = UplinkState.STOPPED
        if task is None or task.done():
            return None
        self._stopped_at = time.monotonic()
        task.cancel()
        return task

    async def stop(self) -> None:
        task = self.halt()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- figures ----------------------------------------------------------------------------------

    @property
    def sent(self) -> Sent:
        """Sent by every publication so far, as last read (at most ``STATS_S`` old)."""
        return sum(self._sent_now.values(), self._sent_before)

    async def measure(self) -> Sent:
        """Sent by every publication so far, read now."""
        fresh = {pc: await sent_by(pc) for pc in list(self._sent_now)}
        # A connection closed meanwhile has its final figures in _sent_before already.
        return sum((sent for pc, sent in fresh.items() if pc in self._sent_now), self._sent_before)

    def _failed(self, reason: str, message: str) -> None:
        self.reason = reason
        self.last_error = redact_text(" ".join(message.split()))[:300]  # one line, without credentials

    def _on_stream_change(self, stream: StreamInfo | None) -> None:
        """The camera's stream (re)started: under a running publication, that is a camera restart it rode."""
        if stream is None or self.state != UplinkState.PUBLISHING:
            return
        if self._picture_started:
            self.camera_restarts += 1
        self._picture_started = True

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        # Stopped and started again at once (a flapping centre, or a stranger on the broker): each
        # publication costs the media server a session and a handshake, so not more than one per gap.
        await asyncio.sleep(max(0.0, self._stopped_at + RESTART_GAP_S - time.monotonic()))
        try:
            while True:
                self.attempts += 1
                self.state = UplinkState.CONNECTING
                self.retry_at = None
                reached = await self._publish_once()
                if reached:
                    backoff = BACKOFF_FIRST_S
                    self.server_restarts += 1
                self.state = UplinkState.RETRYING
                self.lost_at = time.monotonic()
                delay = backoff * random.uniform(0.8, 1.2)
                self.retry_at = self.lost_at + delay
                log.info("uplink: camera %s: publishing again in %.1f s (%s)", self.camera, delay, self.last_error)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            if self._task is asyncio.current_task():
                self.state = UplinkState.STOPPED
            self.retry_at = None

    async def _publish_once(self) -> bool:
        """One publication, until it is lost: whether it ever connected."""
        signaling = self._signaling()
        pc = RTCPeerConnection(configuration=self._configuration)
        track = CameraTrack(self.feed, f"uplink-{self.camera}")
        self.pc, self.track = pc, track
        failed = asyncio.Event()
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                failed.set()

        reached = False
        self._sent_now[pc] = Sent()
        meter = asyncio.get_running_loop().create_task(self._meter(pc), name=f"uplink-stats-{self.camera}")
        try:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(h264_preferences())
            transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
            with offered_host_addresses(self._host_addresses):
                await pc.setLocalDescription(await pc.createOffer())
            answer = await signaling.publish(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            track.attach()
            ended = await _first(
                {"connected": connected.wait(), "failed": failed.wait(), "lost": signaling.lost.wait()},
                self._connect_timeout_s,
            )
            if ended != "connected":
                raise NotConnected(f"not connected ({ended or f'within {self._connect_timeout_s:g} s'})")
            reached = True
            self._published()
            self._failed(*await self._hold(signaling, failed))
        except SignalingError as exc:
            self._failed(exc.reason, str(exc))
        except Exception as exc:
            log.exception("uplink: camera %s: publishing failed", self.camera)
            self._failed("error", f"{type(exc).__name__}: {exc}")
        finally:
            meter.cancel()
            await self._close(signaling, pc, track)
        return reached

    async def _meter(self, pc: RTCPeerConnection) -> None:
        """Read the peer connection's counters every ``STATS_S``: health and /metrics are read without
        awaiting, and aiortc's getStats is a coroutine."""
        while True:
            with contextlib.suppress(Exception):  # figures are worth no crash of the publication
                self._sent_now[pc] = await sent_by(pc)
            await asyncio.sleep(STATS_S)

    def _published(self) -> None:
        now = time.monotonic()
        self.publications += 1
        self.state = UplinkState.PUBLISHING
        self.reason = None
        self._picture_started = self.feed.hub.stream is not None
        self.published_at = now
        if self.lost_at is not None:
            self.last_recovery_s = now - self.lost_at
        log.info("uplink: camera %s published (attempt %d)", self.camera, self.attempts)

    async def _hold(self, signaling: Signaling, failed: asyncio.Event) -> tuple[str, str]:
        """Keep the publication up; return why it ended (reason, message)."""
        while True:
            ended = await _first({"failed": failed.wait(), "lost": signaling.lost.wait()}, KEEPALIVE_S)
            if ended == "failed":
                return "lost", "the peer connection failed"
            if ended == "lost":
                return "lost", "the media server let the publication go"
            try:
                await signaling.keepalive()
            except SignalingError as exc:
                return exc.reason, str(exc)

    async def _close(self, signaling: Signaling, pc: RTCPeerConnection, track: CameraTrack) -> None:
        if self.track is track:  # a stop and a quick start: the next publication may already be under way
            self.track, self.pc = None, None
        track.stop()
        try:
            with contextlib.suppress(Exception):
                await asyncio.shield(signaling.unpublish())
            with contextlib.suppress(Exception):
                await pc.close()
            with contextlib.suppress(Exception):
                self._sent_now[pc] = await sent_by(pc)  # the final figures (aiortc keeps them after close)
        finally:
            self._sent_before += self._sent_now.pop(pc, Sent())


async def _first(waits: dict[str, Coroutine[Any, Any, object]], timeout_s: float) -> str | None:
    """The name of the first of ``waits`` to finish, or None after ``timeout_s``."""
    tasks = {asyncio.ensure_future(wait): name for name, wait in waits.items()}
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return tasks[next(iter(done))] if done else None
