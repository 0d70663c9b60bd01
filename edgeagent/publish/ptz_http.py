"""PTZ over HTTP: ``POST /cameras/{camera}/ptz`` (a command in JSON) and ``GET /cameras/{camera}/ptz``.

Authentication is the HTTP server's middleware. The operator is the client's ``X-Operator`` header (a
name), else its address. Answers: 200 with JSON; 400 with one line for a bad body; 404 for an unknown
camera or one without PTZ; 409 while another operator holds the camera; 502/504 when the camera failed.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from edgeagent.http_body import read_bounded
from edgeagent.onvif.control import MAX_BODY_BYTES, OPERATOR_PATTERN, PtzControl, PtzRefused

CONTROLS_KEY: web.AppKey[Callable[[str], PtzControl | None]] = web.AppKey("ptz")


def _control(request: web.Request) -> PtzControl:
    control = request.app[CONTROLS_KEY](request.match_info["camera"])
    if control is None:
        raise PtzRefused(404, "no such camera with PTZ")
    return control


def _operator(request: web.Request) -> str:
    named = request.headers.get("X-Operator")
    if named is not None:
        if not OPERATOR_PATTERN.match(named):
            raise PtzRefused(400, "X-Operator: 1 to 64 letters, digits, spaces or ._@:-")
        return named
    return request.remote or "unknown"


def _refusal(refused: PtzRefused) -> web.Response:
    headers = {"X-PTZ-Holder": refused.holder} if refused.holder else None
    return web.Response(status=refused.status, text=refused.reason + "\n", headers=headers)


async def post_ptz(request: web.Request) -> web.Response:
    try:
        control = _control(request)
        operator = _operator(request)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise PtzRefused(413, f"body larger than {MAX_BODY_BYTES} bytes")
        body = await read_bounded(request.content, MAX_BODY_BYTES)
        status, document = await control.answer(operator, body)
    except PtzRefused as refused:
        return _refusal(refused)
    if status != 200:
        return _refusal(PtzRefused(status, document["error"], document.get("holder")))
    return web.json_response(document)


async def get_ptz(request: web.Request) -> web.Response:
    try:
        return web.json_response(await _control(request).state())
    except PtzRefused as refused:
        return _refusal(refused)


def add_routes(app: web.Application, control_for: Callable[[str], PtzControl | None]) -> None:
    """``control_for(camera)``: that camera's PTZ control, None for an unknown camera or one without ONVIF."""
    app[CONTROLS_KEY] = control_for
    app.router.add_post("/cameras/{camera}/ptz", post_ptz)
    app.router.add_get("/cameras/{camera}/ptz", get_ptz)
