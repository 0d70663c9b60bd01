"""WS-Discovery probe over plain asyncio UDP: multicast on one interface, or unicast to given addresses.

Replies are parsed leniently (devices answer without ``ProbeMatches``, with odd prefixes, or broken XML)
and de-duplicated by endpoint address. The probe goes only where it is told: multicast with TTL 1 out of
the interface whose address is given (``IP_MULTICAST_IF``; without one, the system's default), and
unicast to each address in ``targets``.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field

from edgeagent.onvif import soap

MULTICAST = ("239.255.255.250", 3702)
MAX_DEVICES = 1000
MAX_DATAGRAM = 65536


@dataclass(slots=True)
class Discovered:
    endpoint: str
    address: str  # the sender's IP
    xaddrs: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)


def probe_message(message_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"'
        ' xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
        ' xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"'
        ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        f"<e:Header><w:MessageID>{message_id}</w:MessageID>"
        '<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>'
        '<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>'
        "</e:Header><e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>"
    ).encode()


def parse_reply(data: bytes, sender: str) -> Discovered | None:
    """A device from a ProbeMatch (or Hello) however it is wrapped; None for anything else (our own probe)."""
    root = soap.parse_lenient(data)
    if root is None:
        return None
    actions = soap.texts_of(root, "Action")
    if any(action.endswith("/Probe") for action in actions) or next(soap.find_all(root, "Probe"), None) is not None:
        return None
    xaddrs = [word for text in soap.texts_of(root, "XAddrs") for word in text.split()]
    xaddrs = [x for x in xaddrs if x.startswith(("http://", "https://"))]
    if not xaddrs:
        return None
    reference = soap.find(root, "EndpointReference", "Address")
    endpoint = (reference.text or "").strip() if reference is not None else ""
    # The address the reply came from first: a device also lists addresses this host cannot reach.
    xaddrs.sort(key=lambda x: f"//{sender}:" not in x and f"//{sender}/" not in x)
    return Discovered(
        endpoint=endpoint or xaddrs[0],
        address=sender,
        xaddrs=list(dict.fromkeys(xaddrs)),
        scopes=[word for text in soap.texts_of(root, "Scopes") for word in text.split()],
        types=[word for text in soap.texts_of(root, "Types") for word in text.split()],
    )


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.found: dict[str, Discovered] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(self.found) >= MAX_DEVICES or len(data) > MAX_DATAGRAM:
            return
        device = parse_reply(data, str(addr[0]))
        if device is None:
            return
        known = self.found.get(device.endpoint)
        if known is None:
            self.found[device.endpoint] = device
        else:
            known.xaddrs = list(dict.fromkeys(known.xaddrs + device.xaddrs))

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP "port unreachable" from a unicast target: that address has no device


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return text.strip("[]"), MULTICAST[1]
    return host.strip("[]"), int(port)


async def probe(
    timeout_s: float = 3.0, interface: str | None = None, targets: list[str] | None = None, multicast: bool = True
) -> list[Discovered]:
    """Devices that answered within ``timeout_s``, in the order they answered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        sock.bind((interface or "0.0.0.0", 0))
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    except BaseException:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(_Collector, sock=sock)
    try:
        message = probe_message(f"urn:uuid:{uuid.uuid4()}")
        destinations = []
        for text in targets or []:
            host, port = _target(text)
            infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            destinations.append((str(infos[0][4][0]), port))
        if multicast:
            destinations.append(MULTICAST)
        for _ in range(2):  # UDP: the probe is sent twice, as WS-Discovery suggests
            for host, port in destinations:
                transport.sendto(message, (host, port))
            await asyncio.sleep(min(0.1, timeout_s / 4))
        await asyncio.sleep(max(0.0, timeout_s - min(0.2, timeout_s / 2)))
    finally:
        transport.close()
    return list(collector.found.values())
