"""The one interface the uplink publisher drives a media server through.

A signaling client publishes one camera: ``publish(offer)`` returns the server's answer, ``keepalive()``
proves the server still holds the publication (``SignalingLost`` when it does not: a restarted server,
an expired session), ``lost`` is set when the server lets it go on its own, and ``unpublish()`` ends it.
Each client serves one publication; a new attempt makes a new client.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp


class SignalingError(Exception):
    """The media server refused or did not answer; the message is one line, without secrets."""


class SignalingLost(SignalingError):
    """The media server no longer knows the publication: publish again."""


class Signaling(Protocol):
    lost: asyncio.Event

    async def publish(self, offer_sdp: str) -> str: ...

    async def keepalive(self) -> None: ...

    async def unpublish(self) -> None: ...


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
