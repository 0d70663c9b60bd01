"""The private parts of aiortc and aioice the live view relies on are still there and still used the same way.

Each failure says what to check. On a version bump: read the named function in the new release, adjust
edgeagent/live/ to it, run tests/test_live_service.py and tests/test_live_browser.py, then move the pin in
pyproject.toml.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import tomllib
from importlib.metadata import requires, version
from pathlib import Path

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from packaging.requirements import Requirement
from packaging.version import Version

from edgeagent.live import ice

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PATCHED = ("aiortc", "aioice", "av")


def pins() -> dict[str, Requirement]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {req.name: req for req in map(Requirement, dependencies)}


@pytest.mark.parametrize("name", PATCHED)
def test_the_installed_version_is_inside_the_tested_pin(name: str) -> None:
    pin = pins()[name]
    assert pin.specifier and any(spec.operator == "<" for spec in pin.specifier), (
        f"{name} must have an upper bound in pyproject.toml: the live view depends on its private API"
    )
    installed = version(name)
    assert pin.specifier.contains(installed), (
        f"{name} {installed} is installed but pyproject.toml pins {pin}: run the checks in this file's "
        f"docstring against {installed} before moving the pin"
    )


def test_the_av_pin_agrees_with_aiortcs_own() -> None:
    aiortc_av = next(Requirement(r) for r in requires("aiortc") or [] if Requirement(r).name == "av")
    ours = pins()["av"]
    lowest = next(Version(spec.version) for spec in ours.specifier if spec.operator == ">=")
    highest = next(Version(spec.version) for spec in ours.specifier if spec.operator == "<")
    assert aiortc_av.specifier.contains(lowest), f"aiortc wants {aiortc_av}, pyproject.toml allows {ours}"
    assert all(Version(s.version) >= highest for s in aiortc_av.specifier if s.operator == "<"), (
        f"aiortc wants {aiortc_av}, pyproject.toml allows {ours}: keep av inside aiortc's range"
    )


def test_rtcrtpsender_still_calls_send_keyframe_for_a_browsers_keyframe_request() -> None:
    what = (
        "aiortc changed RTCRtpSender._send_keyframe or who calls it: edgeagent/live/service.py assigns "
        "transceiver.sender._send_keyframe = track.request_keyframe so that a browser's PLI/FIR reaches the "
        "shared transcoder; check RTCRtpSender._handle_rtcp_packet in the new aiortc"
    )
    method = getattr(RTCRtpSender, "_send_keyframe", None)
    assert inspect.isfunction(method), what
    assert list(inspect.signature(method).parameters) == ["self"], what
    assert "_send_keyframe" in RTCRtpSender._handle_rtcp_packet.__code__.co_names, what


def test_aioice_still_looks_up_get_host_addresses_when_it_gathers() -> None:
    what = (
        "aioice changed host address discovery: edgeagent/live/ice.py replaces aioice.ice.get_host_addresses "
        "(use_ipv4, use_ipv6) -> list[str], looked up by Connection.gather_candidates at each gathering; "
        "check both in the new aioice"
    )
    discover = ice._discover_host_addresses
    assert discover.__module__ == "aioice.ice" and discover.__name__ == "get_host_addresses", what
    assert list(inspect.signature(discover).parameters) == ["use_ipv4", "use_ipv6"], what
    assert "get_host_addresses" in aioice.ice.Connection.gather_candidates.__code__.co_names, what
    assert "get_host_addresses" in vars(aioice.ice), what


async def gathered_hosts() -> set[str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        lines = pc.localDescription.sdp.splitlines()
        return {line.split()[4] for line in lines if line.startswith("a=candidate:")}
    finally:
        await pc.close()


async def test_pinned_host_addresses_apply_inside_their_block_only() -> None:
    with ice.offered_host_addresses(["127.0.0.1"]):
        inside = await gathered_hosts()
        # A peer connection gathering in another task started outside the block keeps aioice's discovery.
        outside_task = asyncio.get_running_loop().create_task(gathered_hosts(), context=contextvars.Context())
        outside = await outside_task
    after = await gathered_hosts()
    assert inside == {"127.0.0.1"}
    assert "127.0.0.1" not in outside and "127.0.0.1" not in after  # aioice leaves loopback out
    assert outside == after == set(ice._discover_host_addresses(True, True))
