"""The operator page's alarm badge in headless Chromium: the agent as a real process, the simulator's road
scene with a fault commanded; the badge names the alarm and since when, and the "Accept new view" button
resets the learned view of a camera turned on purpose."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import AgentProcess, Camera
from tests.support.browser import browser_available, chromium, wait_until

pytestmark = pytest.mark.skipif(not browser_available(), reason="needs Debian's chromium and chromium-driver")

GOP_S = 1.0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def picture_health(agent: AgentProcess) -> dict[str, Any]:
    request = urllib.request.Request(agent.http_url + "/cameras", headers={"Authorization": f"Bearer {agent.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read())["cameras"][0]["health"]["picture"])


def test_the_card_shows_each_active_alarm_since_when_and_resets_a_moved_view(
    tmp_path: Path,
    browser: Any,
    camera_factory: Callable[..., Camera],
    agent_factory: Callable[..., AgentProcess],
    base_config: Callable[..., dict[str, Any]],
) -> None:
    from selenium.webdriver.common.by import By

    camera = camera_factory(scene="road", width=320, height=180, fps=10, gop_s=GOP_S)
    entry = {"url": camera.url, "transport": "tcp", "stall_timeout_s": 3}
    agent = agent_factory(base_config(tmp_path, None, cameras={"road": entry}, agent={"health_interval_s": 1}))
    agent.wait_log("http: listening", timeout=10)
    driver = browser
    driver.get(agent.http_url + "/")
    driver.execute_script("sessionStorage.setItem('edgeagent.token', arguments[0])", agent.token)
    driver.get(agent.http_url + "/")
    card = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "li.card[data-status=online]"), 20, "online")[0]
    badge = card.find_element(By.CSS_SELECTOR, ".alarms")
    reset = card.find_element(By.CSS_SELECTOR, ".reset-view")
    wait_until(lambda: card.get_attribute("data-alarms") == "no", 5, "no alarm on the normal picture")
    assert not badge.is_displayed() and not reset.is_displayed()

    camera.set_fault("black")
    wait_until(lambda: badge.is_displayed() and badge.text, 10, "the alarm badge")
    assert badge.text.startswith("Picture blank since "), badge.text
    assert card.get_attribute("data-alarms") == "yes"
    assert not reset.is_displayed()  # nothing learned to reset for a blank picture
    driver.save_screenshot(str(tmp_path / "alarm-badge.png"))

    camera.set_fault(None)
    wait_until(lambda: not badge.is_displayed(), 10, "the badge gone once the picture is back")

    # The camera is turned: "moved" (once a reference view was learned), and the button to accept the view.
    wait_until(lambda: (picture_health(agent)["measures"] or {}).get("similarity") is not None, 10, "a learned view")
    camera.set_fault("shift")
    wait_until(lambda: "View moved since" in badge.text and reset.is_displayed(), 10, "moved and the reset button")
    reset.click()
    wait_until(lambda: not badge.is_displayed() and not reset.is_displayed(), 5, "the badge gone after the reset")
    assert "picture reference reset (HTTP request)" in agent.log_text()
