"""HTTP: ``POST /cameras/<cam>/alarms/reset`` (bearer, like every route but the page's).

The reset itself (and its rate limit) is the agent's (edgeagent/alarms.py); this answers with the
camera's alarms after it, or 429 with ``Retry-After`` while the camera's last reset is too recent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiohttp import web

from edgeagent.publish.http import CAMERAS_KEY
from edgeagent.unit import CameraUnit

# reset(unit, by) -> 0.0 when done, else the seconds to wait
AlarmsReset = Callable[[CameraUnit, str], float]

RESET_KEY: web.AppKey[AlarmsReset] = web.AppKey("alarms_reset")


async def _reset(request: web.Request) -> web.Response:
    camera = request.match_info["camera"]
    unit = request.app[CAMERAS_KEY].get(camera)
    if unit is None:
        raise web.HTTPNotFound(text="unknown camera\n")
    wait_s = request.app[RESET_KEY](unit, "HTTP request")
    if wait_s > 0:
        raise web.HTTPTooManyRequests(
            text="reset too soon after the last one\n", headers={"Retry-After": str(math.ceil(wait_s))}
        )
    return web.json_response({"camera": camera, "alarms": unit.alarms.document})


def add_routes(app: web.Application, reset: AlarmsReset) -> None:
    app[RESET_KEY] = reset
    app.router.add_post("/cameras/{camera}/alarms/reset", _reset)
