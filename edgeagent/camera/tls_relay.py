"""The agent's own TLS for rtsps:// cameras: FFmpeg talks plain RTSP to a one-shot relay on loopback.

libavformat's RTSP client opens TLS with no options (no CA file, no verification), so a certificate check
made on a separate connection proves nothing about FFmpeg's: a man in the middle could relay the check to
the real camera and intercept FFmpeg alone. So FFmpeg never opens TLS. For each session the relay

1. opens the TLS connection to the camera and verifies it (tls_check.py: CA file and host name, or a
   pinned fingerprint); a failure raises ``CertificateRefused`` before FFmpeg starts, so the device at the
   camera's address receives no byte of RTSP, let alone credentials;
2. listens on 127.0.0.1:<ephemeral> for exactly one client: a connection that does not come from this
   process (its socket is not among our file descriptors) is refused, and the listener closes as soon as
   FFmpeg's connection is taken;
3. copies bytes both ways, without looking at them: large reads, writes bounded by flow control (a side
   whose peer's write buffer is above HIGH_WATER_BYTES stops being read), the session closed when either
   side closes or the camera is silent for ``idle_s``.

With RTSP interleaved over this one connection (rtsps:// cameras must use transport tcp, config.py), the
media goes through the verified TLS session too; Basic auth is then as safe as Digest. FFmpeg's request
URIs name 127.0.0.1:<port>, not the camera's host: cameras route by path (Digest hashes the URI as sent,
so it still matches).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from edgeagent.camera import tls_check
from edgeagent.camera.reachability import rtsp_address
from edgeagent.config import CameraSection
from edgeagent.urls import redact_url

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
HIGH_WATER_BYTES = 512 * 1024  # about a second of a 4 Mbit/s stream waiting for the slower side
LOW_WATER_BYTES = 128 * 1024
EARLY_BYTES_MAX = 65536  # what the camera may send before FFmpeg connected (it should send nothing)


def _proc_address(address: tuple[str, int]) -> str:
    """An IPv4 address as /proc/net/tcp prints it (the address as a native-order integer, the port)."""
    ip, port = address[0], address[1]
    return f"{int.from_bytes(socket.inet_aton(ip), sys.byteorder):08X}:{port:04X}"


def connected_from_this_process(local: tuple[str, int], peer: tuple[str, int]) -> bool:
    """Whether the client end of the loopback connection ``peer`` -> ``local`` is a socket of ours.

    TCP has no peer credentials (SO_PEERCRED is for Unix sockets), so: find the client socket's inode in
    /proc/self/net/tcp and look for it among our descriptors. Reads /proc: call it off the event loop.
    """
    wanted = (_proc_address(peer), _proc_address(local))
    inode = None
    with open("/proc/self/net/tcp", encoding="ascii") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 9 and (fields[1], fields[2]) == wanted:
                inode = fields[9]
                break
    if inode is None or inode == "0":
        return False
    target = f"socket:[{inode}]"
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            if fd.readlink().name == target:
                return True
    return False


class _Side(asyncio.Protocol):
    """One end of the relay; what it receives goes to ``peer`` as it came."""

    def __init__(self, relay: TlsRelay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early = bytearray()  # received before the peer was there
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(HIGH_WATER_BYTES, LOW_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
            return
        self.early += data
        if len(self.early) > EARLY_BYTES_MAX:
            self.relay.close("the camera sent too much before it was asked")

    # The transport calls these about its own write buffer: stop reading the side that fills it.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def eof_received(self) -> bool:
        self.relay.close("closed by the other end")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close(f"connection lost ({exc})" if exc else "closed")


class _Listener(asyncio.Protocol):
    """A connection to the relay's port: it becomes FFmpeg's side once it is known to be ours."""

    def __init__(self, relay: TlsRelay) -> None:
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        if self.relay.claimed or self.relay.closed:
            transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self.relay.vet(transport, self))
        self.relay.tasks.add(task)
        task.add_done_callback(self.relay.tasks.discard)

    def data_received(self, data: bytes) -> None:  # only before vet() decided; reading is paused
        pass


class TlsRelay:
    """One session's relay; made by ``open``, ended by ``close`` (idempotent). Event-loop only."""

    def __init__(self, section: CameraSection, idle_s: float) -> None:
        self.section = section
        self.idle_s = idle_s
        self.camera = _Side(self)
        self.local = _Side(self)
        self.camera.peer, self.local.peer = self.local, self.camera
        self.port = 0
        self.claimed = False
        self.closed = False
        self.why_closed: str | None = None
        self.refused = 0  # connections to the port that were not FFmpeg's
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._seen = -1

    async def _start(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        host, port = rtsp_address(self.section.url)
        context = tls_check.context(self.section)
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: self.camera, host, port, ssl=context, server_hostname=host,
                    ssl_handshake_timeout=timeout_s,
                ),
                timeout_s,
            )
        except ssl.SSLError as exc:
            raise tls_check.refusal(exc, self.section) from None
        ssl_object = transport.get_extra_info("ssl_object")
        try:
            tls_check.check_pin(self.section, ssl_object.getpeercert(binary_form=True) if ssl_object else None)
        except tls_check.CertificateRefused:
            transport.abort()
            raise
        self._server = await loop.create_server(lambda: _Listener(self), LOOPBACK, 0, backlog=4)
        self.port = self._server.sockets[0].getsockname()[1]
        # Unclaimed in time: FFmpeg gave up (or never came); nothing may stay open.
        self._timer = loop.call_later(timeout_s, self._check_idle)

    async def vet(self, transport: asyncio.Transport, listener: _Listener) -> None:
        local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        ours = bool(peer) and peer[0] == LOOPBACK
        try:
            ours = ours and await asyncio.to_thread(connected_from_this_process, local, peer)
        except OSError:
            ours = False  # no /proc: nothing can show the client is FFmpeg
        if self.closed:
            transport.abort()
            return
        if not ours or self.claimed:
            self.refused += 1
            if self.refused == 1:  # once per session: a stranger cannot flood the log
                log.warning("tls relay for %s: refused a local connection that is not the agent's own",
                            redact_url(self.section.url))
            transport.abort()
            return
        self.claimed = True
        if self._server is not None:
            self._server.close()  # no second client, ever
        transport.set_protocol(self.local)
        self.local.connection_made(transport)
        if self.camera.early:
            transport.write(bytes(self.camera.early))
            self.camera.early.clear()
        transport.resume_reading()

    def _check_idle(self) -> None:
        """Every ``idle_s``: close an unclaimed relay, or one whose camera sent nothing since the last look."""
        if self.closed:
            return
        if not self.claimed:
            self.close("the agent's RTSP client did not connect in time")
            return
        if self.camera.received == self._seen:
            self.close(f"the camera sent nothing for {self.idle_s:.0f} s")
            return
        self._seen = self.camera.received
        self._timer = asyncio.get_running_loop().call_later(self.idle_s, self._check_idle)

    def close(self, why: str = "closed by the agent") -> None:
        if self.closed:
            return
        self.closed = True
        self.why_closed = why
        log.debug("tls relay for %s: %s", redact_url(self.section.url), why)
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        for side in (self.local, self.camera):
            if side.transport is not None:
                side.transport.close()  # what is buffered still goes out, then the connection ends

    def local_url(self, url: str) -> str:
        """``url`` (with its user and password, if any) pointed at the relay, in plain rtsp://."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(scheme="rtsp", netloc=f"{netloc}{LOOPBACK}:{self.port}"))


async def open_relay(section: CameraSection, timeout_s: float, idle_s: float) -> TlsRelay:
    """A relay whose camera connection is up and verified; ``CertificateRefused`` if it is not the camera,
    ``OSError`` (or ``TimeoutError``) if the camera is away."""
    relay = TlsRelay(section, idle_s)
    try:
        await relay._start(timeout_s)
    except BaseException:
        relay.close("failed to open")
        raise
    return relay


@contextlib.contextmanager
def relayed_url(section: CameraSection, url: str, loop: asyncio.AbstractEventLoop | None) -> Iterator[str]:
    """From an ingest thread: the URL FFmpeg opens. rtsps://: the verified relay's, for the ``with``
    block's lifetime (the relay runs on ``loop``); rtsp://: ``url`` unchanged."""
    if urlsplit(section.url).scheme != "rtsps":
        yield url
        return
    assert loop is not None, "the source was started on an event loop"
    timeout_s = section.open_timeout_s
    idle_s = 2 * section.stall_timeout_s + 1  # FFmpeg's own read timeout is stall_timeout_s: it goes first
    future = asyncio.run_coroutine_threadsafe(open_relay(section, timeout_s, idle_s), loop)
    try:
        relay = future.result(timeout_s + 2)
    except concurrent.futures.TimeoutError:
        future.cancel()  # a relay that opens after all closes itself: nobody claims it in time
        raise TimeoutError("TLS connection to the camera timed out") from None
    try:
        yield relay.local_url(url)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the agent is shutting down
            loop.call_soon_threadsafe(relay.close, "the session ended")
