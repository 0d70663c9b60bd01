"""Headless Chromium from Debian, driven by Selenium, with a bare WHEP viewer injected into any page of the
agent: used by the live-view benchmark and by the live-view tests (tests/support/browser.py).

Nothing is downloaded: Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``. The flags are the ones
the field notes found necessary for WebRTC on loopback without a STUN server; every browser gets a fresh
profile. The viewer measures what a person would see: the time to the first frame presented
(``requestVideoFrameCallback``) and the receiver's getStats.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
  const viewer = {pc, video, started, firstFrameMs: null, gatheredMs: null, location: null, error: null};
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
  viewer.gatheredMs = performance.now() - started;  // the browser's own share of the time to first frame
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
  const out = {connection: viewer.pc.connectionState, firstFrameMs: viewer.firstFrameMs, gatheredMs: viewer.gatheredMs,
               error: viewer.error,
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


# Samples a viewer's receiver every ``interval_ms`` for ``seconds``: [ms since start, framesDecoded,
# framesReceived, jitterBufferDelay s, jitterBufferEmittedCount], to see a backlog held in the jitter buffer.
SAMPLE_VIEWER_JS = r"""
const done = arguments[arguments.length - 1];
const [id, seconds, interval] = arguments;
const out = [];
const started = performance.now();
async function tick() {
  const s = await window.__viewerStats(id);
  out.push([performance.now() - started, s.framesDecoded || 0, s.framesReceived || 0,
            s.jitterBufferDelay || 0, s.jitterBufferEmittedCount || 0]);
  if (performance.now() - started < seconds * 1000) setTimeout(tick, interval); else done(out);
}
tick();
"""


def sample_viewer(driver: Any, viewer_id: str, seconds: float, interval_ms: int = 20) -> list[list[float]]:
    return driver.execute_async_script(SAMPLE_VIEWER_JS, viewer_id, seconds, interval_ms)
