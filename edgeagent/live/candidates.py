"""Which of an offer's ICE candidates the agent sends connectivity checks to.

Every remote candidate becomes STUN checks from the agent, retried for seconds: an offer that listed 800
addresses made the agent probe all 800, which turns anyone who can reach WHEP or the broker into a scanner
of whatever the cabinet can reach. So an offer may list at most ``MAX_CANDIDATE_LINES`` candidates (more is
refused), only plausible ones are kept (a unicast address and a real port; loopback only when the agent
offers loopback itself, as tests do), and at most ``MAX_CHECKED_ADDRESSES`` distinct addresses are kept.
A browser offers a handful per interface, and the same ones again in each bundled section.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field

from edgeagent.live.errors import LiveError

MAX_CANDIDATE_LINES = 64
MAX_CHECKED_ADDRESSES = 16
CANDIDATE_PREFIX = "a=candidate:"
CANDIDATE_TYPES = ("host", "srflx", "relay")  # what aioice accepts from a peer
MDNS_NAME = re.compile(r"^[A-Za-z0-9-]{1,63}\.local$")  # a browser hiding its address (RFC 8828)


@dataclass
class ScreenedOffer:
    sdp: str
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> candidates left out

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.dropped.items()))
        return f"{self.kept} ICE candidates kept, {sum(self.dropped.values())} left out ({reasons})"


def _address_problem(host: str, allow_loopback: bool) -> str | None:
    """Why a candidate's address is not worth a check, or None."""
    if MDNS_NAME.match(host):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "unspecified address"
    if address.is_multicast:
        return "multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:
        return "reserved or broadcast address"  # 240.0.0.0/4, with 255.255.255.255
    if address.is_loopback and not allow_loopback:
        return "loopback address"
    return None


def _problem(value: str, allow_loopback: bool) -> tuple[str | None, str]:
    """(why the candidate is left out or None, its "address port" key)."""
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        return "malformed", ""
    component, transport, priority, host, port, kind = bits[1], bits[2], bits[3], bits[4], bits[5], bits[7]
    if not (component.isdigit() and priority.isdigit() and port.isdigit()):
        return "malformed", ""
    if transport.lower() != "udp":
        return "not UDP", ""  # the agent gathers UDP candidates only: these never pair
    if kind not in CANDIDATE_TYPES:
        return f"of type {kind[:16]}", ""
    if not 0 < int(port) < 65536:
        return "port out of range", ""
    problem = _address_problem(host, allow_loopback)
    return problem, f"{host.lower()} {int(port)}"


def screen_candidates(sdp: str, allow_loopback: bool) -> ScreenedOffer:
    """The offer with only the candidates the agent will check; ``LiveError`` 400 over the hard cap."""
    lines = sdp.splitlines()
    listed = sum(1 for line in lines if line.startswith(CANDIDATE_PREFIX))
    if listed > MAX_CANDIDATE_LINES:
        raise LiveError(400, f"offer lists {listed} ICE candidates; the agent takes at most {MAX_CANDIDATE_LINES}")
    screened = ScreenedOffer(sdp)
    if not listed:
        return screened
    addresses: set[str] = set()
    out = []
    for line in lines:
        if line.startswith(CANDIDATE_PREFIX):
            problem, key = _problem(line[len(CANDIDATE_PREFIX) :], allow_loopback)
            if problem is None and key not in addresses and len(addresses) >= MAX_CHECKED_ADDRESSES:
                problem = f"over {MAX_CHECKED_ADDRESSES} addresses"
            if problem is not None:
                screened.dropped[problem] += 1
                continue
            addresses.add(key)
            screened.kept += 1
        out.append(line)
    screened.sdp = "\r\n".join(out) + "\r\n"
    return screened
