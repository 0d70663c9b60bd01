"""WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725): the offer is POSTed, the answer comes back at once.

``POST <endpoint>`` with ``Content-Type: application/sdp`` (and ``Authorization: Bearer`` when a token is
configured) answers ``201 Created``, the SDP answer and ``Location`` (the publication's resource, maybe
relative); ``DELETE`` on it ends the publication. WHIP has no keepalive: the publication lives as long
as its media flows, and a restarted server shows as a failed peer connection (ICE consent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urljoin

import aiohttp
from pydantic import SecretStr

from edgeagent.http_body import read_bounded
from edgeagent.uplink.signaling import SignalingError, SignalingLost, SignalingUnreachable

log = logging.getLogger(__name__)

SDP = "application/sdp"
MAX_ANSWER_BYTES = 64 * 1024


class WhipClient:
    def __init__(
        self, http: aiohttp.ClientSession, endpoint: str, token: SecretStr | None = None, timeout_s: float = 10
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        self.token = token
        self.timeout_s = timeout_s
        self.resource: str | None = None
        self.lost = asyncio.Event()

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        return headers

    async def publish(self, offer_sdp: str) -> str:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self.http.post(
                self.endpoint, data=offer_sdp.encode(), headers=self._headers(**{"Content-Type": SDP}), timeout=timeout
            ) as response:
                body = await read_bounded(response.content, MAX_ANSWER_BYTES)
                if response.status != 201:
                    reason = body[:200].decode("utf-8", "replace").strip()
                    raise SignalingError(f"whip: HTTP {response.status} for the offer: {reason}")
                location = response.headers.get("Location")
                content_type = response.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignalingUnreachable(f"whip: the offer failed: {type(exc).__name__}: {exc}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise SignalingError("whip: the answer is too large")
        if content_type != SDP:
            raise SignalingError(f"whip: the answer is {content_type[:60]!r}, not {SDP}")
        if not location:
            raise SignalingError("whip: 201 without a Location")
        self.resource = urljoin(self.endpoint, location)
        return body.decode("utf-8", "replace")

    async def keepalive(self) -> None:
        """WHIP has no keepalive: a publication lives while its media flows, and its loss shows in the peer
        connection (ICE consent checks fail and it turns "failed"), which the publisher watches."""
        if self.lost.is_set() or self.resource is None:
            raise SignalingLost("whip: not published")

    async def unpublish(self) -> None:
        if self.resource is not None and not self.lost.is_set():
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.delete(self.resource, headers=self._headers(), timeout=timeout) as response:
                    if response.status not in (200, 204):
                        log.info("uplink: whip DELETE answered %d", response.status)
        self.lost.set()
