"""Bounds on HTTP connections, so strangers on the cabinet network cannot use up the agent's descriptors.

Cameras, the broker, viewers' sockets and the agent's own files need descriptors whatever HTTP clients
do (``descriptors.py`` keeps a reserve for them), so HTTP gets a share well below the limit: a cap on
connections in total and per client address. A connection over the per-address
cap is closed at once, unread. When the total cap is reached the oldest connection with no request in
progress (an idle or half-sent one) makes room, so an attacker holding idle connections from many
addresses cannot keep a real client out. aiohttp's ``keepalive_timeout`` also runs from the moment a
connection opens, so it bounds the time to a complete request head (and idleness between requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

HEAD_TIMEOUT_S = 10.0  # a connection must deliver a complete request head within this
TLS_HANDSHAKE_TIMEOUT_S = 10.0
EARLY_DATA_BYTES = 64 * 1024
MAX_TOTAL = 256
MAX_PER_ADDRESS = 32
# The kernel's queue of connections not yet accepted is long (net.core.somaxconn caps it; it costs no
# descriptor), so a burst does not drop a real client's SYN (resent only a second later). asyncio accepts
# at most ACCEPT_BATCH of them per turn of the loop, each a descriptor before the guard sees it, so a
# burst stays well inside the HTTP share of the descriptors.
ACCEPT_QUEUE = 4096
ACCEPT_BATCH = 32


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    total: int
    per_address: int

    @classmethod
    def for_descriptors(cls, nofile: int, reserve: int) -> ConnectionLimits:
        """At most half of what the reserve leaves, never more than ``MAX_TOTAL``; at least a few."""
        total = max(8, min(MAX_TOTAL, (nofile - reserve) // 2))
        return cls(total=total, per_address=max(2, min(MAX_PER_ADDRESS, total // 8)))


def address_key(peername: Any) -> str:
    """A client's address for counting: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64)."""
    host = peername[0] if isinstance(peername, tuple) and peername else str(peername)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Connection:
    key: str
    transport: asyncio.Transport
    busy: int = 0
    released: bool = False


class ConnectionGuard:
    """Counts connections per address and in total, admits or closes them, and makes room when full."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._per_key: dict[str, int] = {}
        self._open: OrderedDict[int, _Connection] = OrderedDict()  # oldest first, by id of the transport
        self.refused_total = 0
        self.evicted_total = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, key: str, transport: asyncio.Transport) -> _Connection | None:
        if self._per_key.get(key, 0) >= self.limits.per_address:
            self.refused_total += 1
            return None
        if len(self._open) >= self.limits.total and not self._evict_idle():
            self.refused_total += 1
            return None
        connection = _Connection(key, transport)
        self._open[id(transport)] = connection
        self._per_key[key] = self._per_key.get(key, 0) + 1
        return connection

    def _evict_idle(self) -> bool:
        for connection in self._open.values():
            if connection.busy == 0:
                self.release(connection)
                connection.transport.abort()
                self.evicted_total += 1
                return True
        return False

    def release(self, connection: _Connection) -> None:
        if connection.released:
            return
        connection.released = True
        self._open.pop(id(connection.transport), None)
        left = self._per_key.get(connection.key, 1) - 1
        if left > 0:
            self._per_key[connection.key] = left
        else:
            self._per_key.pop(connection.key, None)

    def rebind(self, connection: _Connection, transport: asyncio.Transport) -> None:
        """Count ``connection`` by ``transport`` from now on (the TLS transport aiohttp's requests carry)."""
        if connection.released:
            return
        self._open.pop(id(connection.transport), None)
        connection.transport = transport
        self._open[id(transport)] = connection

    @contextlib.contextmanager
    def busy(self, transport: asyncio.BaseTransport | None) -> Iterator[None]:
        """Marks a request in progress on ``transport``: its connection is not evicted meanwhile."""
        connection = self._open.get(id(transport)) if transport is not None else None
        if connection is not None:
            connection.busy += 1
        try:
            yield
        finally:
            if connection is not None:
                connection.busy -= 1

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol], tls: ssl.SSLContext | None = None
    ) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, inner, tls)


class _GuardedProtocol(asyncio.Protocol):
    """Admits a connection before aiohttp sees it, then hands every event to aiohttp's handler.

    TLS is done here (``loop.start_tls``) rather than by the server, so connections still in their
    handshake count against the caps too.
    """

    def __init__(
        self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol], tls: ssl.SSLContext | None
    ) -> None:
        self._guard = guard
        self._make_inner = inner
        self._tls = tls
        self._inner: asyncio.Protocol | None = None
        self._connection: _Connection | None = None
        self._handshake_task: asyncio.Task[None] | None = None
        # TLS hands over data as the handshake ends, before start_tls() returns to us: kept until then.
        self._early = bytearray()

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        connection = self._guard.admit(address_key(transport.get_extra_info("peername")), transport)
        if connection is None:
            transport.abort()
            return
        self._connection = connection
        if self._tls is None:
            self._start(transport)
        else:
            self._handshake_task = asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        assert self._tls is not None and self._connection is not None
        loop = asyncio.get_running_loop()
        try:
            tls_transport = await loop.start_tls(
                transport,
                self,
                self._tls,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError, RuntimeError):
            self._guard.release(self._connection)
            transport.abort()
            return
        if tls_transport is None or self._connection.released:
            return
        self._guard.rebind(self._connection, tls_transport)
        self._start(tls_transport)

    def _start(self, transport: asyncio.BaseTransport) -> None:
        self._inner = self._make_inner()
        self._inner.connection_made(transport)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self._inner.data_received(early)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
        elif self._connection is not None and len(self._early) + len(data) <= EARLY_DATA_BYTES:
            self._early += data

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._guard.release(self._connection)
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections pass the guard first (and whose TLS the guard does)."""

    __slots__ = ("_guard",)

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=ACCEPT_BATCH)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server, self._ssl_context), self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        for listening in sockets:  # asyncio listened with ACCEPT_BATCH; the kernel's queue gets longer
            with socket.socket(fileno=os.dup(listening.fileno())) as duplicate:
                duplicate.listen(ACCEPT_QUEUE)
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
