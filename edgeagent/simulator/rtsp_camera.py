#!/usr/bin/python3
"""A roadside-camera stand-in: one RTSP path served by GStreamer's rtsp-server.

Standalone on purpose (no import from the edgeagent package): it needs PyGObject (``gi``), which
Debian's ``/usr/bin/python3`` has and the project's venv does not. Run it as

    /usr/bin/python3 edgeagent/simulator/rtsp_camera.py --port 8554 [--codec h265] [--user viewer] ...

Live mode encodes ``videotestsrc`` (with a running clock overlay) with x264/x265, one slice per frame
and parameter sets before every keyframe, like a real camera. ``--file CLIP`` instead serves a
pre-encoded H.264/H.265 clip (raw elementary stream, MP4, MKV, TS...) in an endless loop without
re-encoding: the clip's access units are read once into memory, then pushed into a live ``appsrc``
at their own pace with timestamps that keep increasing across loops.

``--scene road`` replaces the test pattern with a moving scene (a still landscape, vehicles driving
across, sensor noise) whose picture takes a fault on command, one line on stdin each: ``fault frozen``
(a hung sensor behind the ticking clock overlay), ``fault black``, ``fault blur``, ``fault shift`` (the
view turned) and ``fault none``; each is answered with ``FAULT NAME`` on stdout once applied.

Every client of the path shares one pipeline (``set_shared(True)``), as on a real camera; the
pipeline is built when the first client connects and torn down when the last one leaves.

When the server listens it prints exactly one line ``READY rtsp://HOST:PORT/PATH`` on stdout.
SIGTERM and SIGINT stop it cleanly (exit status 0). Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from camsim_log import log  # noqa: E402
from clip_file import Clip, ClipFeeder, file_launch  # noqa: E402  (beside this file: the script's directory)
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402
from road_scene import Scene, road_launch  # noqa: E402

ROLE = "viewer"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GStreamer RTSP camera simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/stream1")
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--gop-s", type=float, default=1.0, help="keyframe interval in seconds")
    p.add_argument("--bitrate-kbps", type=int, default=None)
    p.add_argument(
        "--preset",
        default="ultrafast",
        help="encoder speed preset; ultrafast gives H.264 Constrained Baseline, superfast gives High",
    )
    p.add_argument("--pattern", default="smpte", help="videotestsrc pattern (smpte, ball, snow, ...)")
    p.add_argument(
        "--scene",
        choices=("pattern", "road"),
        default="pattern",
        help="pattern: the plain --pattern; road: a still background, moving vehicles and sensor noise, "
        "with picture faults commanded on stdin (see Scene)",
    )
    p.add_argument("--user", default=None, help="require RTSP digest auth for this user")
    p.add_argument(
        "--password-file",
        default=None,
        help="file holding the password (default: environment variable CAMSIM_PASSWORD)",
    )
    p.add_argument("--file", default=None, help="serve this pre-encoded H.264/H.265 clip in a loop")
    p.add_argument("--tls-cert", default=None, help="serve rtsps:// with this certificate (PEM), with --tls-key")
    p.add_argument("--tls-key", default=None, help="the certificate's private key (PEM)")
    args = p.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    if args.width <= 0 or args.height <= 0 or args.fps <= 0 or args.gop_s <= 0:
        p.error("--width, --height, --fps and --gop-s must be positive")
    args.password = None
    if args.user:
        if args.password_file:
            with open(args.password_file, encoding="utf-8") as f:
                args.password = f.read().strip()
        else:
            args.password = os.environ.get("CAMSIM_PASSWORD")
        if not args.password:
            p.error("--user needs a password: set CAMSIM_PASSWORD or pass --password-file")
    if args.file and args.scene != "pattern":
        p.error("--file and --scene road exclude each other")
    if args.file and not os.path.isfile(args.file):
        p.error(f"--file {args.file}: no such file")
    return args


# --------------------------------------------------------------------------------------------
# Live (encoding) mode
# --------------------------------------------------------------------------------------------


def live_launch(a: argparse.Namespace) -> str:
    gop = max(1, round(a.fps * a.gop_s))
    if a.scene == "road":
        src = road_launch(a.width, a.height, a.fps)
    else:
        src = (
            f"videotestsrc is-live=true pattern={a.pattern} "
            f"! video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 "
        )
    src += '! timeoverlay halignment=left valignment=top font-desc="Sans 24" '
    if a.codec == "h264":
        enc = f"x264enc tune=zerolatency speed-preset={a.preset} key-int-max={gop} sliced-threads=false threads=1"
        if a.bitrate_kbps:
            enc += f" bitrate={a.bitrate_kbps}"
        caps = "video/x-h264,profile=constrained-baseline" if a.preset == "ultrafast" else "video/x-h264"
        tail = f"! {enc} ! {caps} ! rtph264pay name=pay0 pt=96 config-interval=-1"
    else:
        enc = f"x265enc tune=zerolatency speed-preset={a.preset} key-int-max={gop}"
        if a.bitrate_kbps:
            enc += f" bitrate={a.bitrate_kbps}"
        tail = f"! {enc} ! video/x-h265 ! rtph265pay name=pay0 pt=96 config-interval=-1"
    return f"( {src}{tail} )"


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


def build_server(a: argparse.Namespace) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(a.host)
    server.set_service(str(a.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(True)
    # A real camera cannot seek. Without this, every PLAY (FFmpeg always sends "Range: npt=0-") does a
    # flushing seek of the shared pipeline: the running clients see their timestamps jump back and every
    # late joiner gets a fresh keyframe. Publishing the clock (RFC 7273) makes rtsp-server treat the
    # media as not seekable and ignore the Range.
    factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
    if a.file:
        clip = Clip(a.file, a.fps)
        log(clip.describe())
        factory.set_launch(file_launch(clip))
        feeders: dict[int, ClipFeeder] = {}

        def on_media_configure(_f: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
            appsrc = media.get_element().get_by_name("clipsrc")
            appsrc.set_property("caps", clip.caps)
            feeder = ClipFeeder(clip, appsrc)
            feeders[id(media)] = feeder

            def on_unprepared(m: GstRtspServer.RTSPMedia) -> None:
                f = feeders.pop(id(m), None)
                if f is not None:
                    f.stop.set()

            media.connect("unprepared", on_unprepared)

        factory.connect("media-configure", on_media_configure)
    else:
        factory.set_launch(live_launch(a))
        if a.scene == "road":
            Scene(a.width, a.height).serve(factory)

    if a.user or a.tls_cert:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        if a.tls_cert:  # every connection is then TLS (rtsps://)
            auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(a.tls_cert, a.tls_key))
        if a.user:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(a.user, a.password, token)
            # No default (anonymous) token: every path then answers 401 and clients send credentials.
        else:
            auth.set_default_token(token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )

    def on_client_connected(_s: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient) -> None:
        conn = client.get_connection()
        peer = conn.get_ip() if conn is not None else "?"
        log(f"client connected from {peer}")

    server.connect("client-connected", on_client_connected)
    server.get_mount_points().add_factory(a.path, factory)
    return server


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    Gst.init(None)
    try:
        server = build_server(a)
    except RuntimeError as e:
        log(f"error: {e}")
        return 2
    loop = GLib.MainLoop()

    def on_signal(*_args: object) -> bool:
        log("stopping")
        loop.quit()
        return GLib.SOURCE_REMOVE

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, on_signal)

    if server.attach(None) == 0:
        log(f"error: cannot listen on {a.host}:{a.port}")
        return 2
    host = f"[{a.host}]" if ":" in a.host else a.host
    scheme = "rtsps" if a.tls_cert else "rtsp"
    print(f"READY {scheme}://{host}:{server.get_bound_port()}{a.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
