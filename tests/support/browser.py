"""Headless Chromium from Debian, driven by Selenium, for the live-view tests.

Nothing is downloaded: Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``. The flags are the ones
the field notes found necessary for WebRTC on loopback without a STUN server; every browser gets a fresh
profile. The JavaScript helpers below measure what the viewer really sees: frames decoded (getStats and
the video element's own counters) and the picture itself, drawn onto a canvas.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until  # noqa: F401 - the live-view tests import it from here

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--allow-loopback-in-peer-connection",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
)

def browser_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() and shutil.which("chromium") is not None


@contextmanager
def chromium(profile_dir: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile in ``profile_dir``; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- a bare WHEP viewer, injected into any page of the agent ----------------------------------------

WHEP_VIEWER_JS = r"""
window.__viewers = window.__viewers || {};
window.__startViewer = async function (id, camera, token) {
  const started = performance.now();
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver('video', {direction: 'recvonly'});
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true; video.id = 'viewer-' + id;
  video.style.width = '320px';
  document.body.appendChild(video);
  const viewer = {pc, video, started, firstFrameMs: null, location: null, error: null};
  window.__viewers[id] = viewer;
  pc.ontrack = (event) => {
    video.srcObject = new MediaStream([event.track]);
    const onFrame = () => {
      if (viewer.firstFrameMs === null) viewer.firstFrameMs = performance.now() - started;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 2000);
  });
  const headers = {'Content-Type': 'application/sdp'};
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const response = await fetch('/whep/' + encodeURIComponent(camera),
                               {method: 'POST', headers, body: pc.localDescription.sdp});
  const body = await response.text();
  if (response.status !== 201) {
    viewer.error = response.status + ' ' + body.trim();
    pc.close();
    return viewer.error;
  }
  viewer.location = response.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: body});
  return 'ok';
};
window.__stopViewer = async function (id, token) {
  const viewer = window.__viewers[id];
  if (!viewer) return 0;
  let status = 0;
  if (viewer.location) {
    const response = await fetch(viewer.location,
                                 {method: 'DELETE', headers: {'Authorization': 'Bearer ' + token}});
    status = response.status;
  }
  viewer.pc.close();
  delete window.__viewers[id];
  return status;
};
window.__viewerStats = async function (id) {
  const viewer = window.__viewers[id];
  const out = {connection: viewer.pc.connectionState, firstFrameMs: viewer.firstFrameMs, error: viewer.error,
               videoWidth: viewer.video.videoWidth, videoHeight: viewer.video.videoHeight};
  const report = await viewer.pc.getStats();
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      Object.assign(out, {framesDecoded: s.framesDecoded || 0, framesReceived: s.framesReceived || 0,
                          framesDropped: s.framesDropped || 0, keyFramesDecoded: s.keyFramesDecoded || 0,
                          pliCount: s.pliCount || 0, nackCount: s.nackCount || 0, packetsLost: s.packetsLost || 0,
                          jitterBufferDelay: s.jitterBufferDelay || 0,
                          jitterBufferEmittedCount: s.jitterBufferEmittedCount || 0,
                          frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0});
    }
  });
  return out;
};
"""

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


def install_viewer(driver: Any) -> None:
    driver.execute_script(WHEP_VIEWER_JS)


def start_viewer(driver: Any, viewer_id: str, camera: str, token: str | None) -> str:
    """Opens a WHEP viewer in the page; 'ok' or the refusal ('401 unauthorized', ...)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__startViewer(arguments[0], arguments[1], arguments[2]).then(done, (e) => done('error ' + e));",
        viewer_id,
        camera,
        token,
    )


def stop_viewer(driver: Any, viewer_id: str, token: str) -> int:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__stopViewer(arguments[0], arguments[1]).then(done, () => done(-1));",
        viewer_id,
        token,
    )


def viewer_stats(driver: Any, viewer_id: str) -> dict[str, Any]:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__viewerStats(arguments[0]).then(done, (e) => done({error: String(e)}));",
        viewer_id,
    )


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
