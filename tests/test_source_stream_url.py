"""A camera configured by ONVIF alone (no `url`) has no address to probe until its device names the stream.

The source must keep asking, spaced, and connect once it gets an answer; a device that refuses the credentials
is backed off from, as a camera that refuses them is. Before this, the source probed an empty address for ever
after the first failed ask and never came online.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

import pytest

from edgeagent.camera.failures import (
    STREAM_URL_RETRY_S,
    WAITING_AFTER_AUTH_FAILURE,
    WAITING_FOR_STREAM_URL,
    AuthRefused,
)
from edgeagent.camera.source import CameraSource, CameraState
from edgeagent.config import CameraSection
from edgeagent.onvif.errors import OnvifUnreachable
from edgeagent.unit import build_unit
from tests.support.wait import wait_until_async as until


class Rig(NamedTuple):
    device: Device
    source: CameraSource


class Device:
    """The ONVIF side as the source sees it: ``resolve_url``, failing ``failures`` times first."""

    def __init__(self, url: str, failures: int, error: type[Exception]) -> None:
        self.url, self.failures, self.error = url, failures, error
        self.asked: list[float] = []
        self.answered = 0
        self._lock = threading.Lock()

    def resolve_url(self) -> str:
        with self._lock:
            self.asked.append(time.monotonic())
            if len(self.asked) <= self.failures:
                raise self.error("onvif: GetStreamUri: connection refused")
            self.answered += 1
        return self.url


    @property
    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.asked, self.asked[1:], strict=False)]


@pytest.fixture
async def onvif_only(camera_factory) -> AsyncIterator[Callable[[int, type[Exception]], Awaitable[Rig]]]:
    """``await onvif_only(failures, error)``: a started source as the agent builds it for a camera known by
    ONVIF alone (a placeholder URL at the device's host: 127.0.0.1:9, which refuses, so a probe of it would
    never succeed), its ONVIF side a ``Device`` that fails ``failures`` times before naming the camera."""
    sources: list[CameraSource] = []

    async def start(failures: int, error: type[Exception]) -> Rig:
        device = Device(camera_factory(width=320, height=180).url, failures, error)
        section = CameraSection(url="", onvif={"address": "127.0.0.1:9"}, stall_timeout_s=3)
        source = build_unit("north", section, None, None).camera.source
        source.stream.resolver = device.resolve_url
        source.start()
        sources.append(source)
        return Rig(device, source)

    yield start
    for source in sources:
        await source.stop()


async def test_a_camera_known_only_by_onvif_comes_online_once_its_device_answers(onvif_only) -> None:
    device, source = await onvif_only(3, OnvifUnreachable)
    await until(lambda: source.waiting_for == WAITING_FOR_STREAM_URL, 10, "the wait for a stream URL")
    assert source.state == CameraState.OFFLINE and "connection refused" in (source.last_error or "")
    await until(lambda: source.state == CameraState.ONLINE, 30, "online after the device answered")
    assert len(device.asked) >= 4 and device.answered  # three refusals, then the URL
    assert all(gap >= STREAM_URL_RETRY_S * 0.9 for gap in device.gaps[:3]), device.gaps  # spaced, not a loop


async def test_a_device_refusing_the_credentials_is_backed_off_from(onvif_only) -> None:
    device, source = await onvif_only(100, AuthRefused)
    await until(lambda: len(device.asked) >= 3, 15, "three asks")
    assert source.waiting_for == WAITING_AFTER_AUTH_FAILURE and source.state == CameraState.OFFLINE
    # one login per attempt, and the backoff doubles (1 s, then 2 s, each less up to 25 % jitter)
    assert device.gaps[0] >= 0.75 * 0.95 and device.gaps[1] >= 0.75 * 2 * 0.95, device.gaps
