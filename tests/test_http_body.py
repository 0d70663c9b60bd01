"""read_bounded: a body that arrives in pieces is read whole, and one over the bound is cut at bound + 1."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp


def stream_of(*pieces: bytes) -> aiohttp.StreamReader:
    stream = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for piece in pieces:
        stream.feed_data(piece)
    return stream


async def test_a_body_fed_in_pieces_is_read_whole() -> None:
    from edgeagent.http_body import read_bounded

    stream = stream_of(b"v=0\r\n")
    loop = asyncio.get_running_loop()
    loop.call_soon(stream.feed_data, b"o=- 1 1 IN IP4 127.0.0.1\r\n")
    loop.call_soon(stream.feed_eof)
    assert await read_bounded(stream, 1000) == b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"


async def test_a_body_over_the_bound_is_cut_at_one_byte_past_it() -> None:
    from edgeagent.http_body import read_bounded

    stream = stream_of(b"a" * 600, b"b" * 600)
    stream.feed_eof()
    body = await read_bounded(stream, 1000)
    assert len(body) == 1001 and body.startswith(b"a" * 600)
