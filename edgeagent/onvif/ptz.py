"""A PTZ head on one media profile: moves, stops, home, presets, status.

Safety first: a continuous move carries the ONVIF ``Timeout`` and the agent sends its own ``Stop`` when
that time is up, so a move ends even when the camera ignores the timeout (IPyCam does) and when the
operator's browser or connection is gone. Commands are spaced by ``min_interval_s`` (some heads, e.g.
Bosch, drop commands closer than 100 ms), one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from edgeagent.onvif import soap
from edgeagent.onvif.errors import OnvifError

if TYPE_CHECKING:
    from edgeagent.onvif.device import OnvifDevice  # the client, imported only where a device is reached

T = TypeVar("T")
log = logging.getLogger(__name__)

PTZ_WSDL = "http://www.onvif.org/ver20/ptz/wsdl"
MIN_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class Preset:
    token: str
    name: str


@dataclass(frozen=True, slots=True)
class PtzStatus:
    pan: float | None
    tilt: float | None
    zoom: float | None
    moving: str | None  # the camera's MoveStatus (IDLE, MOVING, ...) when it says


def _float(element: soap.etree._Element | None, attribute: str = "x") -> float | None:
    if element is None:
        return None
    try:
        return float(element.get(attribute, ""))
    except ValueError:
        return None


def parse_status(root: soap.etree._Element) -> PtzStatus:
    position = soap.find(root, "Position")
    pan_tilt = soap.find(position, "PanTilt") if position is not None else None
    zoom = soap.find(position, "Zoom") if position is not None else None
    move = soap.find(root, "MoveStatus")
    moving = None
    if move is not None:
        states = [text for text in soap.texts_of(move, "PanTilt") + soap.texts_of(move, "Zoom") if "{" not in text]
        moving = "MOVING" if "MOVING" in (s.upper() for s in states) else (states[0].upper() if states else None)
    return PtzStatus(_float(pan_tilt), _float(pan_tilt, "y"), _float(zoom), moving)


def parse_presets(root: soap.etree._Element) -> list[Preset]:
    presets = []
    for element in soap.find_all(root, "Preset"):
        token = element.get("token") or ""
        names = soap.texts_of(element, "Name")
        if token:
            presets.append(Preset(token, names[0] if names else token))
    return presets


class PtzHead:
    def __init__(self, device: OnvifDevice, profile_token: str, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.device = device
        self.profile = profile_token
        self.min_interval_s = min_interval_s
        self._lock = asyncio.Lock()
        self._last_command = 0.0
        self._auto_stop: asyncio.Task[None] | None = None
        self.auto_stops = 0  # moves the agent ended itself

    async def _send(self, what: str, request: dict[str, Any]) -> Any:
        service = await self.device.service("ptz")
        async with self._lock:
            wait = self._last_command + self.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self.device.call(
                    what, lambda: getattr(service, what)({"ProfileToken": self.profile, **request})
                )
            finally:
                self._last_command = time.monotonic()

    @property
    def auto_stop(self) -> asyncio.Task[None] | None:
        """The agent's own stop of the current continuous move, while it is pending."""
        return self._auto_stop

    def _cancel_auto_stop(self) -> None:
        if self._auto_stop is not None and not self._auto_stop.done() and self._auto_stop is not asyncio.current_task():
            self._auto_stop.cancel()
        self._auto_stop = None

    async def move(self, pan: float, tilt: float, zoom: float, timeout_s: float) -> None:
        """Continuous move at the given speeds, for ``timeout_s`` at most."""
        self._cancel_auto_stop()
        velocity = {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}
        await self._send("ContinuousMove", {"Velocity": velocity, "Timeout": dt.timedelta(seconds=timeout_s)})
        self._auto_stop = asyncio.get_running_loop().create_task(self._stop_after(timeout_s), name="ptz-auto-stop")

    async def _stop_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for attempt in range(3):  # a stop that fails is tried again: a head left moving is the worst case
            try:
                await self._send("Stop", {"PanTilt": True, "Zoom": True})
                self.auto_stops += 1
                return
            except OnvifError as exc:
                log.warning(
                    "ptz %s: stop after the move's timeout failed (%s), attempt %d", self.device.url, exc, attempt + 1
                )

    async def stop(self) -> None:
        self._cancel_auto_stop()
        await self._send("Stop", {"PanTilt": True, "Zoom": True})

    async def absolute(self, pan: float, tilt: float, zoom: float) -> None:
        self._cancel_auto_stop()
        await self._send("AbsoluteMove", {"Position": {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}})

    async def home(self) -> None:
        self._cancel_auto_stop()
        await self._send("GotoHomePosition", {})

    async def goto(self, preset_token: str) -> None:
        self._cancel_auto_stop()
        await self._send("GotoPreset", {"PresetToken": preset_token})

    async def set_preset(self, name: str) -> str:
        """A new preset at the current position; its token."""
        try:
            reply = await self._send("SetPreset", {"PresetName": name})
            token = reply if isinstance(reply, str) else getattr(reply, "PresetToken", None)
            return str(token or "")
        except OnvifError as exc:
            if "unreadable" not in str(exc):
                raise
        # The camera took the preset but zeep could not read the answer: read its token leniently. The
        # request is not sent twice (that would make two presets): only the reply is looked for again.
        presets = await self.presets()
        named = [preset.token for preset in presets if preset.name == name]
        if not named:
            raise OnvifError("SetPreset: unreadable reply and no preset of that name afterwards")
        return named[-1]

    async def presets(self) -> list[Preset]:
        def from_reply(found: Any) -> list[Preset]:
            return [Preset(str(p.token), str(p.Name or p.token)) for p in found or [] if getattr(p, "token", None)]

        return await self._read("GetPresets", from_reply, parse_presets)

    async def status(self) -> PtzStatus:
        def from_reply(reply: Any) -> PtzStatus:
            return PtzStatus(
                _number(reply, "Position", "PanTilt", "x"),
                _number(reply, "Position", "PanTilt", "y"),
                _number(reply, "Position", "Zoom", "x"),
                str(getattr(getattr(reply, "MoveStatus", None), "PanTilt", None) or "") or None,
            )

        return await self._read("GetStatus", from_reply, parse_status)

    async def _read(
        self, operation: str, from_reply: Callable[[Any], T], from_xml: Callable[[soap.etree._Element], T]
    ) -> T:
        """A read-only PTZ request; where zeep cannot read the reply, the XML is asked for and read leniently."""
        try:
            return from_reply(await self._send(operation, {}))
        except OnvifError as exc:
            if "unreadable" not in str(exc):
                raise
        token = soap.escape(self.profile)
        body = f"<tptz:{operation}><tptz:ProfileToken>{token}</tptz:ProfileToken></tptz:{operation}>"
        return from_xml(await self.device.raw("ptz", f"{PTZ_WSDL}/{operation}", body))

    async def close(self) -> None:
        """Stop a move still under way (the agent is stopping) and forget the timer."""
        task, self._auto_stop = self._auto_stop, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(OnvifError):
                await self._send("Stop", {"PanTilt": True, "Zoom": True})


def _number(value: Any, *path: str) -> float | None:
    for name in path:
        value = getattr(value, name, None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


__all__ = ["Preset", "PtzHead", "PtzStatus", "parse_presets", "parse_status"]
