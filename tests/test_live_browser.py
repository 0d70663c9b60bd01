"""Live view in a real browser: headless Chromium against the agent process and GStreamer cameras.

One agent with its cameras and one browser serve the whole module (starting them is most of the cost);
each test opens its own page and closes the viewers it opened. Frames are counted where the viewer sees
them (getStats, the video element's presented frames) and the picture is checked on a canvas.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import AgentProcess, Camera, base_config
from tests.support.browser import (
    browser_available,
    chromium,
    install_viewer,
    lit,
    looks_like_smpte,
    picture,
    presented_frames,
    start_viewer,
    stop_viewer,
    viewer_stats,
    wait_until,
)

pytestmark = pytest.mark.skipif(not browser_available(), reason="needs Debian's chromium and chromium-driver")

FPS = 25


class Cabinet:
    def __init__(self, agent: AgentProcess, cameras: dict[str, Camera]) -> None:
        self.agent = agent
        self.cameras = cameras
        self.url = agent.http_url
        self.token = agent.token

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def cameras_document(self) -> dict[str, Any]:
        status, _, body = self.request("GET", "/cameras", headers={"Authorization": f"Bearer {self.token}"})
        assert status == 200
        return json.loads(body)

    def all_online(self) -> bool:
        try:
            return all(c["status"] == "online" for c in self.cameras_document()["cameras"])
        except OSError:  # not listening yet
            return False

    def health(self, camera: str) -> dict[str, Any]:
        return next(c for c in self.cameras_document()["cameras"] if c["name"] == camera)["health"]

    def live(self, camera: str) -> dict[str, Any]:
        return self.health(camera)["live"]


@pytest.fixture(scope="module")
def cabinet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cabinet]:
    tmp = tmp_path_factory.mktemp("cabinet")
    cameras = {
        "north": Camera(gop_s=1, log_path=tmp / "north.log"),
        "slow": Camera(gop_s=10, log_path=tmp / "slow.log"),
        "hevc": Camera(codec="h265", gop_s=1, log_path=tmp / "hevc.log"),
        "gate": Camera(gop_s=1, log_path=tmp / "gate.log"),
    }
    agent = None
    try:
        for camera in cameras.values():
            camera.start()
        entries: dict[str, Any] = dict(cameras)
        # A second view of the north camera, with a house front masked: the live picture is masked too.
        entries["masked"] = {"url": cameras["north"].url, "privacy_masks": [[0.5, 0.0, 0.5, 0.5]]}
        config = base_config(
            tmp,
            None,
            entries,
            agent={"health_interval_s": 1},
            webrtc={"host_addresses": ["127.0.0.1"], "connect_timeout_s": 10, "transcode_width": 640},
        )
        agent = AgentProcess(config, tmp, name="agent").start()
        cabinet = Cabinet(agent, cameras)
        wait_until(cabinet.all_online, 30, "every camera online", interval=0.2)
        yield cabinet
    finally:
        if agent is not None:
            agent.close()
        for camera in cameras.values():
            camera.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def page(browser: Any, cabinet: Cabinet) -> Iterator[Any]:
    """A fresh page of the agent with the bare WHEP viewer helpers; its viewers end with the test."""
    browser.get(cabinet.url + "/healthz")
    install_viewer(browser)
    yield browser
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Object.keys(window.__viewers || {}).map((id) => window.__stopViewer(id, arguments[0])))"
        ".then(done, done);",
        cabinet.token,
    )
    browser.get("about:blank")


def frames(driver: Any, viewer: str) -> int:
    return viewer_stats(driver, viewer).get("framesDecoded", 0)


def wait_frames(driver: Any, viewer: str, count: int, timeout: float) -> int:
    return wait_until(lambda: (n := frames(driver, viewer)) >= count and n, timeout, f"{count} frames on {viewer}")


def frame_rate(driver: Any, viewer: str, count: int = 50) -> float:
    start = frames(driver, viewer)
    started = time.monotonic()
    wait_frames(driver, viewer, start + count, max(3.0, count / FPS * 3))
    return count / (time.monotonic() - started)


def steady_frame_rate(driver: Any, viewer: str, count: int = 50) -> float:
    """The frame rate once any backlog (a cached GOP still being decoded) is behind the viewer."""
    wait_until(lambda: frame_rate(driver, viewer, 10) < 1.5 * FPS, 10, f"a steady frame rate on {viewer}")
    return frame_rate(driver, viewer, count)


# -- the operator page ------------------------------------------------------------------------------


def test_operator_page_lists_the_cameras_and_plays_live_video_on_a_click(browser, cabinet):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(cabinet.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(cabinet.url + "/")
    token_input = wait_until(lambda: driver.find_element(By.ID, "token"), 10, "the sign-in form")
    token_input.send_keys("not-the-token-at-all")
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait_until(lambda: "not accepted" in driver.find_element(By.ID, "login-error").text, 5, "a refusal")
    token_input.clear()
    token_input.send_keys(cabinet.token + "\n")

    names = {"north", "slow", "hevc", "gate", "masked"}
    online = "li.card[data-status=online]"
    wait_until(
        lambda: {e.get_attribute("data-camera") for e in driver.find_elements(By.CSS_SELECTOR, online)} == names,
        10,
        "every camera card online",
    )
    # The latest snapshot of each camera is shown (decoded, not a broken image).
    wait_until(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('li.card img.snapshot')]"
            ".filter((img) => !img.hidden && img.complete && img.naturalWidth > 0).length"
        )
        == len(names),
        15,
        "a snapshot on every card",
    )
    assert "H.264" in driver.find_element(By.CSS_SELECTOR, "li[data-camera=north] .meta").text
    assert "H.265" in driver.find_element(By.CSS_SELECTOR, "li[data-camera=hevc] .meta").text

    card = "li[data-camera=north]"
    watch = driver.find_element(By.CSS_SELECTOR, f"{card} .watch")
    assert watch.get_attribute("aria-pressed") == "false"
    clicked = time.monotonic()
    watch.click()
    state = f"return document.querySelector('{card}').dataset.live"
    wait_until(lambda: driver.execute_script(state) == "live", 5, "live")
    assert time.monotonic() - clicked < 3
    assert watch.get_attribute("aria-pressed") == "true"
    assert driver.find_element(By.CSS_SELECTOR, f"{card} .badge").text == "LIVE"

    def presented_rate(count: int) -> float:
        start, started = presented_frames(driver, f"{card} video"), time.monotonic()
        wait_until(lambda: presented_frames(driver, f"{card} video") >= start + count, 6, "frames presented")
        return count / (time.monotonic() - started)

    wait_until(lambda: presented_rate(10) < 1.5 * FPS, 10, "a steady frame rate")
    assert presented_rate(50) == pytest.approx(FPS, rel=0.3)
    shot = picture(driver, f"{card} video")
    assert looks_like_smpte(shot), shot

    # A second live view at once, on another camera.
    driver.find_element(By.CSS_SELECTOR, "li[data-camera=gate] .watch").click()
    wait_until(
        lambda: driver.execute_script("return document.querySelector('li[data-camera=gate]').dataset.live") == "live",
        5,
        "a second live view",
    )
    wait_until(lambda: cabinet.live("north")["viewers"] == 1 and cabinet.live("gate")["viewers"] == 1, 5, "2 viewers")

    # Stop ends the session on the agent (DELETE), not only in the page.
    driver.find_element(By.ID, "stop-all").click()
    wait_until(lambda: cabinet.live("north")["viewers"] == 0 and cabinet.live("gate")["viewers"] == 0, 5, "0 viewers")
    assert watch.get_attribute("aria-pressed") == "false"
    driver.execute_script("sessionStorage.clear()")


def test_camera_restart_while_watching_resumes_on_the_same_page(browser, cabinet):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(cabinet.url + "/")
    driver.execute_script("sessionStorage.setItem('edgeagent.token', arguments[0])", cabinet.token)
    driver.get(cabinet.url + "/")
    card = "li[data-camera=gate]"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"{card}[data-status=online]"), 10, "the gate card")
    driver.find_element(By.CSS_SELECTOR, f"{card} .watch").click()
    state = f"return document.querySelector('{card}').dataset.live"
    wait_until(lambda: driver.execute_script(state) == "live", 5, "live")
    session = driver.execute_script(f"return document.querySelector('{card}').dataset.session")
    before = presented_frames(driver, f"{card} video")

    camera = cabinet.cameras["gate"]
    camera.stop()
    wait_until(lambda: driver.execute_script(state) == "waiting", 10, "the page saying it waits for the picture")
    camera.start()
    resumed = time.monotonic()
    wait_until(lambda: driver.execute_script(state) == "live", 20, "live again")
    frozen_at = presented_frames(driver, f"{card} video")
    assert frozen_at > before
    wait_until(lambda: presented_frames(driver, f"{card} video") >= frozen_at + 25, 5, "frames rising again")
    assert time.monotonic() - resumed < 20
    assert driver.execute_script(f"return document.querySelector('{card}').dataset.session") == session
    assert looks_like_smpte(picture(driver, f"{card} video"))
    driver.find_element(By.CSS_SELECTOR, f"{card} .watch").click()
    wait_until(lambda: cabinet.live("gate")["viewers"] == 0, 5, "the session closed")
    driver.execute_script("sessionStorage.clear()")


# -- WHEP viewers -----------------------------------------------------------------------------------


def test_a_second_viewer_mid_gop_sees_a_picture_long_before_the_next_keyframe(page, cabinet):
    assert start_viewer(page, "first", "slow", cabinet.token) == "ok"
    wait_frames(page, "first", 1, 5)
    # Wait for a fresh keyframe (the cached one came first), then 2 s into its 10 s GOP.
    wait_until(lambda: viewer_stats(page, "first").get("keyFramesDecoded", 0) >= 2, 12, "a new keyframe")
    wait_frames(page, "first", frames(page, "first") + 2 * FPS, 5)

    assert start_viewer(page, "second", "slow", cabinet.token) == "ok"
    second = wait_until(lambda: (s := viewer_stats(page, "second")).get("firstFrameMs") and s, 3, "a picture")
    assert second["firstFrameMs"] < 1500
    assert second["keyFramesDecoded"] == 1
    assert viewer_stats(page, "first")["keyFramesDecoded"] == 2, "no new keyframe came meanwhile: the GOP start did it"
    assert looks_like_smpte(picture(page, "#viewer-second"))
    # Once the agent has sent the cached GOP (the browser decodes it in a blink), frames come at the camera's pace.
    assert steady_frame_rate(page, "second") == pytest.approx(FPS, rel=0.3)


def test_an_h265_camera_plays_through_one_shared_transcode_for_two_viewers(page, cabinet):
    for viewer in ("a", "b"):
        assert start_viewer(page, viewer, "hevc", cabinet.token) == "ok"
    for viewer in ("a", "b"):
        wait_frames(page, viewer, 25, 10)
        assert looks_like_smpte(picture(page, f"#viewer-{viewer}"))
    assert steady_frame_rate(page, "a") == pytest.approx(FPS, rel=0.3)
    live = cabinet.live("hevc")
    assert live["viewers"] == 2 and live["transcoding"] is True
    assert live["transcode"]["encoders_opened"] == 1
    status, _, metrics = cabinet.request("GET", "/metrics", headers={"Authorization": f"Bearer {cabinet.token}"})
    assert status == 200
    assert 'edgeagent_live_transcoders{camera="hevc"} 1.0' in metrics.decode()
    assert 'edgeagent_live_viewers{camera="hevc"} 2.0' in metrics.decode()


def test_the_masked_region_is_black_in_the_browser(page, cabinet):
    assert start_viewer(page, "m", "masked", cabinet.token) == "ok"
    wait_frames(page, "m", 10, 10)
    top = picture(page, "#viewer-m")["cells"][0]
    assert [lit(colour) for colour in top[:3]] == ["RGB", "RG", "GB"]
    assert all(max(colour) < 30 for colour in top[4:]), top


def test_whep_needs_the_token_rejects_a_malformed_offer_and_the_agent_serves_on(page, cabinet):
    assert start_viewer(page, "anonymous", "north", None).startswith("401")
    status, _, body = cabinet.request(
        "POST", "/whep/north", b"v=0\r\nthis is no offer\r\n",
        {"Authorization": f"Bearer {cabinet.token}", "Content-Type": "application/sdp"},
    )  # fmt: skip
    assert status == 400 and body.decode().count("\n") == 1, body
    status, _, _ = cabinet.request("POST", "/whep/north", b"v=0\r\n", {"Content-Type": "application/sdp"})
    assert status == 401
    status, _, _ = cabinet.request("DELETE", "/whep/sessions/whatever")
    assert status == 401

    assert start_viewer(page, "good", "north", cabinet.token) == "ok"
    wait_frames(page, "good", 25, 5)
    assert looks_like_smpte(picture(page, "#viewer-good"))
    assert stop_viewer(page, "good", cabinet.token) == 200
    wait_until(lambda: cabinet.live("north")["viewers"] == 0, 5, "the session closed by DELETE")
