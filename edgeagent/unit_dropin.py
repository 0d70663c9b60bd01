"""A systemd drop-in that lets the agent reach only the addresses its configuration names.

The unit denies every IP address but localhost (``IPAddressDeny=any``); this writes the
``IPAddressAllow=`` lines for the cameras, the broker, the ICE (STUN/TURN) servers and the operators'
networks given on the command line (HTTP clients and the browsers WebRTC media goes to). Host names are
resolved now, so the drop-in must be written again when an address changes; with a name among them the
resolvers of /etc/resolv.conf are allowed too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from edgeagent.config import Config

DEFAULT_PATH = Path("/etc/systemd/system/edgeagent.service.d/ip-allow.conf")
Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def _ice_host(url: str) -> str | None:
    # stun:host[:port], turn:host[:port]?transport=udp, turns:[v6]:port
    rest = url.split(":", 1)[1] if ":" in url else ""
    rest = rest.split("?", 1)[0]
    if rest.startswith("["):
        return rest[1 : rest.find("]")] or None
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest or None


def _nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def allowed(config: Config, clients: Iterable[str], resolver: Resolver = resolve) -> list[tuple[str, str]]:
    """``(prefix, why)`` for each address the agent may talk to, in the order the configuration names them."""
    wanted: list[tuple[str, str]] = []
    for name, camera in config.cameras.items():
        host = urlsplit(camera.url).hostname
        if host:
            wanted.append((host, f"camera {name}"))
        onvif = urlsplit(camera.onvif.device_url).hostname if camera.onvif is not None else None
        if onvif and onvif != host:  # its stream URI comes from there (and must stay on this host)
            wanted.append((onvif, f"camera {name} (ONVIF)"))
    if config.mqtt is not None:
        wanted.extend((host, "MQTT broker") for host, _ in config.mqtt.brokers)
    for server in config.webrtc.ice_servers:
        for url in server.urls:
            host = _ice_host(url)
            if host:
                wanted.append((host, f"ICE server {url}"))
    result: list[tuple[str, str]] = []
    named = False
    for host, why in wanted:
        if _is_address(host):
            result.append((host, why))
        else:
            named = True
            result.extend((address, f"{why} ({host})") for address in resolver(host))
    if named:
        result.extend((address, "DNS resolver") for address in _nameservers())
    for network in clients:
        result.append((str(ipaddress.ip_network(network, strict=False)), "operators (HTTP, live view)"))
    unique: dict[str, str] = {}
    for prefix, why in result:
        unique.setdefault(prefix, why)
    return list(unique.items())


def dropin_text(config: Config, clients: Iterable[str], resolver: Resolver = resolve) -> str:
    clients = list(clients)
    lines = [
        "# Written by `edgeagent systemd-dropin`: the addresses this cabinet's configuration names.",
        "# The unit allows localhost only (IPAddressDeny=any); run the command again after a change.",
        "[Service]",
    ]
    if not clients and not ipaddress.ip_address(_loopback_or(config.http.host)).is_loopback:
        lines.append(
            f"# http.listen is {config.http.listen}: no operator network was given (--clients CIDR), so no"
            " client beyond localhost can reach it"
        )
    for prefix, why in allowed(config, clients, resolver):
        lines.append(f"# {why}")
        lines.append(f"IPAddressAllow={prefix}")
    return "\n".join(lines) + "\n"


def _loopback_or(host: str) -> str:
    if host in ("localhost", ""):
        return "127.0.0.1"
    return host if _is_address(host) else "0.0.0.0"


def write(path: Path, text: str) -> None:
    """Written beside and renamed into place, 0644 like the unit itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(partial, path)
