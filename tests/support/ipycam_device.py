"""The independent ONVIF device under test: IPyCam (PyPI ``ipycam``, a pure-Python virtual IP camera),
its ONVIF service, WS-Discovery and PTZ only, with its stream URI pointed at our RTSP simulator.

Run in the device's own network namespace by ``tests.support.onvif_device``; its own video pipeline is
not started (the RTSP stream comes from the GStreamer simulator beside it). Prints READY when it serves.
The password comes from IPYCAM_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

import numpy as np
from ipycam import CameraConfig, IPCamera
from ipycam.camera import ReusableThreadingTCPServer
from ipycam.discovery import WSDiscoveryServer
from ipycam.http import IPCameraHTTPHandler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rtsp-port", type=int, required=True)
    parser.add_argument("--stream-name", default="stream1")
    parser.add_argument("--user", default="")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    config = CameraConfig(
        local_ip=args.address,
        onvif_port=args.port,
        rtsp_port=args.rtsp_port,
        main_stream_name=args.stream_name,
        main_width=args.width,
        main_height=args.height,
        main_fps=args.fps,
        username=args.user,
        password=os.environ.get("IPYCAM_PASSWORD", ""),
    )
    camera = IPCamera(config)
    with camera._last_frame_lock:  # a picture for its snapshot URI
        camera._last_frame = np.full((args.height, args.width, 3), 128, dtype=np.uint8)
    discovery = WSDiscoveryServer(camera.onvif)
    discovery.start()
    IPCameraHTTPHandler.camera = camera
    server = ReusableThreadingTCPServer((args.address, args.port), IPCameraHTTPHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    stop.wait()
    discovery.stop()
    server.shutdown()
    camera.ptz.stop()


if __name__ == "__main__":
    main()
