#!/usr/bin/python3
"""The simulator's road scene: a moving picture whose faults tests can command (part of rtsp_camera.py,
run with Debian's /usr/bin/python3 and GStreamer's gi, like it)."""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from camsim_log import log  # noqa: E402
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

FAULTS = ("frozen", "black", "blur", "shift")
NOISE_ALPHA = 0.06  # sensor noise: a few grey levels, present on every live picture
# Still parts of the view, on a background 1/8 larger than the picture on each side (so that it can
# shift): (videotestsrc pattern and colour, x, y, width, height as fractions of the picture, from the
# picture's top left corner when the view is where it should be).
LANDSCAPE = (
    ("smpte75", 0, -0.125, -0.125, 1.25, 1.25),  # the background: vertical edges of every contrast
    ("solid-color", 0xFF505050, -0.125, 0.58, 1.25, 0.3),  # the road: horizontal edges
    ("circular", 0, 0.55, 0.12, 0.22, 0.3),  # a sign: edges in every direction
)
# Vehicles: (ARGB colour, width, height, lane y as fractions of the picture, speed in px/s at 640 wide).
VEHICLES = (
    (0xFFE8E8E8, 0.10, 0.08, 0.62, 90.0),
    (0xFF181818, 0.18, 0.14, 0.72, -60.0),
)


def road_launch(width: int, height: int, fps: int) -> str:
    """The landscape and the vehicles composed, then the lens, then sensor noise that no lens fault
    removes. Pad positions are set by Scene. Out of focus is the picture shrunk eight times and grown back,
    drawn over the sharp one (shown only while blurred): ``gaussianblur`` of that strength took 65 ms a
    640x360 frame, enough to make the camera late on a busy machine."""
    rate = f"framerate={fps}/1"
    sources = [(pattern, colour, w, h) for pattern, colour, _x, _y, w, h in LANDSCAPE]
    sources += [("solid-color", colour, w, h) for colour, w, h, _lane, _speed in VEHICLES]
    parts = []
    for i, (pattern, colour, w, h) in enumerate(sources):
        parts.append(
            f"videotestsrc is-live=true pattern={pattern} foreground-color={colour} "
            f"! video/x-raw,format=AYUV,width={round(width * w) & ~1},height={round(height * h) & ~1},{rate} "
            f"! scene.sink_{i} "
        )
    parts.append(
        f"videotestsrc is-live=true pattern=snow ! video/x-raw,format=AYUV,width={width},height={height},{rate} "
        "! sensor.sink_1 "
    )
    # The chain that ends in the encoder comes last in the launch line.
    parts.append(
        "compositor name=scene background=black "
        + "".join(f"sink_{i}::zorder={i} " for i in range(len(sources)))
        + f"! video/x-raw,format=AYUV,width={width},height={height},{rate} "
        "! tee name=lens lens. ! queue ! sensor.sink_0 "
        f"lens. ! queue ! videoscale method=lanczos ! video/x-raw,width={width // 8 & ~1},height={height // 8 & ~1} "
        f"! videoscale method=bilinear ! video/x-raw,width={width},height={height} ! sensor.sink_2 "
        "compositor name=sensor background=black sink_0::zorder=0 sink_2::zorder=1 sink_2::alpha=0 "
        f"sink_1::zorder=2 sink_1::alpha={NOISE_ALPHA} "
        f"! video/x-raw,format=AYUV,width={width},height={height},{rate} ! videoconvert "
        "! video/x-raw,format=I420 "
    )
    return "".join(parts)


