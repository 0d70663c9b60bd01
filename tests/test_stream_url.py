"""A camera's stream URL, asked of its ONVIF service once per attempt (pure logic: no device)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from edgeagent.camera.stream_url import StreamUrl
from edgeagent.config import CameraSection

PLACEHOLDER = "rtsp://10.0.0.21:554/"


class Device:
    """GetStreamUri answers: each one a URL, or an exception raised."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.asks = 0

    def resolve(self) -> str:
        self.asks += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def stream_url(device: Device) -> StreamUrl:
    url = StreamUrl("north", CameraSection(url=PLACEHOLDER), SecretStr("pw-secret"))
    url.resolver = device.resolve
    url.known = False
    return url


def test_the_ask_before_the_probe_is_the_one_the_connect_uses():
    device = Device("rtsp://10.0.0.22:8554/main")
    url = stream_url(device)
    url.resolve_quietly()  # before the probe
    url.resolve()  # the connect
    assert device.asks == 1
    assert url.known and url.address == ("10.0.0.22", 8554) and url.section.url == "rtsp://10.0.0.22:8554/main"
    assert "pw-secret" in url.with_password and "pw-secret" not in url.display


def test_a_failed_ask_fails_its_attempt_once_without_a_second_login():
    device = Device(PermissionError("refused"))
    url = stream_url(device)
    url.resolve_quietly()
    with pytest.raises(PermissionError):
        url.resolve()
    assert device.asks == 1 and not url.known


def test_a_failure_of_an_earlier_attempt_never_fails_a_later_one():
    # The connect asked itself (no probe before it: the URL was not known yet) and failed; two attempts
    # later the answer was good before the probe, so the connect must go ahead with it.
    device = Device(TimeoutError("no answer"), "rtsp://10.0.0.22/main", "rtsp://10.0.0.22/main")
    url = stream_url(device)
    with pytest.raises(TimeoutError):
        url.resolve()
    url.forget()  # that attempt is over
    url.resolve()
    url.forget()
    url.resolve_quietly()
    url.resolve()  # the code before StreamUrl raised the first attempt's TimeoutError here
    assert device.asks == 3 and url.known


def test_a_woken_probe_makes_the_next_attempt_ask_afresh():
    device = Device("rtsp://10.0.0.22/a", "rtsp://10.0.0.23/b")
    url = stream_url(device)
    url.resolve_quietly()
    url.forget()
    url.resolve()
    assert device.asks == 2 and url.address == ("10.0.0.23", 554)


def test_a_configured_url_is_used_as_it_is_without_a_resolver():
    url = StreamUrl("north", CameraSection(url="rtsp://cam.example:8554/s"), None)
    url.resolve()
    assert url.known and url.address == ("cam.example", 8554) and url.with_password == "rtsp://cam.example:8554/s"
