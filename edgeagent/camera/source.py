"""RTSP ingest: the only code that talks to a camera.

A thread per camera opens the stream with PyAV, demuxes without decoding and hands every packet to the
camera's hub on the event loop. Every read is bounded by a timeout. When a connection ends or fails, what
happens next depends on why (see failures.py): a camera that is away is watched with a cheap TCP probe and
reconnected the moment it accepts again, however long it was gone; a camera that answers "no" (credentials,
4xx/5xx, an unusable stream) gets capped exponential backoff, so that its account is not locked.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import threading
import time
from collections.abc import Callable

import av
import av.error
from pydantic import SecretStr

from edgeagent.camera import challenge, handoff, tls_relay
from edgeagent.camera.demux import checked_stream, demux, demuxer_options
from edgeagent.camera.failures import (
    STREAM_URL_RETRY_S,
    WAITING_AFTER_NO_ANSWER,
    WAITING_FOR_CONNECTIONS,
    WAITING_FOR_STREAM_URL,
    RetryPolicy,
    camera_refused,
    describe_error,
    waiting_after,
)
from edgeagent.camera.hub import CameraHub
from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.camera.reachability import wait_until_accepting
from edgeagent.camera.stream_url import StreamUrl
from edgeagent.config import CameraSection

log = logging.getLogger(__name__)

HOUR_S = 3600.0
# How long a packet may wait for the loop while no consumer needs it at once: a recorder's fragment reaches
# the disk that much later at most (well inside the 1 s a SIGKILL may cost), the stall watchdog drains too.
UNWATCHED_HANDOFF_S = 0.1


class CameraState(enum.StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"


class CameraSource:
    """Keeps one connection to one camera alive and feeds its hub."""

    def __init__(self, name: str, section: CameraSection, password: SecretStr | None, hub: CameraHub) -> None:
        self.name = name
        self.hub = hub
        self.stream = StreamUrl(name, section, password)  # ONVIF's resolver, if any, is set by unit.py
        self.state = CameraState.CONNECTING
        self.last_error: str | None = None
        self.connects = 0
        self.failures_in_row = 0  # connect attempts that failed since the last good connection
        self.retry_at: float | None = None  # time.monotonic() of the next attempt while offline
        # While not online: what the source waits for before its next attempt (failures.WAITING_*);
        # retry_at is None while it waits for the camera to accept connections (probed every 0.25 s).
        self.waiting_for: str | None = None
        self._reconnect_times: collections.deque[float] = collections.deque()
        self._stall_times: collections.deque[float] = collections.deque()
        self._stalled = False
        self.stalls_total = 0
        self._generation = 0
        self._generation_connected = False
        self._stopping = threading.Event()
        self._wake = threading.Event()  # interrupts a backoff wait (restart, stop)
        self._restart = threading.Event()
        self._drop = threading.Event()  # the watchdog found a stall: leave this connection, make a new one
        self._thread: threading.Thread | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: handoff.LoopInbox | None = None
        self._state_listeners: list[Callable[[CameraSource], None]] = []

    @property
    def section(self) -> CameraSection:
        return self.stream.section

    # -- lifetime ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox = handoff.inbox_for(self._loop)
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.name}", daemon=True)
        self._thread.start()
        self._watchdog = self._loop.create_task(self._watch_stalls(), name=f"stall-watchdog-{self.name}")

    def restart(self) -> None:
        """Drop the connection and connect again at once (an operator's command)."""
        log.info("camera %s: restart requested", self.name)
        self._restart.set()
        self._wake.set()

    async def stop(self, join_s: float = 3.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, join_s)
            if self._thread.is_alive():
                log.warning("camera %s: ingest thread still in a read after %.0f s", self.name, join_s)

    def on_state_change(self, listener: Callable[[CameraSource], None]) -> None:
        """``listener(source)`` runs on the event loop after every change of state."""
        self._state_listeners.append(listener)

    # -- health -----------------------------------------------------------------------------------

    def _recent(self, times: collections.deque[float]) -> int:
        horizon = time.monotonic() - HOUR_S
        while times and times[0] < horizon:
            times.popleft()
        return len(times)

    @property
    def reconnects_last_hour(self) -> int:
        return self._recent(self._reconnect_times)

    @property
    def stalls_last_hour(self) -> int:
        return self._recent(self._stall_times)

    @property
    def reconnects_total(self) -> int:
        return max(0, self.connects - 1)

    # -- event-loop side --------------------------------------------------------------------------

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        self.state = state
        log.info("camera %s: %s%s", self.name, state, f" ({error})" if error else "")
        for listener in tuple(self._state_listeners):
            try:
                listener(self)
            except Exception:
                log.exception("camera %s: state listener failed", self.name)

    def _on_connected(self, stream: StreamInfo) -> None:
        self.connects += 1
        self.failures_in_row = 0
        self.retry_at = None
        self.waiting_for = None
        if self.connects > 1:
            self._reconnect_times.append(time.monotonic())
        self._stalled = False
        log.info(
            "camera %s: connected to %s (%s %dx%d)",
            self.name,
            self.stream.display,
            stream.codec,
            stream.width,
            stream.height,
        )

    def _on_packet(self, packet: Packet) -> None:
        if self._stalled:
            return  # the demuxer woke up late; the connection is being replaced
        last = self.hub.last_packet_at
        if self.state == CameraState.ONLINE and last is not None:
            gap = packet.arrival - last
            if gap > self.section.stall_timeout_s:
                # FFmpeg hands out the frame it held for reassembly when its read times out: a packet
                # that ends a silence is the stall's last word, not a sign of life.
                self._count_stall()
                self._on_disconnected(f"stalled: no packet for {gap:.1f} s")
                return
        self.hub.publish(packet)
        if self.state != CameraState.ONLINE:
            self.last_error = None
            self._set_state(CameraState.ONLINE)

    def _on_disconnected(
        self,
        error: str,
        retry_in_s: float | None = None,
        failed: bool = False,
        timed_out: bool = False,
        waiting_for: str | None = None,
    ) -> None:
        if timed_out and self.state == CameraState.ONLINE and not self._stalled:
            self._count_stall()  # the demuxer's own read timeout got there before the watchdog
        if failed:
            self.failures_in_row += 1
        self._set_waiting(waiting_for, retry_in_s)
        self.hub.stream_ended()
        self._set_state(CameraState.OFFLINE, error)

    def _set_waiting(self, waiting_for: str | None, retry_in_s: float | None) -> None:
        self.waiting_for = waiting_for
        self.retry_at = None if retry_in_s is None else time.monotonic() + retry_in_s

    async def _watch_stalls(self) -> None:
        """A camera that keeps its socket open but sends nothing is as down as one that is off."""
        timeout = self.section.stall_timeout_s
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            if self._inbox is not None:
                self._inbox.drain()  # packets that woke nobody: the age below is of the last one that came
            last = self.hub.last_packet_at
            if self.state != CameraState.ONLINE or last is None or self._stalled:
                continue
            age = time.monotonic() - last
            if age > timeout:
                self._count_stall()
                self._on_disconnected(f"stalled: no packet for {age:.1f} s")

    def _count_stall(self) -> None:
        self._stalled = True
        self._drop.set()
        self._stall_times.append(time.monotonic())
        self.stalls_total += 1

    def _call(self, callback: Callable[..., None], *args: object, within_s: float | None = None) -> None:
        assert self._inbox is not None
        try:  # in order, packets and news of the connection alike
            if within_s is None:
                self._inbox.call(callback, *args)
            else:
                self._inbox.call_within(within_s, callback, *args)
        except RuntimeError:  # the loop is closed: the agent is shutting down
            self._stopping.set()
            self._wake.set()  # a probe or a pause in progress ends at once

    # -- ingest thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        policy = RetryPolicy()
        probed = False  # the last step was a probe that the camera accepted
        while not self._stopping.is_set():
            self._restart.clear()
            self._drop.clear()
            self._wake.clear()
            if not probed and not self._camera_accepts():
                continue  # woken: stopping, or a restart that probes again
            probed = False
            failed = timed_out = refused = False
            waiting = WAITING_FOR_CONNECTIONS
            started = time.monotonic()
            try:
                self._session()
                if self._drop.is_set():
                    error = self.last_error or "stalled"
                elif self._restart.is_set():
                    error = "restarted by request"
                else:
                    error = "camera ended the stream"
            except Exception as exc:  # every failure of a camera is survivable
                error = describe_error(exc)
                failed = not self._generation_connected
                timed_out = isinstance(exc, TimeoutError | av.error.ExitError)
                refused = camera_refused(exc)
                waiting = waiting_after(exc)
            if self._stopping.is_set():
                break
            if self._restart.is_set():
                self._call(self._on_disconnected, error, 0.0, False)
                continue
            connected = self._generation_connected
            delay = policy.after_attempt(connected, time.monotonic() - started, refused)
            if delay is not None:
                self._pause(error, delay, failed, timed_out, waiting)
                continue
            if not self.stream.known:  # nothing to probe: the next attempt asks ONVIF again
                self._pause(error, STREAM_URL_RETRY_S, failed, timed_out, WAITING_FOR_STREAM_URL)
                continue
            self._call(self._on_disconnected, error, None, failed, timed_out, WAITING_FOR_CONNECTIONS)
            self.stream.resolve_quietly()  # the camera may have moved: probe where it is now
            accepted, probes_failed = wait_until_accepting(*self.stream.address, self._wake)
            probed = accepted
            if not accepted:
                self.stream.forget()
            delay = policy.after_probe(connected, probes_failed) if accepted else None
            if delay is not None:  # already reported offline: only what it waits for changes
                self._call(self._set_waiting, WAITING_AFTER_NO_ANSWER, delay)
                self._wake.wait(delay)

    def _camera_accepts(self) -> bool:
        """Before an open that no probe preceded (the first, one after a backoff or a restart): wait until
        the camera's address accepts TCP. FFmpeg's own connect into an address that drops SYNs would wait
        out the kernel's retransmissions (1, 3, 7 s...) before it saw the camera back; a probe every
        0.25 s sees it within one interval. False when woken first."""
        if not self.stream.known:
            return True  # its device has not named the stream yet: the session asks, and says why not
        self.stream.resolve_quietly()
        address = self.stream.address
        accepted = wait_until_accepting(*address, self._wake, on_first_failure=self._report_unreachable)[0]
        if not accepted:
            self.stream.forget()
        return accepted

    def _report_unreachable(self, reason: str) -> None:
        self._call(self._on_disconnected, reason, None, True, False, WAITING_FOR_CONNECTIONS)

    def _pause(self, error: str, delay: float, failed: bool, timed_out: bool, waiting: str) -> None:
        self._call(self._on_disconnected, error, delay, failed, timed_out, waiting)
        log.debug("camera %s: %s in %.1f s", self.name, waiting, delay)
        self._wake.wait(delay)

    def _session(self) -> None:
        """One connection: open, demux until it ends or fails. Always closes the container."""
        self._generation_connected = False
        try:
            self.stream.resolve()
        finally:
            self.stream.forget()  # the next attempt asks again
        # An rtsps:// camera's certificate is verified here, by the relay, before FFmpeg sees the stream.
        with tls_relay.relayed_url(self.section, self.stream.with_password, self._loop) as url:
            container = av.open(
                challenge.url_for_ffmpeg(self.section, url, self.stream.password is not None),
                options=demuxer_options(self.section),
                timeout=(self.section.open_timeout_s, None),  # open only; reads: the `timeout` option
            )
            self._open_session(container)

    def _open_session(self, container: av.container.InputContainer) -> None:
        try:
            video, stream = checked_stream(container, self._generation + 1)
            self._generation = stream.generation
            self._generation_connected = True
            self._call(self._on_connected, stream)
            demux(container, video, stream, self._should_end, self._deliver)
        finally:
            container.close()

    def _deliver(self, packet: Packet) -> None:
        # Woken for every packet only when a consumer takes packets at once (a viewer); a recorder alone
        # takes them once a fragment, and the loop then wakes a few times a second (handoff.py).
        prompt = self.hub.prompt or self.state != CameraState.ONLINE
        self._call(self._on_packet, packet, within_s=None if prompt else UNWATCHED_HANDOFF_S)

    def _should_end(self) -> bool:
        return self._stopping.is_set() or self._restart.is_set() or self._drop.is_set()
