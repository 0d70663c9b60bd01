"""Whether a stream's picture size is one the agent can use.

FFmpeg gives up on an SPS whose size it finds absurd (16384x16384, say) and then reports the stream as
0x0 without an error; a camera with that stream looked online while nothing could ever be decoded. The
size the SPS declares is read by the Annex B module, so the error can say what the camera asked for.
"""

from __future__ import annotations

MAX_SIDE = 8192  # 8K; above this no camera exists and decoding would only risk memory
MIN_SIDE = 16


def usable(width: int, height: int) -> bool:
    return MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE


def picture_size_problem(width: int, height: int, declared: tuple[int, int] | None) -> str | None:
    """What is wrong with the size FFmpeg found (``width``x``height``, 0x0 when it gave up) and the size
    the SPS declares (None when unknown); None when nothing known is wrong."""
    limits = f"between {MIN_SIDE}x{MIN_SIDE} and {MAX_SIDE}x{MAX_SIDE}"
    if declared is not None and not usable(*declared):
        return f"the stream's picture size is unusable: its SPS declares {declared[0]}x{declared[1]} ({limits})"
    if (width or height) and not usable(width, height):
        return f"the stream's picture size is unusable: {width}x{height} ({limits})"
    return None
