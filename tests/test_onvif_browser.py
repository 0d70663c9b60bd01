"""PTZ on the operator page, in headless Chromium: the controls appear on the card of a live PTZ camera
(IPyCam in its own network namespace), press-and-hold turns it and release stops it, the keyboard works,
and an operator who does not hold control is told who does."""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess
from tests.support.browser import browser_available, chromium, wait_until
from tests.support.onvif_device import PASSWORD, USER, IpyCamDevice, agent_http

pytestmark = pytest.mark.skipif(not browser_available(), reason="needs Debian's chromium and chromium-driver")


@pytest.fixture
def ipycam(tmp_path: Path) -> Iterator[IpyCamDevice]:
    device = IpyCamDevice(tmp_path / "ipycam").start()
    yield device
    device.close()


def test_ptz_controls_on_a_live_camera(
    ipycam: IpyCamDevice, tmp_path: Path, base_config: Callable[..., dict[str, Any]],
    agent_factory: Callable[..., AgentProcess],
) -> None:  # fmt: skip
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cameras = {"north": {"onvif": {"address": ipycam.onvif_address, "username": USER}, "password": PASSWORD}}
    config = base_config(tmp_path, None, cameras, webrtc={"host_addresses": ["127.0.0.1"], "connect_timeout_s": 10})
    agent = agent_factory(config)

    def position() -> dict[str, Any]:
        return json.loads(agent_http(agent, "GET", "/cameras/north/ptz")[1])

    def ptz_ready() -> bool:
        try:
            return agent_http(agent, "GET", "/cameras/north/ptz")[0] == 200
        except urllib.error.URLError:
            return False  # not listening yet

    wait_until(ptz_ready, 30, "PTZ of north")
    home = {"action": "home"}
    assert agent_http(agent, "POST", "/cameras/north/ptz", home, operator="127.0.0.1")[0] == 200  # as the page
    with chromium(tmp_path / "chromium") as driver:
        driver.get(agent.http_url + "/")
        driver.execute_script("sessionStorage.setItem('edgeagent.token', arguments[0])", agent.token)
        driver.get(agent.http_url + "/")
        card = "li[data-camera=north]"
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"{card}[data-status=online]"), 20, "north online")
        assert not driver.find_element(By.CSS_SELECTOR, f"{card} .ptz").is_displayed()  # not while not live
        driver.find_element(By.CSS_SELECTOR, f"{card} .watch").click()
        panel = wait_until(
            lambda: next((e for e in driver.find_elements(By.CSS_SELECTOR, f"{card} .ptz") if e.is_displayed()), None),
            10, "the PTZ controls on the live card",
        )  # fmt: skip
        right = panel.find_element(By.CSS_SELECTOR, "[data-ptz=right]")
        ActionChains(driver).click_and_hold(right).perform()
        wait_until(lambda: position()["pan"] > 0.1, 5, "the camera turning right while the button is held")
        ActionChains(driver).release(right).perform()

        def settled(key: str) -> float | None:
            first = position()[key]
            time.sleep(0.3)
            return first if position()[key] == first else None

        pan = wait_until(lambda: settled("pan"), 3, "the camera stopping on release")
        assert pan < 0.9

        panel.click()  # the keyboard: arrow keys while the controls have focus
        ActionChains(driver).key_down(Keys.ARROW_UP).perform()
        wait_until(lambda: position()["tilt"] > 0.1, 5, "tilting up while the arrow key is down")
        ActionChains(driver).key_up(Keys.ARROW_UP).perform()
        wait_until(lambda: settled("tilt"), 3, "the camera stopping on key up")

        options = [o.text for o in panel.find_elements(By.CSS_SELECTOR, ".ptz-presets option")]
        assert "Home" in options

        time.sleep(5.2)  # the page's hold on control lapses 5 s after its last command (a time, not an event)
        assert agent_http(agent, "POST", "/cameras/north/ptz", {"action": "stop"}, operator="bob")[0] == 200
        panel.find_element(By.CSS_SELECTOR, ".ptz-home").click()
        message = panel.find_element(By.CSS_SELECTOR, ".ptz-message")
        wait_until(lambda: message.text.startswith("bob holds"), 5, "the page telling who holds control")
