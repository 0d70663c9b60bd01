"""ONVIF against an ONVIF device someone else wrote: IPyCam (PyPI ``ipycam``, pure-Python virtual IP
camera), run in a network namespace of its own with our RTSP simulator as its stream.

Making the namespace needs root, as these tests have here and in CI: if it cannot be made, the tests
fail; they never skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from edgeagent.onvif import discovery
from edgeagent.onvif.device import OnvifDevice
from edgeagent.onvif.profiles import pick_profile
from edgeagent.onvif.ptz import PtzHead
from tests.support.onvif_device import PASSWORD, USER, IpyCamDevice

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ipycam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpyCamDevice]:
    device = IpyCamDevice(tmp_path_factory.mktemp("ipycam")).start()
    yield device
    device.close()


async def _connected(ipycam: IpyCamDevice) -> OnvifDevice:
    device = OnvifDevice(ipycam.device_url, USER, PASSWORD, timeout_s=3)
    await device.connect()
    return device


async def test_discovery_by_multicast_in_the_namespace_and_by_unicast(ipycam: IpyCamDevice) -> None:
    started = time.monotonic()
    by_multicast = await discovery.probe(1.0, interface=ipycam.netns.host_address)
    multicast_s = time.monotonic() - started
    by_unicast = await discovery.probe(1.0, targets=[ipycam.address], multicast=False)
    for found in (by_multicast, by_unicast):
        assert [device.xaddrs[0] for device in found] == [ipycam.device_url]
        assert found[0].endpoint.startswith("urn:uuid:")
    assert by_multicast[0].endpoint == by_unicast[0].endpoint
    assert multicast_s < 2.0


async def test_device_info_profiles_stream_and_snapshot_uri(ipycam: IpyCamDevice) -> None:
    device = await _connected(ipycam)
    try:
        assert device.clock is not None and abs(device.clock.offset_s) < 2
        assert device.clock.method == "authenticated"  # IPyCam authenticates even the time query
        info = await device.device_info()
        assert (info.manufacturer, info.model, info.serial) == ("PythonCam", "VirtualCam-1", "PY-000001")
        profiles = await device.profiles()
        main = pick_profile(profiles, 0)
        assert (main.token, main.codec, main.width, main.height, main.fps, main.gop) == (
            "Profile_Main",
            "H264",
            320,
            180,
            25,
            25,
        )
        assert pick_profile(profiles, "SubStream").token == "Profile_Sub"
        assert await device.stream_uri(main.token) == ipycam.stream_url
        snapshot = await device.snapshot_uri(main.token)
        assert snapshot == f"http://{ipycam.onvif_address}/snapshot.jpg"
        basic = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}  # IPyCam's snapshot: Basic only
        async with (
            aiohttp.ClientSession() as session,
            session.get(snapshot, headers=basic, timeout=aiohttp.ClientTimeout(total=5)) as response,
        ):
            assert response.status == 200
            assert (await response.read())[:2] == b"\xff\xd8"  # a JPEG
    finally:
        await device.close()


async def test_continuous_move_ends_by_itself_after_its_timeout(ipycam: IpyCamDevice) -> None:
    device = await _connected(ipycam)
    head = PtzHead(device, "Profile_Main")
    try:
        await head.absolute(0.0, 0.0, 0.0)
        await head.move(0.5, 0.0, 0.0, timeout_s=0.6)
        await asyncio.sleep(0.3)
        moving = await head.status()
        assert moving.pan is not None and moving.pan > 0.02  # the device reports it turning
        assert head.auto_stop is not None
        await asyncio.wait_for(asyncio.shield(head.auto_stop), 3)
        assert head.auto_stops == 1  # IPyCam ignores the ONVIF timeout: the agent's own stop ended it
        stopped = await head.status()
        await asyncio.sleep(0.4)
        later = await head.status()
        assert stopped.pan == later.pan  # no longer turning
        assert 0.1 < later.pan < 0.6  # about 0.5/s for 0.6 s, not a move without end
    finally:
        await head.close()
        await device.close()


async def test_absolute_move_and_home_confirmed_by_the_reported_position(ipycam: IpyCamDevice) -> None:
    device = await _connected(ipycam)
    head = PtzHead(device, "Profile_Main")
    try:
        await head.absolute(0.3, -0.2, 0.5)
        status = await head.status()
        assert (status.pan, status.tilt, status.zoom) == pytest.approx((0.3, -0.2, 0.5), abs=1e-3)
        await head.home()
        status = await head.status()
        assert (status.pan, status.tilt, status.zoom) == pytest.approx((0.0, 0.0, 0.0), abs=1e-3)
    finally:
        await head.close()
        await device.close()


def test_discover_command_prints_json_and_a_cameras_fragment(ipycam: IpyCamDevice) -> None:
    env = dict(os.environ, EDGEAGENT_ONVIF_USER=USER, EDGEAGENT_ONVIF_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "edgeagent", "discover", "--timeout", "1"]
    started = time.monotonic()
    done = subprocess.run([*base, "--interface", ipycam.netns.host_address, "--json"], env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    took_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert report["xaddrs"] == [ipycam.device_url]
    assert (report["manufacturer"], report["model"], report["firmware"]) == ("PythonCam", "VirtualCam-1", "1.3.0")
    assert report["ptz"] is True and abs(report["clock_offset_s"]) < 2
    main = report["profiles"][0]
    assert {k: main[k] for k in ("token", "codec", "width", "height", "stream_uri")} == {
        "token": "Profile_Main", "codec": "H264", "width": 320, "height": 180, "stream_uri": ipycam.stream_url,
    }  # fmt: skip
    assert report["snapshot_uri"].endswith("/snapshot.jpg")
    assert took_s < 10
    table = subprocess.run([*base, "--probe", ipycam.address], env=env, capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    assert "cameras:" in table.stdout and f'address: "{ipycam.onvif_address}"' in table.stdout
    assert f'username: "{USER}"' in table.stdout and PASSWORD not in table.stdout


async def test_presets_set_listed_and_gone_to_read_leniently(ipycam: IpyCamDevice) -> None:
    """IPyCam answers GetStatus, GetPresets and SetPreset with an undeclared prefix that zeep refuses: the
    lenient fallback reads them."""
    device = await _connected(ipycam)
    head = PtzHead(device, "Profile_Main")
    try:
        await head.absolute(0.2, 0.1, 0.0)
        token = await head.set_preset("Bridge")
        assert token and ("Bridge" in [p.name for p in await head.presets() if p.token == token])
        await head.home()
        await head.goto(token)
        status = await head.status()
        assert (status.pan, status.tilt, status.zoom) == pytest.approx((0.2, 0.1, 0.0), abs=1e-3)
    finally:
        await head.close()
        await device.close()
