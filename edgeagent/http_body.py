"""Reading an HTTP body (a request to the agent, or a reply to it) with a bound on its size."""

from __future__ import annotations

import aiohttp


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or at most ``limit + 1`` bytes of it (the caller refuses those): ``read(n)`` alone
    returns whatever has arrived, which may be part of the body."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await stream.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)
