"""Connection caps, the request-head deadline and descriptor health, on a real aiohttp server in process.

Clients connect from other loopback addresses (127.0.0.2, ...) to stand for other hosts: Linux routes
all of 127.0.0.0/8 to ``lo``, and everything still listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from edgeagent.publish.descriptors import (
    ACCEPT_OUT_OF_RESOURCES,
    AcceptHealth,
    descriptor_reserve,
    open_descriptors,
    raise_nofile_limit,
)
from edgeagent.publish.http_limits import ConnectionGuard, ConnectionLimits, GuardedSite, address_key
from tests.support import TlsFiles


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="ok")


SLOW = asyncio.Event()


async def _slow(request: web.Request) -> web.Response:
    await SLOW.wait()
    return web.Response(text="slow")


Server = tuple[ConnectionGuard, int]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., object]]:
    runners: list[web.AppRunner] = []

    async def start(limits: ConnectionLimits, tls: ssl.SSLContext | None = None, head_timeout_s: float = 10.0):
        guard = ConnectionGuard(limits)

        @web.middleware
        async def mark_busy(request: web.Request, handler):  # type: ignore[no-untyped-def]
            with guard.busy(request.transport):
                return await handler(request)

        app = web.Application(middlewares=[mark_busy])
        app.router.add_get("/", _hello)
        app.router.add_get("/slow", _slow)
        SLOW.clear()
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=head_timeout_s)
        await runner.setup()
        runners.append(runner)
        site = GuardedSite(runner, guard, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        return guard, site.port

    yield start
    for runner in runners:
        await runner.cleanup()


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _get(port: int, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0), ssl=tls, server_hostname="127.0.0.1" if tls else None
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    return data


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), within_s) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_connections_over_the_per_address_cap_are_closed_unread(serve) -> None:
    guard, port = await serve(ConnectionLimits(total=64, per_address=4))
    held = [await _connect(port, "127.0.0.2") for _ in range(4)]
    extra = [await _connect(port, "127.0.0.2") for _ in range(3)]
    for reader, _ in extra:
        assert await _closed_by_server(reader, 1.0)
    for reader, _ in held:
        assert not await _closed_by_server(reader, 0.05)
    assert guard.refused_total == 3
    assert (await _get(port, "127.0.0.1")).startswith(b"HTTP/1.1 200")
    for _, writer in held + extra:
        writer.close()


async def test_a_full_server_makes_room_by_closing_the_oldest_idle_connection(serve) -> None:
    guard, port = await serve(ConnectionLimits(total=8, per_address=4))
    idle = [await _connect(port, f"127.0.0.{2 + i // 4}") for i in range(8)]
    await asyncio.sleep(0.05)
    assert guard.open == 8
    started = time.monotonic()
    assert (await _get(port, "127.0.0.1")).startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 1.0
    assert guard.evicted_total == 1
    assert await _closed_by_server(idle[0][0], 1.0)  # the oldest
    for _, writer in idle:
        writer.close()


async def test_a_connection_with_a_request_in_progress_is_never_evicted(serve) -> None:
    guard, port = await serve(ConnectionLimits(total=2, per_address=2))
    busy = [await _connect(port, "127.0.0.2") for _ in range(2)]
    for _, writer in busy:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    reader, writer = await _connect(port, "127.0.0.3")
    assert await _closed_by_server(reader, 1.0)  # nothing idle to make room with
    assert guard.evicted_total == 0 and guard.refused_total == 1
    SLOW.set()
    for busy_reader, _ in busy:
        assert (await asyncio.wait_for(busy_reader.readuntil(b"slow"), 2)).startswith(b"HTTP/1.1 200")
    # Answered, the two keep-alive connections are idle: a newcomer gets in.
    assert (await _get(port, "127.0.0.3")).startswith(b"HTTP/1.1 200")
    assert guard.evicted_total == 1
    for _, busy_writer in busy:
        busy_writer.close()
    writer.close()


async def test_busy_marks_keep_a_connection_from_eviction() -> None:
    guard = ConnectionGuard(ConnectionLimits(total=1, per_address=1))

    class FakeTransport:
        aborted = False

        def abort(self) -> None:
            self.aborted = True

    first = FakeTransport()
    assert guard.admit("10.0.0.1", first) is not None  # type: ignore[arg-type]
    with guard.busy(first):  # type: ignore[arg-type]
        assert guard.admit("10.0.0.2", FakeTransport()) is None  # type: ignore[arg-type]
        assert not first.aborted
    assert guard.admit("10.0.0.2", FakeTransport()) is not None  # type: ignore[arg-type]
    assert first.aborted and guard.evicted_total == 1 and guard.refused_total == 1


async def test_an_incomplete_request_head_is_cut_off_at_the_deadline(serve) -> None:
    guard, port = await serve(ConnectionLimits(total=64, per_address=8), head_timeout_s=0.5)
    silent = await _connect(port, "127.0.0.2")
    trickle = await _connect(port, "127.0.0.2")
    started = time.monotonic()
    trickle[1].write(b"GET / HTTP/1.1\r\n")
    for _ in range(3):  # a byte now and then does not extend the deadline
        await asyncio.sleep(0.2)
        trickle[1].write(b"X")
    assert await _closed_by_server(silent[0], 2.0)
    assert await _closed_by_server(trickle[0], 2.0)
    assert time.monotonic() - started < 2.0
    await asyncio.sleep(0.05)
    assert guard.open == 0


async def test_tls_connections_count_from_before_their_handshake(serve, tls_files: TlsFiles) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    client_tls = ssl.create_default_context(cafile=str(tls_files.ca_file))
    guard, port = await serve(ConnectionLimits(total=64, per_address=2), tls=server_tls)
    assert (await _get(port, "127.0.0.1", client_tls)).startswith(b"HTTP/1.1 200")
    no_handshake = [await _connect(port, "127.0.0.2") for _ in range(3)]
    assert await _closed_by_server(no_handshake[2][0], 1.0)
    assert guard.open == 2
    assert (await _get(port, "127.0.0.1", client_tls)).startswith(b"HTTP/1.1 200")
    for _, writer in no_handshake:
        writer.close()


def test_caps_come_from_the_descriptor_limit_and_the_reserve() -> None:
    reserve = descriptor_reserve(cameras=8, max_viewers=16)
    assert reserve == 128 + 64 + 128
    assert ConnectionLimits.for_descriptors(4096, reserve) == ConnectionLimits(256, 32)
    small = ConnectionLimits.for_descriptors(1024, reserve)
    assert small.total + reserve <= 1024 - small.total  # HTTP can never reach into the reserve
    assert ConnectionLimits.for_descriptors(200, reserve).total == 8  # a floor, however small


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert address_key(("2001:db8::1", 5, 0, 0)) == address_key(("2001:db8::ffff:1", 6, 0, 0)) == "2001:db8::/64"
    assert address_key(("::ffff:10.0.0.7", 1, 0, 0)) == "10.0.0.7"
    assert address_key(("10.0.0.7", 1)) == "10.0.0.7"


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = raise_nofile_limit(ceiling=4096)
        assert raised == min(hard, 4096) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_health_is_degraded_when_free_descriptors_fall_under_the_reserve() -> None:
    used = open_descriptors()
    assert used is not None
    health = AcceptHealth(nofile=1 << 20, reserve=50, limit=lambda: used + 100)
    assert health.problem() is None
    holding = [socket.socket() for _ in range(60)]
    try:
        problem = health.problem()
        assert problem is not None and "fewer than the 50 kept in reserve" in problem
    finally:
        for sock in holding:
            sock.close()


async def test_accept_errors_make_health_degraded_for_a_while_and_are_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    health = AcceptHealth(nofile=1 << 20, reserve=10, clock=lambda: now[0])
    loop = asyncio.get_running_loop()
    old = loop.get_exception_handler()
    health.install(loop)
    try:
        for _ in range(500):
            loop.call_exception_handler({"message": ACCEPT_OUT_OF_RESOURCES, "exception": OSError(24, "EMFILE")})
        assert health.accept_errors_total == 500
        assert health.problem() == "accept() failed for lack of descriptors"
        lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
        assert len(lines) == 1
        now[0] += 31
        assert health.problem() is None
    finally:
        loop.set_exception_handler(old)
