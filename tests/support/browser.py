"""Headless Chromium for the live-view tests: the browser and its WHEP viewer come from benchmarks/browser.py
(shared with the live-view benchmark); what is here looks at the picture itself, drawn onto a canvas, so a
test can tell the camera's picture from a black, green or frozen one.
"""

from __future__ import annotations

from typing import Any

from benchmarks.browser import (  # noqa: F401 - the live-view tests import these from here
    CHROMEDRIVER,
    CHROMIUM,
    CHROMIUM_FLAGS,
    WHEP_VIEWER_JS,
    browser_available,
    chromium,
    install_viewer,
    start_viewer,
    stop_viewer,
    viewer_stats,
)
from tests.support.wait import wait_until  # noqa: F401 - the live-view tests import it from here

# Draws a video element onto a canvas and describes the picture: mean colour of a grid of cells (rows x
# cols), the share of near-black and of "decoder green" pixels, so a test can tell the camera's picture
# from a black, green or frozen one.
PICTURE_JS = r"""
const [selector, rows, cols] = arguments;
const video = document.querySelector(selector);
if (!video || !video.videoWidth) return null;
const canvas = document.createElement('canvas');
canvas.width = video.videoWidth; canvas.height = video.videoHeight;
const ctx = canvas.getContext('2d', {willReadFrequently: true});
ctx.drawImage(video, 0, 0);
const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
const cells = [];
let black = 0, green = 0, total = 0;
for (let r = 0; r < rows; r++) {
  const row = [];
  for (let c = 0; c < cols; c++) {
    let sr = 0, sg = 0, sb = 0, n = 0;
    const x0 = Math.floor(c * canvas.width / cols), x1 = Math.floor((c + 1) * canvas.width / cols);
    const y0 = Math.floor(r * canvas.height / rows), y1 = Math.floor((r + 1) * canvas.height / rows);
    for (let y = y0; y < y1; y += 4) for (let x = x0; x < x1; x += 4) {
      const i = (y * canvas.width + x) * 4;
      sr += data[i]; sg += data[i + 1]; sb += data[i + 2]; n++;
    }
    row.push([Math.round(sr / n), Math.round(sg / n), Math.round(sb / n)]);
  }
  cells.push(row);
}
for (let i = 0; i < data.length; i += 16) {
  const r = data[i], g = data[i + 1], b = data[i + 2];
  total++;
  if (r < 24 && g < 24 && b < 24) black++;
  if (g > 100 && r < 40 && b < 40) green++;
}
return {width: canvas.width, height: canvas.height, cells, black: black / total, green: green / total};
"""


def picture(driver: Any, selector: str, rows: int = 4, cols: int = 7) -> dict[str, Any] | None:
    """The video's current picture, summarised (see PICTURE_JS); None before the first frame."""
    return driver.execute_script(PICTURE_JS, selector, rows, cols)


def presented_frames(driver: Any, selector: str) -> int:
    """Frames the video element presented (works for any page, without its peer connection)."""
    return driver.execute_script(
        "const v = document.querySelector(arguments[0]);"
        "return v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;",
        selector,
    )


# -- what videotestsrc's SMPTE bars look like ------------------------------------------------------

# The seven top bars of GStreamer's "smpte" pattern, left to right, as which of R, G, B are lit.
SMPTE_BARS = ("RGB", "RG", "GB", "G", "RB", "R", "B")


def lit(colour: list[int] | tuple[int, ...]) -> str | None:
    """Which channels of ``colour`` are clearly on ("RG" for yellow); None when one is half-way."""
    channels = ""
    for name, value in zip("RGB", colour, strict=True):
        if value >= 150:
            channels += name
        elif value > 90:
            return None
    return channels


def looks_like_smpte(summary: dict[str, Any]) -> bool:
    """The top row of a 7-column summary shows the seven SMPTE bars in order: the camera's picture."""
    top = summary["cells"][0]
    if len(top) != len(SMPTE_BARS):
        raise ValueError("summarise the picture with cols=7 to compare it with the bars")
    return [lit(colour) for colour in top] == list(SMPTE_BARS) and summary["green"] < 0.3


def summarise_rgb(image: Any, rows: int = 4, cols: int = 7) -> dict[str, Any]:
    """The same summary as PICTURE_JS, for an RGB numpy image (a frame a Python viewer decoded)."""
    import numpy as np

    height, width = image.shape[:2]
    cells = []
    for r in range(rows):
        row = []
        for c in range(cols):
            cell = image[r * height // rows : (r + 1) * height // rows, c * width // cols : (c + 1) * width // cols]
            row.append([int(v) for v in cell.reshape(-1, 3).mean(axis=0).round()])
        cells.append(row)
    pixels = image.reshape(-1, 3).astype(np.int16)
    black = float(np.mean(np.all(pixels < 24, axis=1)))
    green = float(np.mean((pixels[:, 1] > 100) & (pixels[:, 0] < 40) & (pixels[:, 2] < 40)))
    return {"width": width, "height": height, "cells": cells, "black": black, "green": green}
