"""The one rule for the size of a scaled-down picture, shared by snapshots and the live transcode."""

from __future__ import annotations


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """At most ``max_width`` wide (never upscaled), the height that keeps the aspect ratio, both even.

    Even because yuv420p (JPEG's and H.264's chroma) halves both dimensions; the height is rounded to the
    nearest even number from the even width actually used, so both consumers agree to the pixel.
    """
    out_width = max(2, min(max_width, width) & ~1)
    out_height = max(2, round(height * out_width / width / 2) * 2)
    return out_width, out_height
