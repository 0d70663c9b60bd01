"""A recorded clip plays in headless Chromium: the page asks for a short-lived signed URL with the bearer
token and hands it to a ``<video>``, which cannot send the header itself. Frames must advance and the
picture must be the recording's (testsrc2's colour bars, not black or decoder green)."""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from edgeagent.publish.recordings_http import RecordingRoutes, add_routes
from edgeagent.record.model import Bookmark
from tests.support.browser import browser_available, chromium, picture, presented_frames, wait_until
from tests.support.recordings import recorded

pytestmark = pytest.mark.skipif(not browser_available(), reason="needs Debian's chromium and chromium-driver")

TOKEN = "playback-test-token-0123456789ab"
PAGE = "<!doctype html><html><head><meta charset='utf-8'><title>playback</title></head><body></body></html>"

PLAY_JS = r"""
const [camera, start, end, token, done] = arguments;
fetch('/recordings/' + camera + '/clip-url?start=' + encodeURIComponent(start) + '&end=' + encodeURIComponent(end),
      {method: 'POST', headers: {'Authorization': 'Bearer ' + token}})
  .then((r) => r.ok ? r.json() : r.text().then((t) => { throw new Error(r.status + ' ' + t); }))
  .then((body) => {
    const video = document.createElement('video');
    video.id = 'playback'; video.muted = true; video.autoplay = true; video.playsInline = true;
    video.addEventListener('error', () => { window.__playbackError = video.error && video.error.message; });
    video.src = body.url;
    document.body.appendChild(video);
    done(body.url);
  }, (e) => done('error ' + e));
"""


