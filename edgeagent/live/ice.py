"""ICE: which servers are contacted (only configured ones) and which local addresses are offered.

aiortc adds a public STUN server when it is given no list at all, so the agent always passes one, empty
unless the operator configured servers. aioice offers every non-loopback address of the box and has no
per-connection option for it; the addresses configured in ``webrtc.host_addresses`` replace its
discovery (a cabinet can pin the interface of its mobile router, and tests can offer 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from edgeagent.config import WebRtcSection, read_secret

log = logging.getLogger(__name__)

_discover_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
_pinned: list[str] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _pinned is None:
        return _discover_host_addresses(use_ipv4, use_ipv6)
    return [
        address
        for address in _pinned
        if (use_ipv4 and ipaddress.ip_address(address).version == 4)
        or (use_ipv6 and ipaddress.ip_address(address).version == 6)
    ]


def pin_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly ``addresses`` as host candidates from now on; an empty list restores discovery.

    The setting is process-wide, as aioice's discovery is: the agent has one live service.
    """
    global _pinned
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError for a typo, before any viewer connects
    _pinned = list(addresses) or None
    aioice.ice.get_host_addresses = _host_addresses  # type: ignore[assignment]


def unpin_host_addresses() -> None:
    global _pinned
    _pinned = None
    aioice.ice.get_host_addresses = _discover_host_addresses  # type: ignore[assignment]


def rtc_configuration(webrtc: WebRtcSection) -> RTCConfiguration:
    """The peer-connection configuration: the configured STUN/TURN servers and nothing else.

    TURN credentials are read from their files here, once, so a missing file fails at start.
    """
    servers = []
    for index, server in enumerate(webrtc.ice_servers):
        credential = read_secret(server.credential_file, None, f"webrtc.ice_servers.{index}.credential_file")
        servers.append(
            RTCIceServer(
                urls=list(server.urls),
                username=server.username,
                credential=credential.get_secret_value() if credential else None,
            )
        )
    if len(servers) > 1:
        log.info("aiortc uses the first STUN and the first TURN server of webrtc.ice_servers")
    return RTCConfiguration(iceServers=servers)
