"""WHEP (WebRTC-HTTP Egress Protocol): a viewer POSTs an SDP offer and gets the answer in one exchange.

``POST /whep/{camera}`` with ``Content-Type: application/sdp`` answers ``201 Created``, the answer SDP and
``Location: /whep/sessions/{id}``; ``DELETE`` on that location ends the viewer. The agent gathers its
candidates before answering and expects a complete offer (no trickle ICE). Authentication is the HTTP
server's middleware, around every route added here.
"""

from __future__ import annotations

from aiohttp import web

from edgeagent.http_body import read_bounded
from edgeagent.live.errors import LiveError
from edgeagent.live.offer import MAX_SDP_BYTES
from edgeagent.live.service import LiveService

SDP = "application/sdp"
LIVE_KEY = web.AppKey("live", LiveService)


def _refusal(status: int, reason: str) -> web.Response:
    headers = {"Retry-After": "5"} if status == 503 else None  # a viewer may leave soon
    return web.Response(status=status, text=reason + "\n", content_type="text/plain", headers=headers)


async def post_offer(request: web.Request) -> web.Response:
    live = request.app[LIVE_KEY]
    camera = request.match_info["camera"]
    if request.content_type != SDP:
        return _refusal(415, f"the offer must be sent as {SDP}")
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        return _refusal(413, f"offer is larger than {MAX_SDP_BYTES} bytes")
    body = await read_bounded(request.content, MAX_SDP_BYTES)
    if len(body) > MAX_SDP_BYTES:
        return _refusal(413, f"offer is larger than {MAX_SDP_BYTES} bytes")
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        return _refusal(400, "malformed SDP: not UTF-8 text")
    try:
        session_id, answer = await live.offer(camera, offer)
    except LiveError as exc:
        return _refusal(exc.status, exc.reason)
    location = request.app.router["whep-session"].url_for(session_id=session_id)
    return web.Response(
        status=201,
        text=answer,
        content_type=SDP,
        headers={"Location": str(location), "Cache-Control": "no-store"},
    )


async def delete_session(request: web.Request) -> web.Response:
    live = request.app[LIVE_KEY]
    if await live.close_session(request.match_info["session_id"]):
        return web.Response(status=200)
    return _refusal(404, "no such session")


def add_routes(app: web.Application, live: LiveService) -> None:
    app[LIVE_KEY] = live
    app.router.add_post("/whep/{camera}", post_offer, name="whep-offer")
    app.router.add_delete("/whep/sessions/{session_id}", delete_session, name="whep-session")
