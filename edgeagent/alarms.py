"""The cameras' alarms in the running agent: kept up to date, published when they change, reset on command.

A camera's alarms document (``offline`` and the picture alarms, see edgeagent/media/picture.py) is taken
again after every keyframe checked and on every change of the camera's state; it is published on
``<base>/cameras/<cam>/alarms`` only when it changed. A reset (MQTT command or HTTP) makes the picture
checks forget the learned reference view and sharpness, at most once per ``RESET_MIN_INTERVAL_S`` a
camera: a reset costs the checks five keyframes of learning, and anyone who can send it could otherwise
keep ``moved`` and ``blurred`` from ever being raised. A refused reset is logged at most once a minute a
camera (``edgeagent/publish/ratelimit.py``, the same pieces as the other MQTT commands' limits).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edgeagent.publish.ratelimit import Clock, LogThrottle, MinInterval
from edgeagent.unit import CameraUnit

log = logging.getLogger(__name__)

RESET_MIN_INTERVAL_S = 5.0

# publish(camera, alarms document)
AlarmsPublish = Callable[[str, dict[str, Any]], None]


class Alarms:
    def __init__(self, publish: AlarmsPublish | None, clock: Clock = time.monotonic,
                 on_change: AlarmsPublish | None = None) -> None:  # fmt: skip
        self.publish = publish
        self.on_change = on_change  # also told of every change (the recording's bookmarks)
        self._resets = MinInterval(RESET_MIN_INTERVAL_S, clock=clock)
        self._log = LogThrottle(period_s=60.0, clock=clock)

    def refresh(self, unit: CameraUnit) -> None:
        """Take the camera's current state; publish its alarms when they changed."""
        if not unit.update_alarms():
            return
        if self.publish is not None:
            self.publish(unit.name, unit.alarms.document)
        if self.on_change is not None:
            self.on_change(unit.name, unit.alarms.document)

    def reset(self, unit: CameraUnit, by: str) -> float:
        """Forget the camera's learned view and republish its alarms; 0.0 when done, else the seconds to
        wait before the camera's next reset is taken."""
        if not self._resets.allow(unit.name):
            wait_s = self._resets.wait_s(unit.name)
            unlogged = self._log.should_log(unit.name)
            if unlogged is not None:
                more = f" ({unlogged} more since the last line)" if unlogged else ""
                log.warning(
                    "camera %s: picture reference reset (%s) ignored: one per %g s%s",
                    unit.name, by, RESET_MIN_INTERVAL_S, more,
                )  # fmt: skip
            return max(wait_s, 0.001)
        unit.snapshotter.picture.reset()
        changed = unit.update_alarms()
        if self.publish is not None:
            self.publish(unit.name, unit.alarms.document)  # also when unchanged: the reset is acknowledged
        if changed and self.on_change is not None:
            self.on_change(unit.name, unit.alarms.document)
        log.info("camera %s: picture reference reset (%s)", unit.name, by)
        return 0.0
