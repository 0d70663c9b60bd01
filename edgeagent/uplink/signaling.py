"""The one interface the uplink publisher drives a media server through.

A signaling client publishes one camera: ``publish(offer)`` returns the server's answer, ``keepalive()``
proves the server still holds the publication (``SignalingLost`` when it does not: a restarted server,
an expired session), ``lost`` is set when the server lets it go on its own, and ``unpublish()`` ends it.
Each client serves one publication; a new attempt makes a new client.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class SignalingError(Exception):
    """The media server refused or did not answer; the message is one line, without secrets."""


class SignalingLost(SignalingError):
    """The media server no longer knows the publication: publish again."""


class Signaling(Protocol):
    lost: asyncio.Event

    async def publish(self, offer_sdp: str) -> str: ...

    async def keepalive(self) -> None: ...

    async def unpublish(self) -> None: ...
