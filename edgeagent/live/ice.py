"""ICE: which servers are contacted (only configured ones) and which local addresses are offered.

aiortc adds a public STUN server when it is given no list at all, so the agent always passes one, empty
unless the operator configured servers. aioice offers every non-loopback address of the box and has no
per-connection option for it; the addresses configured in ``webrtc.host_addresses`` replace its
discovery (a cabinet can pin the interface of its mobile router, and tests can offer 127.0.0.1).

aioice looks its module function ``get_host_addresses`` up on every gathering, so that function is
replaced once by one that asks a context variable: only gatherings started inside
``offered_host_addresses(...)`` (and the tasks they spawn, which inherit the context) see the pinned list;
every other aiortc user in the process keeps aioice's own discovery. tests/test_patched_dependencies.py
fails when aioice changes what this relies on.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
from collections.abc import Callable, Iterator, Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from edgeagent.config import WebRtcSection, read_secret

log = logging.getLogger(__name__)

_discover_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
_offered: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "edgeagent_offered_host_addresses", default=None
)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    pinned = _offered.get()
    if pinned is None:
        return _discover_host_addresses(use_ipv4, use_ipv6)
    return [
        address
        for address in pinned
        if (use_ipv4 and ipaddress.ip_address(address).version == 4)
        or (use_ipv6 and ipaddress.ip_address(address).version == 6)
    ]


@contextlib.contextmanager
def offered_host_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """Gather exactly ``addresses`` as host candidates within this block; an empty list: aioice's discovery.

    Wrap the ``setLocalDescription`` of a peer connection (that is where aiortc gathers).
    """
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError for a typo
    if aioice.ice.get_host_addresses is not _host_addresses:
        aioice.ice.get_host_addresses = _host_addresses  # type: ignore[assignment]
    token = _offered.set(tuple(addresses) or None)
    try:
        yield
    finally:
        _offered.reset(token)


def offers_loopback(webrtc: WebRtcSection) -> bool:
    """Whether the agent offers a loopback host address, so that a peer's loopback candidates make sense."""
    return any(ipaddress.ip_address(address).is_loopback for address in webrtc.host_addresses)


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
