"""The simulator's file mode: a pre-encoded clip served in an endless loop, without re-encoding (part of
rtsp_camera.py, run by /usr/bin/python3 beside it; no import from the edgeagent package).

The clip's access units are read once into memory, then pushed into a live ``appsrc`` at their own pace
with timestamps that keep increasing across loops.
"""

from __future__ import annotations

import threading

import gi

gi.require_version("Gst", "1.0")
from camsim_log import log  # noqa: E402
from gi.repository import Gst  # noqa: E402


class AccessUnit:
    __slots__ = ("data", "pts", "dts", "duration", "key")

    def __init__(self, data: bytes, pts: int, dts: int, duration: int, key: bool) -> None:
        self.data, self.pts, self.dts, self.duration, self.key = data, pts, dts, duration, key


class Clip:
    """All access units of a clip, in decode order, read once with parsebin + h26xparse."""

    def __init__(self, path: str, fallback_fps: int) -> None:
        self.path = path
        self.codec = ""
        self.caps: Gst.Caps | None = None
        self.units: list[AccessUnit] = []
        self._raw: list[tuple[bytes, int, int, int, bool]] = []
        self._read()
        self._normalise(fallback_fps)

    def _read(self) -> None:
        pipeline = Gst.Pipeline.new("clip-reader")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", self.path)
        parsebin = Gst.ElementFactory.make("parsebin")
        for e in (src, parsebin):
            pipeline.add(e)
        src.link(parsebin)
        linked = {"video": False}

        def on_sample(sink: Gst.Element) -> Gst.FlowReturn:
            sample = sink.emit("pull-sample")
            buf = sample.get_buffer()
            if self.caps is None:
                self.caps = sample.get_caps()
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                return Gst.FlowReturn.ERROR
            try:
                data = bytes(info.data)
            finally:
                buf.unmap(info)
            key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
            self._raw.append((data, buf.pts, buf.dts, buf.duration, key))
            return Gst.FlowReturn.OK

        def on_pad_added(_bin: Gst.Element, pad: Gst.Pad) -> None:
            caps = pad.get_current_caps() or pad.query_caps(None)
            name = caps.get_structure(0).get_name()
            if name in ("video/x-h264", "video/x-h265") and not linked["video"]:
                linked["video"] = True
                self.codec = "h264" if name == "video/x-h264" else "h265"
                parse = Gst.ElementFactory.make(f"{self.codec}parse")
                capsf = Gst.ElementFactory.make("capsfilter")
                capsf.set_property("caps", Gst.Caps.from_string(f"{name},stream-format=byte-stream,alignment=au"))
                sink = Gst.ElementFactory.make("appsink")
                sink.set_property("sync", False)
                sink.set_property("emit-signals", True)
                sink.connect("new-sample", on_sample)
                chain = [parse, capsf, sink]
            else:
                chain = [Gst.ElementFactory.make("fakesink")]
            for e in chain:
                pipeline.add(e)
            for a, b in zip(chain, chain[1:], strict=False):
                a.link(b)
            for e in chain:
                e.sync_state_with_parent()
            pad.link(chain[0].get_static_pad("sink"))

        parsebin.connect("pad-added", on_pad_added)
        pipeline.set_state(Gst.State.PLAYING)
        msg = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
        pipeline.set_state(Gst.State.NULL)
        if msg is None:
            raise RuntimeError(f"{self.path}: timed out reading the clip")
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            raise RuntimeError(f"{self.path}: {err.message} ({dbg})")
        if not linked["video"] or not self._raw:
            raise RuntimeError(f"{self.path}: no H.264/H.265 video found")

    def _normalise(self, fallback_fps: int) -> None:
        raw = self._raw
        self._raw = []
        # Start on a keyframe: a looping clip must restart cleanly.
        first_key = next((i for i, r in enumerate(raw) if r[4]), None)
        if first_key is None:
            raise RuntimeError(f"{self.path}: no keyframe in the clip")
        if first_key:
            log(f"dropping {first_key} access units before the first keyframe")
        raw = raw[first_key:]
        none = Gst.CLOCK_TIME_NONE
        fps_n, fps_d = 0, 1
        if self.caps is not None:
            ok, n, d = self.caps.get_structure(0).get_fraction("framerate")
            if ok and n > 0:
                fps_n, fps_d = n, d
        if fps_n == 0:
            fps_n, fps_d = fallback_fps, 1
        frame_ns = Gst.util_uint64_scale(Gst.SECOND, fps_d, fps_n)
        has_pts = all(r[1] != none for r in raw)
        has_dts = all(r[2] != none for r in raw)
        for i, (data, pts, dts, dur, key) in enumerate(raw):
            if not has_pts:  # raw elementary stream without timing: assume no B-frames
                pts = dts = i * frame_ns
            if dur == none or dur == 0:
                dur = frame_ns
            self.units.append(AccessUnit(data, pts, dts, dur, key))
        if has_pts and not has_dts:
            # Some demuxers (Matroska) give PTS only. Decode times are the sorted presentation times,
            # shifted back by the reordering depth so that DTS <= PTS holds for every unit.
            ordered = sorted(u.pts for u in self.units)
            shift = max(0, max(o - u.pts for o, u in zip(ordered, self.units, strict=True)))
            for o, u in zip(ordered, self.units, strict=True):
                u.dts = o - shift
        origin = min(self.units[0].dts, min(u.pts for u in self.units))
        for u in self.units:
            u.pts -= origin
            u.dts -= origin
        # Loop period: the span of presentation times plus one frame (a whole number of frames).
        last_pts = max(self.units, key=lambda u: u.pts)
        self.period = last_pts.pts + last_pts.duration - min(u.pts for u in self.units)
        self.frame_ns = frame_ns

    def describe(self) -> str:
        return (
            f"{self.path}: {self.codec}, {len(self.units)} access units, "
            f"{sum(u.key for u in self.units)} keyframes, period {self.period / 1e9:.3f} s"
        )


