"""aiohttp's error logging, behind the filter: a bad request is one short line without its bytes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from edgeagent.publish import http_log_filter
from edgeagent.publish.ratelimit import LogThrottle

SECRET = "tok-3f9a8b7c6d5e4f3a2b1c"


async def _boom(request: web.Request) -> web.Response:
    raise KeyError(request.headers.get("Authorization", ""))  # a bug that would quote input


@pytest.fixture
async def port() -> AsyncIterator[int]:
    http_log_filter.install().throttle = LogThrottle()  # each case starts with a quiet log
    app = web.Application()
    app.router.add_get("/boom", _boom)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site.port
    await runner.cleanup()


async def _send(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00" + SECRET.encode() + b"\r\n\r\n",
        b"G" * 30000 + b" / HTTP/1.1\r\nHost: x\r\nX-Secret: " + SECRET.encode() + b"\r\n\r\n",
        b"GET /" + SECRET.encode() * 1000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + SECRET.encode() + b"\r\n\r\n",
    ],
    ids=["nul-in-header", "30k-method", "long-path", "handler-bug"],
)
async def test_a_bad_request_is_logged_in_one_short_line_without_its_bytes(
    port: int, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        answer = await _send(port, raw)
    assert answer.split(b" ")[1] in (b"400", b"414", b"431", b"500")
    text = "\n".join(caplog.text.splitlines())
    assert SECRET not in text and SECRET[:8] not in text
    assert all(len(line) < 300 for line in text.splitlines())
    assert "http: bad request from 127.0.0.1" in text


def test_a_flood_of_bad_requests_gives_a_line_a_minute_per_address(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("aiohttp.server")
    http_log_filter.install().throttle = LogThrottle()
    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        for _ in range(1000):
            log.error("Error handling request from %s", "198.51.100.7")
    assert len([r for r in caplog.records if "198.51.100.7" in r.getMessage()]) == 1
