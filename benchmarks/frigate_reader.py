"""A Frigate-style reader, the reference for the cameras benchmark: one ffmpeg per camera decodes every
frame and hands raw yuv420p pictures at 5 fps through a pipe; a thread per camera reads them into numpy.

    python -m benchmarks.frigate_reader --width 1920 --height 1080 --fps 5 URL [URL ...]

Prints ``FRAME <index>`` once per camera when its first picture arrived, then keeps reading until killed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading

import numpy as np


def ffmpeg_argv(url: str, fps: float) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp", "-i", url,
            "-vf", f"fps={fps:g}", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:"]


def read(index: int, process: subprocess.Popen[bytes], width: int, height: int, lock: threading.Lock) -> None:
    size = width * height * 3 // 2
    assert process.stdout is not None
    frames = 0
    while True:
        data = process.stdout.read(size)
        if len(data) < size:
            return
        picture = np.frombuffer(data, dtype=np.uint8)
        y = picture[: width * height].reshape(height, width)
        _ = int(y[::64, ::64].mean())  # touch the picture, as a detector would
        frames += 1
        if frames == 1:
            with lock:
                print(f"FRAME {index}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--fps", type=float, default=5)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    lock = threading.Lock()
    threads = []
    for index, url in enumerate(args.urls):
        process = subprocess.Popen(ffmpeg_argv(url, args.fps), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        thread = threading.Thread(target=read, args=(index, process, args.width, args.height, lock), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    sys.exit(1)  # every ffmpeg ended: the camera went away


if __name__ == "__main__":
    main()
