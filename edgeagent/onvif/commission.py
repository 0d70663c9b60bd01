"""``edgeagent discover``: find the ONVIF devices, describe each, and print a ready ``cameras:`` fragment.

Credentials come from EDGEAGENT_ONVIF_USER and EDGEAGENT_ONVIF_PASSWORD; the password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from edgeagent.onvif import discovery
from edgeagent.onvif.errors import OnvifError
from edgeagent.onvif.settings import device_url

USER_ENV = "EDGEAGENT_ONVIF_USER"
PASSWORD_ENV = "EDGEAGENT_ONVIF_PASSWORD"
PARALLEL = 8


def empty_report(xaddrs: list[str]) -> dict[str, Any]:
    return {
        "xaddrs": xaddrs, "manufacturer": None, "model": None, "firmware": None, "serial": None,
        "profiles": [], "snapshot_uri": None, "ptz": False, "clock_offset_s": None, "error": None,
    }  # fmt: skip


async def describe(xaddr: str, username: str | None, password: str | None, timeout_s: float) -> dict[str, Any]:
    """What a device says about itself; ``error`` names the first thing that failed."""
    from edgeagent.onvif.device import OnvifDevice  # zeep: loaded by `discover`, not by every command line

    report = empty_report([xaddr])
    device = OnvifDevice(xaddr, username, password, timeout_s)
    try:
        await device.connect()
        assert device.clock is not None
        report["clock_offset_s"] = round(device.clock.offset_s, 1)
        report["clock_method"] = device.clock.method
        info = await device.device_info()
        report.update(manufacturer=info.manufacturer, model=info.model, firmware=info.firmware, serial=info.serial)
        report["ptz"] = device.has_ptz
        for profile in await device.profiles():
            entry: dict[str, Any] = {
                "token": profile.token, "name": profile.name, "codec": profile.codec, "width": profile.width,
                "height": profile.height, "fps": profile.fps, "gop": profile.gop, "stream_uri": None,
            }  # fmt: skip
            report["profiles"].append(entry)
            try:
                entry["stream_uri"] = await device.stream_uri(profile.token)
            except OnvifError as exc:
                entry["error"] = str(exc)
        if report["profiles"]:
            try:
                report["snapshot_uri"] = await device.snapshot_uri(report["profiles"][0]["token"])
            except OnvifError:
                pass  # optional (Profile S makes it so)
    except OnvifError as exc:
        report["error"] = str(exc)
    finally:
        await device.close()
    return report


async def discover(
    timeout_s: float, interface: str | None, targets: list[str], username: str | None, password: str | None
) -> list[dict[str, Any]]:
    found = await discovery.probe(timeout_s, interface, targets, multicast=interface is not None or not targets)
    limit = asyncio.Semaphore(PARALLEL)

    async def one(device: discovery.Discovered) -> dict[str, Any]:
        own = [xaddr for xaddr in device.xaddrs if urlsplit(xaddr).hostname == device.address]
        if not own:  # only the address that answered is asked: a reply cannot send us elsewhere
            report = empty_report(device.xaddrs)
            report["error"] = f"its XAddrs name other hosts than {device.address}, which answered: not contacted"
        else:
            async with limit:
                report = await describe(own[0], username, password, max(timeout_s, 3.0))
        report["xaddrs"] = device.xaddrs
        report["endpoint"] = device.endpoint
        return report

    return list(await asyncio.gather(*(one(device) for device in found)))


def camera_name(report: dict[str, Any], taken: set[str]) -> str:
    words = " ".join(str(report.get(key) or "") for key in ("model", "serial")) or "camera"
    name = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:40] or "camera"
    name = name if name[0].isalnum() else f"cam-{name}"
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name}-{number}", number + 1
    taken.add(unique)
    return unique


def yaml_fragment(reports: list[dict[str, Any]], username: str | None) -> str:
    lines = ["cameras:"]
    taken: set[str] = set()
    for report in reports:
        if report.get("error") and not report["profiles"]:
            continue
        name = camera_name(report, taken)
        address = urlsplit(report["xaddrs"][0])
        path = "" if address.path == "/onvif/device_service" else address.path
        profile = report["profiles"][0]["token"] if report["profiles"] else 0
        lines += [f"  {name}:", "    onvif:", f"      address: {json.dumps(address.netloc + path)}"]
        if username:
            lines.append(f"      username: {json.dumps(username)}")
        lines += [f"      profile: {json.dumps(profile)}", f"    password_file: {name}   # the password, in a file"]
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def table(reports: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for report in reports:
        offset = report["clock_offset_s"]
        out.append(f"{report['xaddrs'][0]}")
        out.append(
            f"  {report['manufacturer'] or '?'} {report['model'] or '?'}  firmware {report['firmware'] or '?'}"
            f"  serial {report['serial'] or '?'}  ptz {'yes' if report['ptz'] else 'no'}"
            f"  clock {'?' if offset is None else f'{offset:+.1f} s'}"
        )
        for profile in report["profiles"]:
            size = f"{profile['width']}x{profile['height']}" if profile["width"] else "?"
            fps = f"{profile['fps']:g} fps" if profile["fps"] else "? fps"
            gop = f"gop {profile['gop']}" if profile["gop"] else "gop ?"
            out.append(
                f"  {profile['token']:<16} {profile['name']:<16} {profile['codec'] or '?':<6} {size:<10} "
                f"{fps:<8} {gop:<8} {profile['stream_uri'] or profile.get('error', '?')}"
            )
        if report["snapshot_uri"]:
            out.append(f"  snapshot: {report['snapshot_uri']}")
        if report["error"]:
            out.append(f"  error: {report['error']}")
    return "\n".join(out) + "\n"


async def _reports(args: argparse.Namespace, username: str | None, password: str | None) -> list[dict[str, Any]]:
    targets = args.probe or []
    direct = [device_url(text) for text in targets if "://" in text]  # a device URL: asked without a probe
    probes = [text for text in targets if "://" not in text]
    reports: list[dict[str, Any]] = []
    if probes or args.interface or not direct:
        reports += await discover(args.timeout, args.interface, probes, username, password)
    timeout_s = max(args.timeout, 3.0)
    reports += await asyncio.gather(*(describe(url, username, password, timeout_s) for url in direct))
    return reports


def run(args: argparse.Namespace) -> int:
    username = os.environ.get(USER_ENV) or None
    password = os.environ.get(PASSWORD_ENV)
    started = time.monotonic()
    try:
        reports = asyncio.run(_reports(args, username, password))
    except OSError as exc:  # an --interface address this host does not have, a --probe name that does not resolve
        print(f"discover: {exc.strerror or exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        print(f"no ONVIF device answered within {args.timeout:g} s", file=sys.stderr)
        return 1
    print(table(reports), end="")
    print(f"\n{len(reports)} device(s) in {elapsed:.1f} s\n")
    print(yaml_fragment(reports, username), end="")
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("must be between 0.1 and 60 seconds")
    return value


def add_parser(commands: Any) -> None:
    """The ``discover`` subcommand (edgeagent/cli.py)."""
    parser = commands.add_parser("discover", help="find ONVIF cameras (WS-Discovery) and print what they offer")
    parser.add_argument(
        "--timeout", type=_seconds, default=3.0, help="seconds to wait for answers (default: %(default)s)"
    )
    parser.add_argument(
        "--interface", metavar="ADDRESS", help="multicast the probe out of the interface with this address"
    )
    parser.add_argument(
        "--probe",
        action="append",
        metavar="HOST[:PORT]",
        help="send the probe to this address only (repeatable; no multicast unless --interface);"
        " an http:// device URL is asked directly",
    )
    parser.add_argument("--json", action="store_true", help="a JSON array, one object per device")
    parser.set_defaults(handler=run)
