"""The real agent (``edgeagent run -c FILE``) with measuring probes, for the latency and GIL benchmarks.

Nothing of the agent is replaced; two probes are wrapped around it in this process only:

- latency: each viewer's track remembers the camera arrival time (``Packet.arrival``, taken in the ingest
  thread when the demuxer returned the packet) of the packet it hands to aiortc, and aiortc's
  ``RTCDtlsTransport._send_rtp`` is wrapped to note when each RTP packet of that frame has been handed to
  the socket. Packets of the cached GOP sent to a new viewer are left out: they are old by design.
- GIL: a decode load beside the agent, decoding a clip over and over as the transcoder does
  (``thread_count = 1``, every frame), in a thread of the agent process (``BENCH_DECODE_MODE=thread``) or
  in a worker process (``process``); ``BENCH_SWITCH_INTERVAL`` sets ``sys.setswitchinterval``.

``BENCH_SLIDING_MMAP_THRESHOLD=1`` leaves glibc's mmap threshold sliding (the memory benchmark's reference).
``BENCH_ONE_TICK_CATCH_UP=1`` stamps a new viewer's cached GOP one RTP tick per frame, as the agent did before
02e76a9 (the browser benchmark's reference for a join mid-GOP).

One proposed core change can be tried without editing the core: ``BENCH_NO_READ_TIMEOUT=1`` opens the
cameras with PyAV's open timeout only (``timeout=(open_s, None)``). PyAV's interrupt callback takes the GIL
on every check FFmpeg makes while a read timeout is set (several per RTP packet); the RTSP demuxer's own
``timeout`` option, which the source also sets, still bounds every read.

Signals: SIGUSR1 starts a measurement window; SIGUSR2 writes what was measured since to ``BENCH_PROBE_OUT``
(JSON, replaced atomically, with an increasing ``seq``).

    BENCH_PROBE_OUT=out.json [BENCH_DECODE_CLIP=clip.264] python -m benchmarks.probed_agent run -c FILE
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

import av

FIRST: list[float] = []  # seconds from camera arrival to the first RTP packet of a frame leaving
LAST: list[float] = []  # ... to the last RTP packet (marker bit) of the frame leaving
LAST_AT: list[float] = []  # the camera arrival (monotonic) of each frame in LAST
LOOP_LAG: list[float] = []  # how late a 5 ms timer of the event loop fires: what the machine adds
_TRANSPORT_TRACKS: dict[int, Any] = {}


def install_loop_lag_probe() -> None:
    """A task beside the agent's that sleeps 5 ms at a time and notes how late it wakes: the share of the
    latency that is the event loop being busy or descheduled, not the path of a packet."""
    import asyncio

    from edgeagent.agent import Agent

    run = Agent.run

    async def lag() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.005)
            LOOP_LAG.append(time.monotonic() - started - 0.005)

    async def run_with_probe(self: Agent) -> None:
        task = asyncio.get_running_loop().create_task(lag())
        try:
            await run(self)
        finally:
            task.cancel()

    Agent.run = run_with_probe  # type: ignore[method-assign]


def install_latency_probe() -> None:
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtp import is_rtcp

    from edgeagent.live import service as live_service
    from edgeagent.live.track import CameraTrack

    class ProbedTrack(CameraTrack):
        probe_arrival: float | None = None
        probe_timestamp: bytes = b""

        async def _next(self):  # type: ignore[no-untyped-def]
            packet, catch_up = await super()._next()
            self.probe_arrival = None if catch_up else packet.arrival
            return packet, catch_up

        def stop(self) -> None:
            for key, track in list(_TRANSPORT_TRACKS.items()):
                if track is self:
                    del _TRANSPORT_TRACKS[key]
            super().stop()

    live_service.CameraTrack = ProbedTrack  # type: ignore[misc]

    offer = live_service.LiveService.offer

    async def probed_offer(self, camera: str, sdp: str, session_id: str | None = None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        sid, answer = await offer(self, camera, sdp, session_id)
        for session in self.sessions(camera):
            if session.id == sid:
                for transceiver in session.pc.getTransceivers():
                    _TRANSPORT_TRACKS[id(transceiver.sender.transport)] = session.track
        return sid, answer

    live_service.LiveService.offer = probed_offer  # type: ignore[method-assign]

    send_rtp = RTCDtlsTransport._send_rtp

    async def probed_send_rtp(self: RTCDtlsTransport, data: bytes) -> None:
        await send_rtp(self, data)
        if is_rtcp(data):  # the sender's reports take the same way out; they carry no frame
            return
        track = _TRANSPORT_TRACKS.get(id(self))
        if track is None or track.probe_arrival is None:
            return
        delay = time.monotonic() - track.probe_arrival
        timestamp = data[4:8]
        if timestamp != track.probe_timestamp:
            track.probe_timestamp = timestamp
            FIRST.append(delay)
        if data[1] & 0x80:
            LAST.append(delay)
            LAST_AT.append(track.probe_arrival)

    RTCDtlsTransport._send_rtp = probed_send_rtp  # type: ignore[method-assign]


# -- the decode load ------------------------------------------------------------------------------------------


def _read_packets(path: str) -> list[bytes]:
    with av.open(path) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def _decode_forever(path: str, frames: Any, cpu: Any, stop: Any) -> None:
    """Decode every frame of the clip, again and again, as the shared transcoder's decoder does."""
    packets = _read_packets(path)
    codec = "hevc" if path.endswith(".265") else "h264"
    context = av.CodecContext.create(codec, "r")
    context.thread_count = 1
    while not stop.is_set():
        for data in packets:
            decoded = len(context.decode(av.Packet(data)))
            with frames.get_lock():
                frames.value += decoded
                cpu.value = time.thread_time()
            if stop.is_set():
                return