class Server:
    """The recordings routes on a real 127.0.0.1 port, on their own event loop in a thread (Selenium blocks)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    index = recorded(tmp_path_factory.mktemp("segments"), count=2, seconds=6)

    def authorized(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {TOKEN}")

    app = web.Application()
    add_routes(app, RecordingRoutes(index, ["north"], Ed25519PrivateKey.generate(), "cabinet-17", authorized))

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    with Server(app) as running:
        yield running


def test_a_recorded_clip_plays_in_chromium_through_a_signed_url(server: Server, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"http://127.0.0.1:{server.port}/")
        url = driver.execute_async_script(PLAY_JS, "north", "2026-12-01T08:00:02.5Z", "2026-12-01T08:00:11Z", TOKEN)
        assert url.startswith("/recordings-signed/north/clip.mp4?") and TOKEN not in url, url
        first = wait_until(lambda: presented_frames(driver, "#playback") >= 10, 20, "the first frames")
        assert first
        time_then = driver.execute_script("return document.querySelector('#playback').currentTime")
        frames_then = presented_frames(driver, "#playback")
        wait_until(lambda: presented_frames(driver, "#playback") >= frames_then + 50, 20, "frames advancing")
        assert driver.execute_script("return document.querySelector('#playback').currentTime") > time_then + 1
        assert driver.execute_script("return window.__playbackError || null") is None
        summary = picture(driver, "#playback")
        assert summary is not None and (summary["width"], summary["height"]) == (320, 180)
        assert summary["black"] < 0.5 and summary["green"] < 0.3
        # Played to its end (faster than real time), the clip ends at 8.5 s (2.5 s to 11 s), within a frame.
        driver.execute_script("document.querySelector('#playback').playbackRate = 4")
        wait_until(lambda: driver.execute_script("return document.querySelector('#playback').ended"), 20,
                   "the end of the clip")
        at_end = driver.execute_script("return document.querySelector('#playback').currentTime")
        assert abs(at_end - 8.5) <= 0.04, at_end


# -- the operator page ---------------------------------------------------------------------------------

WEB = Path(__file__).resolve().parent.parent / "edgeagent" / "web"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, RecordingRoutes, list[str]]]:
    """The operator page's files, a one-camera /cameras and the recordings routes: a recording of the last
    minutes with a gap (camera offline), so that it shows on the 24-hour timeline."""
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(minutes=5)
    index = recorded(tmp_path_factory.mktemp("recent"), count=2, seconds=6, gap_before_last_s=30, t0=t0)
    index.bookmarks_ = [Bookmark("north", t0 + timedelta(seconds=3), "motion", "onvif", "ONVIF motion: tns1:Motion"),
                        Bookmark("north", t0 - timedelta(hours=3), "blank", "picture", "picture blank")]
    seen: list[str] = []

    def authorized(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {TOKEN}")

    @web.middleware
    async def remember(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path_qs)
        return await handler(request)

    app = web.Application(middlewares=[remember])
    routes = RecordingRoutes(index, ["north"], Ed25519PrivateKey.generate(), "cabinet-17", authorized)
    add_routes(app, routes)

    async def cameras(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.Response(status=401, text="unauthorized\n")
        return web.json_response({"agent": "cabinet-17", "cameras": [
            {"name": "north", "status": "online", "health": {"codec": "h264", "width": 320, "height": 180}}]})

    async def index_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / "index.html")

    app.router.add_get("/", index_page)
    app.router.add_get("/cameras", cameras)
    app.router.add_static("/static/", WEB)
    with Server(app) as running:
        yield running, routes, seen


def test_the_operator_page_shows_the_timeline_plays_exports_and_locks(page_server, tmp_path: Path) -> None:
    server, routes, seen = page_server
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"http://127.0.0.1:{server.port}/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        card = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "li[data-camera='north']"), 10, "the card")[0]
        card.find_element(By.CSS_SELECTOR, ".recordings > summary").click()

        wait_until(lambda: card.find_elements(By.CSS_SELECTOR, ".timeline-track .span"), 10, "recorded spans")
        spans = card.find_elements(By.CSS_SELECTOR, ".timeline-track .span")
        gaps = card.find_elements(By.CSS_SELECTOR, ".timeline-track .gap")
        assert len(spans) == 2 and len(gaps) == 1
        assert gaps[0].get_attribute("title").endswith(": camera offline")  # the reason, on hover
        assert gaps[0].get_attribute("data-reason") == "camera offline"

        # Bookmarks (an ONVIF event, a picture alarm) are ticks with what happened on hover; a click plays
        # from 5 s before the mark.
        blank, motion = card.find_elements(By.CSS_SELECTOR, ".timeline-track .bookmark")  # oldest first
        assert [(m.get_attribute("data-kind"), m.get_attribute("data-source")) for m in (blank, motion)] == [
            ("blank", "picture"), ("motion", "onvif")]
        assert motion.rect["x"] > blank.rect["x"] + 20  # drawn where they happened: 3 h apart
        assert motion.get_attribute("title").endswith(": ONVIF motion: tns1:Motion") and motion.is_displayed()
        assert "2 bookmark(s)" in card.find_element(By.CSS_SELECTOR, ".timeline").get_attribute("aria-valuetext")
        lead = (routes.index.bookmarks_[0].at - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        ActionChains(driver).move_to_element(motion).click().perform()
        wait_until(lambda: any(p.startswith(f"/recordings/north/clip-url?start={lead}") for p in seen), 10,
                   f"the clip from before the bookmark (asked: {[p for p in seen if 'clip-url' in p]})")

        # Click where the first span is drawn (its left edge; offsets count from the centre): the clip
        # plays from the first recorded moment after it.
        left_edge = -spans[0].rect["width"] / 2 + 1
        ActionChains(driver).move_to_element_with_offset(spans[0], int(left_edge), 0).click().perform()
        video = ".recordings .playback"
        wait_until(lambda: presented_frames(driver, video) >= 25, 20, "recorded frames in the page's player")
        before = presented_frames(driver, video)
        wait_until(lambda: presented_frames(driver, video) >= before + 25, 20, "frames advancing")
        summary = picture(driver, video)
        assert summary is not None and summary["black"] < 0.5 and summary["green"] < 0.3
        assert "Playing" in card.find_element(By.CSS_SELECTOR, ".playback-info").text
        assert card.find_element(By.CSS_SELECTOR, ".playback-clock").text.startswith("Picture of ")
        assert card.find_element(By.CSS_SELECTOR, ".timeline-selection").is_displayed()

        exports_before = routes.counts.completed
        card.find_element(By.CSS_SELECTOR, ".recordings .export").click()
        wait_until(lambda: any(p.startswith("/recordings-signed/north/export.zip?") for p in seen), 10, "the export")
        wait_until(lambda: routes.counts.completed > exports_before, 20, "the export to be sent")

        card.find_element(By.CSS_SELECTOR, ".recordings .lock").click()  # no reason yet: refused by the page
        assert "reason" in card.find_element(By.CSS_SELECTOR, ".playback-info").text
        assert routes.index.locks("north") == []
        card.find_element(By.CSS_SELECTOR, ".lock-reason").send_keys("collision at the junction")
        card.find_element(By.CSS_SELECTOR, ".recordings .lock").click()
        wait_until(lambda: routes.index.locks("north"), 10, "the lock")
        [lock] = routes.index.locks("north")
        assert lock.reason == "collision at the junction" and lock.end - lock.start == timedelta(minutes=10)
        wait_until(lambda: "Locked" in card.find_element(By.CSS_SELECTOR, ".playback-info").text, 5, "the note")

        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
                  and "snapshot.jpg" not in entry["message"]]
        assert errors == []
    assert seen and not [path for path in seen if TOKEN in path], "the token went into a URL"


def test_an_expired_signed_url_is_renewed_and_playback_goes_on(page_server, tmp_path: Path) -> None:
    server, routes, seen = page_server
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"http://127.0.0.1:{server.port}/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        card = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "li[data-camera='north']"), 10, "the card")[0]
        card.find_element(By.CSS_SELECTOR, ".recordings > summary").click()
        span = wait_until(lambda: card.find_elements(By.CSS_SELECTOR, ".timeline-track .span"), 10, "spans")[0]
        ActionChains(driver).move_to_element_with_offset(span, int(-span.rect["width"] / 2 + 1), 0).click().perform()
        video = ".recordings .playback"
        wait_until(lambda: presented_frames(driver, video) >= 10, 20, "the first frames")
        first_url = driver.execute_script(f"return document.querySelector('{video}').src")
        routes.urls._clock = lambda: time.time() + 120  # every URL handed out so far has expired
        try:
            driver.execute_script(f"const v = document.querySelector('{video}'); v.src = v.src;")  # fetch again
            wait_until(lambda: driver.execute_script(f"return document.querySelector('{video}').src") != first_url,
                       10, "a renewed URL")
            frames = presented_frames(driver, video)
            wait_until(lambda: presented_frames(driver, video) >= frames + 10, 20, "frames after the renewal")
        finally:
            routes.urls._clock = time.time
