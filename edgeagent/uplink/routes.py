"""``POST /cameras/{camera}/uplink`` with ``{"action": "start"|"stop"}``, and ``GET`` for its state.

Authentication is the HTTP server's middleware, around every route added here.
"""

from __future__ import annotations

from aiohttp import web

from edgeagent.http_body import read_bounded
from edgeagent.uplink.command import MAX_COMMAND_BYTES, parse_action
from edgeagent.uplink.service import UplinkRefused, UplinkService

UPLINK_KEY = web.AppKey("uplink", UplinkService)


def _refusal(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", content_type="text/plain")


async def post_uplink(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return _refusal(415, "send the request as application/json")
    if request.content_length is not None and request.content_length > MAX_COMMAND_BYTES:
        return _refusal(413, f"larger than {MAX_COMMAND_BYTES} bytes")
    body = await read_bounded(request.content, MAX_COMMAND_BYTES)
    try:
        action = parse_action(body)
    except ValueError as exc:
        return _refusal(413 if len(body) > MAX_COMMAND_BYTES else 400, str(exc))
    try:
        status = request.app[UPLINK_KEY].request(request.match_info["camera"], action)
    except UplinkRefused as exc:
        return _refusal(exc.status, exc.reason)
    return web.json_response(status, status=202 if action == "start" else 200)


async def get_uplink(request: web.Request) -> web.Response:
    service = request.app[UPLINK_KEY]
    camera = request.match_info["camera"]
    if camera not in service.publishers:
        return _refusal(404, "unknown camera")
    return web.json_response(service.status(camera))


def add_routes(app: web.Application, uplink: UplinkService) -> None:
    app[UPLINK_KEY] = uplink
    app.router.add_post("/cameras/{camera}/uplink", post_uplink)
    app.router.add_get("/cameras/{camera}/uplink", get_uplink)
