"""Live view: turns an SDP offer for a camera into a running viewer, within the configured limits.

Signaling (WHEP over HTTP, offers over MQTT) and the operator page only ever call this service. Each
viewer gets its own peer connection and track; what it is fed from (the camera's H.264 as it comes, or
the camera's one shared transcode) is decided per camera by its ``CameraFeed``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import Counter

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import OperationError

from edgeagent.camera.hub import CameraHub
from edgeagent.config import CameraSection, WebRtcSection
from edgeagent.live.candidates import screen_candidates
from edgeagent.live.errors import LiveError
from edgeagent.live.feed import CameraFeed
from edgeagent.live.ice import offered_host_addresses, offers_loopback, rtc_configuration
from edgeagent.live.offer import check_offer, h264_preferences
from edgeagent.live.session import LiveSession, SessionState
from edgeagent.live.stats import LiveStats
from edgeagent.live.track import CameraTrack

log = logging.getLogger(__name__)

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COUNTERS = ("bytes_sent", "packets_sent", "packets_dropped", "keyframe_requests")


class LiveService:
    def __init__(
        self, webrtc: WebRtcSection, cameras: dict[str, CameraSection], hubs: dict[str, CameraHub]
    ) -> None:
        self.webrtc = webrtc
        self._configuration = rtc_configuration(webrtc)
        self._offers_loopback = offers_loopback(webrtc)
        self._feeds = {
            name: CameraFeed(name, section, hubs[name], webrtc) for name, section in cameras.items() if name in hubs
        }
        self._sessions: dict[str, LiveSession] = {}
        self._closed_counters: dict[str, Counter[str]] = {name: Counter() for name in self._feeds}
        self._latest: dict[str, LiveSession] = {}  # per camera, the last session that showed a picture
        self._timeouts: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[bool]] = set()
        self.sessions_started = 0
        self.refusals: Counter[int] = Counter()
        self._closed = False

    # -- cameras (at start and on a configuration reload) ------------------------------------------

    def add_camera(self, name: str, section: CameraSection, hub: CameraHub) -> None:
        if name in self._feeds:
            raise ValueError(f"camera {name} is already in the live view")
        self._feeds[name] = CameraFeed(name, section, hub, self.webrtc)
        self._closed_counters[name] = Counter()

    async def remove_camera(self, name: str, reason: str = "camera removed") -> None:
        """End the camera's viewers and its transcode; offers for it get 404 from now on."""
        feed = self._feeds.pop(name, None)
        if feed is None:
            return
        sessions = [session for session in self._sessions.values() if session.camera == name]
        await asyncio.gather(*(self._close(session, reason) for session in sessions), return_exceptions=True)
        await feed.close()
        self._closed_counters.pop(name, None)
        self._latest.pop(name, None)

    # -- offers -----------------------------------------------------------------------------------

    async def offer(self, camera: str, sdp: str, session_id: str | None = None) -> tuple[str, str]:
        """Answer ``sdp`` with a viewer of ``camera``: ``(session_id, answer_sdp)``, or ``LiveError``.

        ``session_id`` lets a signaling channel use the client's own id (MQTT answers on a topic named
        after it); by default the service makes one.
        """
        try:
            return await self._offer(camera, sdp, session_id)
        except LiveError as exc:
            self.refusals[exc.status] += 1
            log.info("live: offer for camera %r refused: %s", camera[:64], exc)
            raise

    async def _offer(self, camera: str, sdp: str, session_id: str | None) -> tuple[str, str]:
        if self._closed:
            raise LiveError(503, "live view is shutting down")
        feed = self._feeds.get(camera)
        if feed is None:
            raise LiveError(404, f"unknown camera {camera[:64]!r}")
        check_offer(sdp)
        screened = screen_candidates(sdp, self._offers_loopback)
        if screened.dropped:
            log.info("live: offer for camera %s: %s", camera, screened.summary())
        sdp = screened.sdp
        if session_id is None:
            session_id = secrets.token_urlsafe(12)
        elif not SESSION_ID_PATTERN.match(session_id):
            raise LiveError(400, "session id must be 1 to 64 letters, digits, '-' or '_'")
        if session_id in self._sessions:
            raise LiveError(409, "session id already in use")
        self._check_limits(camera)

        pc = RTCPeerConnection(configuration=self._configuration)
        track = CameraTrack(feed, session_id)
        session = LiveSession(session_id, camera, pc, track)
        self._sessions[session_id] = session  # counts against the limits from now on
        try:
            # Track and codec preferences before the remote description, or aiortc ignores them.
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(h264_preferences())
            # aiortc cannot pass a browser's keyframe request (PLI/FIR) to a track that sends packets;
            # the sender calls this method for them, so the shared transcoder can answer.
            transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except OperationError as exc:
                raise LiveError(406, f"no common codec ({exc})") from None
            except Exception as exc:
                raise LiveError(400, f"offer rejected: {exc or type(exc).__name__}") from None
            with offered_host_addresses(self.webrtc.host_addresses):
                await pc.setLocalDescription(await pc.createAnswer())
        except BaseException as exc:
            await self._close(session, "offer failed")
            if isinstance(exc, LiveError | asyncio.CancelledError):
                raise
            log.exception("live: answering an offer for camera %s failed", camera)
            raise LiveError(500, f"could not answer the offer ({type(exc).__name__})") from None
        if session.state == SessionState.CLOSED:  # closed while we negotiated (shutdown)
            raise LiveError(503, "session closed while answering")

        track.on_first_frame = lambda: self._first_frame(session)
        track.attach()

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            self._on_connection_state(session)

        self._timeouts[session_id] = asyncio.get_running_loop().call_later(
            self.webrtc.connect_timeout_s, self._connect_timeout, session
        )
        self.sessions_started += 1
        mode = "transcode" if feed.transcoding else "passthrough"
        log.info("live: session %s for camera %s (%s)", session_id, camera, mode)
        return session_id, pc.localDescription.sdp

    def _check_limits(self, camera: str) -> None:
        on_camera = sum(1 for session in self._sessions.values() if session.camera == camera)
        if on_camera >= self.webrtc.max_viewers_per_camera:
            raise LiveError(503, f"camera {camera} has its maximum of {self.webrtc.max_viewers_per_camera} viewers")
        if len(self._sessions) >= self.webrtc.max_viewers_total:
            raise LiveError(503, f"the agent has its maximum of {self.webrtc.max_viewers_total} viewers")

    # -- session events ---------------------------------------------------------------------------

    def _first_frame(self, session: LiveSession) -> None:
        self._latest[session.camera] = session
        log.info("live: session %s: first frame %.3f s after the offer", session.id, session.time_to_first_frame_s)

    def _on_connection_state(self, session: LiveSession) -> None:
        state = session.pc.connectionState
        if state == "connected" and session.state == SessionState.CONNECTING:
            session.state = SessionState.CONNECTED
            session.connected_at = time.monotonic()
            timer = self._timeouts.pop(session.id, None)
            if timer is not None:
                timer.cancel()
        elif state in ("failed", "closed"):
            self._close_soon(session, f"connection {state}")

    def _connect_timeout(self, session: LiveSession) -> None:
        self._timeouts.pop(session.id, None)
        if session.state == SessionState.CONNECTING:
            self._close_soon(session, f"not connected within {self.webrtc.connect_timeout_s:g} s")

    def _close_soon(self, session: LiveSession, reason: str) -> None:
        if session.state == SessionState.CLOSED:
            return
        task = asyncio.get_running_loop().create_task(self._close(session, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, session: LiveSession, reason: str) -> bool:
        if session.state == SessionState.CLOSED:
            return False
        session.state = SessionState.CLOSED
        session.closed_reason = reason
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        timer = self._timeouts.pop(session.id, None)
        if timer is not None:
            timer.cancel()
        session.track.stop()  # also when the sender never started
        self._closed_counters[session.camera].update(session.counters())
        try:
            await session.pc.close()
        except Exception:
            log.exception("live: closing session %s", session.id)
        log.info("live: session %s for camera %s closed: %s", session.id, session.camera, reason)
        return True

    async def close_session(self, session_id: str) -> bool:
        """End a viewer (WHEP DELETE). False when there is no such session."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        return await self._close(session, "closed by the viewer")

    async def close(self) -> None:
        """End every viewer and every transcode (agent shutdown)."""
        self._closed = True
        await asyncio.gather(
            *(self._close(session, "agent shutting down") for session in list(self._sessions.values())),
            return_exceptions=True,
        )
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.gather(*(feed.close() for feed in self._feeds.values()), return_exceptions=True)

    # -- figures ----------------------------------------------------------------------------------

    def feed(self, camera: str) -> CameraFeed:
        """The camera's feed, for other senders of its live picture (the uplink to the centre)."""
        return self._feeds[camera]

    def sessions(self, camera: str | None = None) -> list[LiveSession]:
        return [s for s in self._sessions.values() if camera is None or s.camera == camera]

    def camera_stats(self, camera: str) -> LiveStats:
        """Viewers and what they cost, for the camera's health message and /metrics."""
        feed = self._feeds[camera]
        sessions = self.sessions(camera)
        counters = Counter(self._closed_counters[camera])
        for session in sessions:
            counters.update(session.counters())
        transcoder = feed.transcoder
        latest = self._latest.get(camera)
        return LiveStats(
            viewers=len(sessions),
            viewers_connected=sum(1 for s in sessions if s.state == SessionState.CONNECTED),
            bytes_sent=counters["bytes_sent"],
            packets_sent=counters["packets_sent"],
            packets_dropped=counters["packets_dropped"],
            keyframe_requests=counters["keyframe_requests"],
            time_to_first_frame_s=latest.time_to_first_frame_s if latest else None,
            time_to_live_s=latest.time_to_live_s if latest else None,
            transcoding=feed.transcoding,
            transcoders_started=feed.transcoders_started,
            transcode=transcoder.stats() if transcoder is not None else None,
        )

    def totals(self) -> dict[str, object]:
        per_camera = [self.camera_stats(camera) for camera in self._feeds]
        return {
            "viewers": len(self._sessions),
            "sessions_started": self.sessions_started,
            "offers_refused": sum(self.refusals.values()),
            "transcoders": sum(1 for feed in self._feeds.values() if feed.transcoding),
            **{name: sum(int(getattr(stats, name)) for stats in per_camera) for name in COUNTERS},
        }
