"""The one interface the uplink publisher drives a media server through.

A signaling client publishes one camera: ``publish(offer)`` returns the server's answer, ``keepalive()``
proves the server still holds the publication (``SignalingLost`` when it does not: a restarted server,
an expired session), ``lost`` is set when the server lets it go on its own, and ``unpublish()`` ends it.
Each client serves one publication; a new attempt makes a new client.

Every error carries a ``reason`` from ``REASONS``, the few words an operator (and a Prometheus label) can
tell a cause by; the message says the rest.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# Why an uplink that should publish does not: the media server cannot be reached or does not answer,
# refuses (a wrong secret, an HTTP error, a Janus error), let the publication go (restarted, session
# expired, the peer connection failed), the media never connected (ICE, DTLS), or the agent failed.
REASONS = ("unreachable", "refused", "lost", "not_connected", "error")


class SignalingError(Exception):
    """The media server refused; the message is one line, without secrets."""

    reason = "refused"


class SignalingLost(SignalingError):
    """The media server no longer knows the publication: publish again."""

    reason = "lost"


class SignalingUnreachable(SignalingLost):
    """The media server cannot be reached, or did not answer within the request's time."""

    reason = "unreachable"


class Signaling(Protocol):
    lost: asyncio.Event

    async def publish(self, offer_sdp: str) -> str: ...

    async def keepalive(self) -> None: ...

    async def unpublish(self) -> None: ...