class ClipFeeder:
    """Pushes the clip into one media's live appsrc, looping forever, paced on the pipeline clock."""

    def __init__(self, clip: Clip, appsrc: Gst.Element) -> None:
        self.clip = clip
        self.appsrc = appsrc
        self.stop = threading.Event()
        self.started = False
        self.thread = threading.Thread(target=self._run, name="clip-feeder", daemon=True)
        appsrc.connect("need-data", self._on_need_data)

    def _on_need_data(self, _src: Gst.Element, _length: int) -> None:
        # Emitted from the appsrc streaming thread once the live pipeline is PLAYING.
        if not self.started:
            self.started = True
            self.thread.start()

    def _running_time(self) -> int:
        t = self.appsrc.get_current_running_time()
        return 0 if t == Gst.CLOCK_TIME_NONE else t

    def _run(self) -> None:
        units = self.clip.units
        base = self._running_time()
        loop = 0
        while not self.stop.is_set():
            offset = base + loop * self.clip.period
            for u in units:
                due = offset + u.dts
                wait_ns = due - self._running_time()
                if wait_ns > 0 and self.stop.wait(wait_ns / 1e9):
                    return
                buf = Gst.Buffer.new_wrapped(u.data)
                buf.pts = offset + u.pts
                buf.dts = due
                buf.duration = u.duration
                if not u.key:
                    buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
                ret = self.appsrc.emit("push-buffer", buf)
                if ret != Gst.FlowReturn.OK:
                    return
            loop += 1


def file_launch(clip: Clip) -> str:
    return (
        "( appsrc name=clipsrc is-live=true format=time do-timestamp=false min-latency=0 "
        f"! {clip.codec}parse ! rtp{clip.codec}pay name=pay0 pt=96 config-interval=-1 )"
    )