class Scene:
    """The fault state of the road scene, applied to every media built from it (the pipeline is rebuilt
    when clients come back after all left, and must come back with the same fault).

    Faults: ``frozen`` (a hung sensor: vehicles and noise stop, the clock overlay keeps ticking),
    ``black`` (a covered lens: a dark noisy picture), ``blur`` (out of focus), ``shift`` (the view
    turned), or none. Commanded by ``fault NAME`` / ``fault none`` lines on stdin; each is answered
    with one line ``FAULT NAME`` on stdout once applied.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.fault: str | None = None
        self.medias: list[Gst.Element] = []
        self.motion_s = 0.0  # time the vehicles have moved: it stands still while frozen
        self._last_tick = 0.0

    def serve(self, factory: GstRtspServer.RTSPMediaFactory) -> None:
        """Shape every media the factory makes, move the vehicles, obey commands on stdin (all on the
        GLib main loop)."""
        factory.connect("media-configure", lambda _f, media: self.attach(media))
        GLib.timeout_add(40, self.tick)
        stdin = GLib.IOChannel.unix_new(sys.stdin.fileno())
        GLib.io_add_watch(stdin, GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, self.on_command)

    def attach(self, media: GstRtspServer.RTSPMedia) -> None:
        pipeline = media.get_element()
        self.medias.append(pipeline)
        media.connect("unprepared", lambda _m: self.medias.remove(pipeline) if pipeline in self.medias else None)
        self._apply(pipeline)

    def set_fault(self, fault: str | None) -> None:
        self.fault = fault
        for pipeline in self.medias:
            self._apply(pipeline)

    def _pad(self, pipeline: Gst.Element, element: str, pad: str) -> Gst.Pad:
        return pipeline.get_by_name(element).get_static_pad(pad)

    def _apply(self, pipeline: Gst.Element) -> None:
        fault = self.fault
        self._pad(pipeline, "sensor", "sink_2").set_property("alpha", 1.0 if fault == "blur" else 0.0)
        self._pad(pipeline, "sensor", "sink_1").set_property("alpha", 0.0 if fault == "frozen" else NOISE_ALPHA)
        for i in range(len(LANDSCAPE) + len(VEHICLES)):
            self._pad(pipeline, "scene", f"sink_{i}").set_property("alpha", 0.0 if fault == "black" else 1.0)
        self._place(pipeline)

    def _place(self, pipeline: Gst.Element) -> None:
        dx, dy = (self.width * 3 // 20, self.height // 10) if self.fault == "shift" else (0, 0)
        positions = [(self.width * x, self.height * y) for _p, _c, x, y, _w, _h in LANDSCAPE]
        for _colour, w, _h, lane, speed in VEHICLES:
            span = self.width * (1 + w)
            x = (speed * self.width / 640 * self.motion_s) % span - self.width * w
            positions.append((x, self.height * lane))
        for i, (x, y) in enumerate(positions):
            pad = self._pad(pipeline, "scene", f"sink_{i}")
            pad.set_property("xpos", round(x) + dx)
            pad.set_property("ypos", round(y) + dy)

    def tick(self) -> bool:
        """Move the vehicles (a GLib timeout, on the main loop like the commands)."""
        now = GLib.get_monotonic_time() / 1e6
        if self._last_tick and self.fault != "frozen":
            self.motion_s += now - self._last_tick
        self._last_tick = now
        for pipeline in self.medias:
            self._place(pipeline)
        return GLib.SOURCE_CONTINUE

    def on_command(self, channel: GLib.IOChannel, condition: GLib.IOCondition) -> bool:
        if condition & (GLib.IOCondition.HUP | GLib.IOCondition.ERR):
            return GLib.SOURCE_REMOVE  # stdin closed: no more commands, keep serving
        raw = channel.readline()
        if not raw:
            return GLib.SOURCE_REMOVE  # end of file (stdin from /dev/null): nothing will come
        line = raw.strip()
        if not line:
            return GLib.SOURCE_CONTINUE
        words = line.split()
        if len(words) == 2 and words[0] == "fault" and (words[1] in FAULTS or words[1] == "none"):
            self.set_fault(None if words[1] == "none" else words[1])
            log(f"fault {words[1]}")
            print(f"FAULT {words[1]}", flush=True)
        else:
            log(f"unknown command {line!r}")
            print(f"ERROR unknown command {line!r}", flush=True)
        return GLib.SOURCE_CONTINUE
