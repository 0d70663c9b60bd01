"""The HTTP app's guards in process: a slow body is cut off, a guesser gets 429 on a closed connection
while the right token passes, and /healthz says degraded when the agent cannot accept."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import SecretStr

from edgeagent.publish import http
from edgeagent.publish.auth_guard import AuthGuard

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, AuthGuard, list[bool]]]:
    ready = [True]
    auth = AuthGuard(SecretStr(TOKEN))
    app = http.make_app({}, SecretStr(TOKEN), lambda: {"cameras": []}, lambda: b"", lambda: ready[0], auth=auth)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site.port, auth, ready
    await runner.cleanup()


async def _exchange(port: int, data: bytes, then: bytes = b"", pause_s: float = 0.0) -> tuple[bytes, float]:
    """The whole answer (the connection closes after it) and how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(data)
    if then:
        await asyncio.sleep(pause_s)
        writer.write(then)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer, time.monotonic() - started


async def _status_line(port: int, data: bytes) -> tuple[bytes, float]:
    """The answer's status line and how long it took (aiohttp may linger on a connection with an unread body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(data)
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return line, time.monotonic() - started


async def test_a_body_that_does_not_arrive_in_time_is_cut_off(server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, _, _ = server
    monkeypatch.setattr(http, "BODY_TIMEOUT_S", 0.3)
    head = (
        f"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Length: 10\r\n\r\n"
    )
    line, took = await _status_line(port, head.encode() + b"12345")  # five of the ten bytes, then silence
    assert line.startswith(b"HTTP/1.1 408") and 0.25 < took < 2
    answer, _ = await _exchange(port, head.encode() + b"12345", b"67890", pause_s=0.05)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"1234567890")


async def test_a_guesser_gets_429_on_a_closed_connection_and_the_right_token_passes(server) -> None:
    port, auth, _ = server
    request = "GET /cameras HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n"
    for i in range(5):
        answer, _ = await _exchange(port, request.format(f"guess-{i}").encode())
        assert answer.startswith(b"HTTP/1.1 401")
    answer, took = await _exchange(port, request.format("guess-6").encode())
    assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: " in answer and took >= 0.9
    assert b"Connection: close" in answer
    answer, took = await _exchange(port, request.format(TOKEN).encode())
    assert answer.startswith(b"HTTP/1.1 200") and took < 0.5
    assert auth.failures_total == 6 and auth.throttled_total == 1


async def test_healthz_says_degraded_when_the_agent_is_not_ready(server) -> None:
    port, _, ready = server
    ready[0] = False
    answer, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"degraded\n")
