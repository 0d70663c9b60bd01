"""Privacy masks: rectangles, given as fractions of the picture, blacked out before anything leaves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeagent.config import PrivacyMask


def mask_pixels(mask: PrivacyMask, width: int, height: int) -> tuple[int, int, int, int]:
    """The rectangle in pixels (x0, y0, x1, y1), rounded outwards so nothing at the edge shows."""
    x0 = int(np.floor(mask.x * width))
    y0 = int(np.floor(mask.y * height))
    x1 = int(np.ceil((mask.x + mask.w) * width))
    y1 = int(np.ceil((mask.y + mask.h) * height))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def apply_masks_bgr(image: np.ndarray, masks: Sequence[PrivacyMask]) -> None:
    """Black out the masks in a BGR (or grey) image, in place."""
    height, width = image.shape[:2]
    for mask in masks:
        x0, y0, x1, y1 = mask_pixels(mask, width, height)
        image[y0:y1, x0:x1] = 0


def apply_masks_yuv420(planes: Sequence[np.ndarray], masks: Sequence[PrivacyMask]) -> None:
    """Black out the masks in the three planes of a writable yuv420p frame, in place.

    Black in limited-range YUV is Y=16, U=V=128. The chroma planes have half the resolution, so the
    rectangle is widened to even pixels first: otherwise chroma from outside would tint the mask's edge.
    """
    luma, cb, cr = planes
    height, width = luma.shape
    for mask in masks:
        x0, y0, x1, y1 = mask_pixels(mask, width, height)
        x0, y0 = x0 & ~1, y0 & ~1
        x1, y1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
        luma[y0:y1, x0:x1] = 16
        cb[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
        cr[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