class DecodeLoad:
    def __init__(self, path: str, mode: str) -> None:
        self.mode = mode
        if mode == "process":
            ctx = multiprocessing.get_context("spawn")
            self.frames, self.cpu, self.stop = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Event()
            self.worker: Any = ctx.Process(target=_decode_forever, args=(path, self.frames, self.cpu, self.stop),
                                           daemon=True)
        else:
            self.frames, self.cpu, self.stop = multiprocessing.Value("q", 0), multiprocessing.Value("d", 0.0), \
                threading.Event()
            self.worker = threading.Thread(target=_decode_forever, args=(path, self.frames, self.cpu, self.stop),
                                           name="bench-decode", daemon=True)
        self.worker.start()
        self.mark()

    def mark(self) -> None:
        self._mark = (self.frames.value, self.cpu.value, time.monotonic())

    def figures(self) -> dict[str, float]:
        frames, cpu, wall = self.frames.value - self._mark[0], self.cpu.value - self._mark[1], \
            time.monotonic() - self._mark[2]
        return {"fps": frames / wall, "frames": frames, "wall_s": wall,
                "decoder_cpu_ms_per_frame": 1000 * cpu / frames if frames else None}

    def close(self) -> None:
        self.stop.set()


def drop_pyav_read_timeout() -> None:
    from edgeagent.camera import source

    real_open = av.open

    def open_without_read_timeout(*args: Any, timeout: Any = None, **kwargs: Any) -> Any:
        if isinstance(timeout, tuple):
            timeout = (timeout[0], None)
        return real_open(*args, timeout=timeout, **kwargs)

    source.av.open = open_without_read_timeout  # type: ignore[assignment]


def fresh_snapshot_decoder() -> None:
    """Proposed: a keyframe decoder per snapshot, closed after it, instead of one kept per camera (each keeps
    its 1080p picture buffers, about 2.7 MB a camera; a new one costs about 0.3 ms a snapshot)."""
    from edgeagent.media.snapshot import Snapshotter

    make = Snapshotter._make

    def make_and_release(self: Snapshotter, keyframe: Any) -> Any:
        try:
            return make(self, keyframe)
        finally:
            decoder = getattr(self, "_decoder", None)  # since a327cac the core keeps no decoder
            if decoder is not None:
                decoder.close()

    Snapshotter._make = make_and_release  # type: ignore[method-assign]


def sliding_mmap_threshold() -> None:
    """Leave glibc's mmap threshold sliding, as it was before the agent fixed it (the memory reference)."""
    import edgeagent.allocator

    edgeagent.allocator.fix_mmap_threshold = lambda: False


def one_tick_catch_up() -> None:
    """The cached GOP stamped one tick per frame, whatever its send times (the agent before 02e76a9)."""
    from edgeagent.live import timeline

    stamp = timeline.RtpTimeline.stamp

    def one_tick(self: timeline.RtpTimeline, packet: Any, now: float, catch_up: bool = False) -> int:
        if not catch_up or self._last_ts is None:
            return stamp(self, packet, now, catch_up)
        ts = stamp(self, packet, self._last_wall, catch_up)  # no wall time passed: one tick
        self._last_wall = now
        return ts

    timeline.RtpTimeline.stamp = one_tick  # type: ignore[method-assign]


def main() -> int:
    out = os.environ["BENCH_PROBE_OUT"]
    if os.environ.get("BENCH_ONE_TICK_CATCH_UP"):
        one_tick_catch_up()
    if os.environ.get("BENCH_SLIDING_MMAP_THRESHOLD"):
        sliding_mmap_threshold()
    if os.environ.get("BENCH_FRESH_SNAPSHOT_DECODER"):
        fresh_snapshot_decoder()
    if os.environ.get("BENCH_NO_READ_TIMEOUT"):
        drop_pyav_read_timeout()
    interval = os.environ.get("BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    if os.environ.get("BENCH_LATENCY_PROBE", "1") != "0":
        install_latency_probe()
        install_loop_lag_probe()
    clip = os.environ.get("BENCH_DECODE_CLIP")
    load = DecodeLoad(clip, os.environ.get("BENCH_DECODE_MODE", "thread")) if clip else None
    state = {"seq": 0, "mark": time.monotonic()}

    def on_mark(*_: object) -> None:
        FIRST.clear()
        LAST.clear()
        LAST_AT.clear()
        LOOP_LAG.clear()
        state["mark"] = time.monotonic()
        if load is not None:
            load.mark()

    def on_dump(*_: object) -> None:
        state["seq"] += 1
        document = {
            "seq": state["seq"],
            "window_s": time.monotonic() - state["mark"],
            "first_s": list(FIRST),
            "last_s": list(LAST),
            "last_at": list(LAST_AT),
            "loop_lag_s": list(LOOP_LAG),
            "decode": load.figures() if load is not None else None,
            "switch_interval_s": sys.getswitchinterval(),
        }
        with open(out + ".tmp", "w") as file:
            json.dump(document, file)
        os.replace(out + ".tmp", out)

    signal.signal(signal.SIGUSR1, on_mark)
    signal.signal(signal.SIGUSR2, on_dump)
    from edgeagent.cli import main as agent_main

    try:
        return agent_main(sys.argv[1:])
    finally:
        if load is not None:
            load.close()


if __name__ == "__main__":
    sys.exit(main())
