"""PTZ commands from operators (HTTP and MQTT): validated, one operator at a time, answered in JSON.

An operator holds a camera's control for ``HOLD_S`` after their last command; a command from anyone
else meanwhile is refused (409) with who holds it and for how long. Operators are named by the client
(HTTP ``X-Operator``, MQTT ``operator``), else by their address.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edgeagent.onvif.errors import OnvifError, OnvifTimeout
from edgeagent.onvif.link import OnvifLink
from edgeagent.onvif.ptz import PtzHead

HOLD_S = 5.0
MAX_PENDING = 4  # commands waiting for one camera (they are spaced): more is a flood, refused with 429
MAX_BODY_BYTES = 4096
OPERATOR_PATTERN = re.compile(r"^[A-Za-z0-9 ._@:-]{1,64}$")
Speed = Annotated[float, Field(ge=-1.0, le=1.0)]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Move(_Command):
    action: Literal["move"]
    pan: Speed = 0.0
    tilt: Speed = 0.0
    zoom: Speed = 0.0
    timeout_s: float = Field(default=1.0, ge=0.1, le=10.0)


class Stop(_Command):
    action: Literal["stop"]


class Home(_Command):
    action: Literal["home"]


class Goto(_Command):
    action: Literal["goto"]
    preset: str = Field(min_length=1, max_length=64)


class SetPreset(_Command):
    action: Literal["set_preset"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^<>&]+$")


class Absolute(_Command):
    action: Literal["absolute"]
    pan: Speed
    tilt: Speed
    zoom: float = Field(ge=0.0, le=1.0)


PtzCommand = Annotated[Move | Stop | Home | Goto | SetPreset | Absolute, Field(discriminator="action")]
_COMMAND: TypeAdapter[PtzCommand] = TypeAdapter(PtzCommand)


class PtzRefused(Exception):
    """An answer other than success: HTTP ``status`` and one line ``reason``."""

    def __init__(self, status: int, reason: str, holder: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.holder = holder


def parse_command(body: bytes) -> tuple[PtzCommand, str | None]:
    """The command and the operator name it carries (MQTT), or PtzRefused(400) with one line."""
    if len(body) > MAX_BODY_BYTES:
        raise PtzRefused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PtzRefused(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise PtzRefused(400, "body must be a JSON object")
    operator = data.pop("operator", None)
    if operator is not None and (not isinstance(operator, str) or not OPERATOR_PATTERN.match(operator)):
        raise PtzRefused(400, "operator: 1 to 64 letters, digits, spaces or ._@:-")
    try:
        return _COMMAND.validate_python(data), operator
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = json.dumps(data.get("action"))[:40]
            raise PtzRefused(
                400, f"action: must be one of move, stop, home, goto, set_preset, absolute (got {got})"
            ) from None
        where = ".".join(
            str(part) for part in error["loc"] if part not in ("move", "stop", "home", "goto", "set_preset", "absolute")
        )
        value = json.dumps(error.get("input"))[:60] if error["type"] != "missing" else "missing"
        raise PtzRefused(400, f"{where or 'body'}: {error['msg']} (got {value})") from None


class PtzControl:
    def __init__(self, link: OnvifLink, hold_s: float = HOLD_S) -> None:
        self.link = link
        self.hold_s = hold_s
        self.holder: str | None = None
        self.held_until = 0.0
        self.pending = 0

    def _take(self, operator: str) -> None:
        now = time.monotonic()
        if self.holder is not None and self.holder != operator and now < self.held_until:
            raise PtzRefused(
                409, f"{self.holder} holds this camera's PTZ for {self.held_until - now:.1f} s more", holder=self.holder
            )
        self.holder, self.held_until = operator, now + self.hold_s

    async def head(self) -> PtzHead:
        try:
            head = await self.link.ptz_head()
        except OnvifTimeout as exc:
            raise PtzRefused(504, str(exc)) from None
        except OnvifError as exc:
            raise PtzRefused(502, str(exc)) from None
        if head is None:
            raise PtzRefused(404, "this camera has no PTZ")
        return head

    async def command(self, operator: str, command: PtzCommand) -> dict[str, Any]:
        if self.pending >= MAX_PENDING:
            raise PtzRefused(429, f"more than {MAX_PENDING} PTZ commands waiting for this camera")
        self.pending += 1
        try:
            return await self._command(operator, command)
        finally:
            self.pending -= 1

    async def _command(self, operator: str, command: PtzCommand) -> dict[str, Any]:
        head = await self.head()
        self._take(operator)
        result: dict[str, Any] = {"ok": True, "action": command.action}
        try:
            if isinstance(command, Move):
                await head.move(command.pan, command.tilt, command.zoom, command.timeout_s)
            elif isinstance(command, Stop):
                await head.stop()
            elif isinstance(command, Home):
                await head.home()
            elif isinstance(command, Absolute):
                await head.absolute(command.pan, command.tilt, command.zoom)
            elif isinstance(command, SetPreset):
                result["preset"] = await head.set_preset(command.name)
            else:
                token = await self._preset_token(head, command.preset)
                await head.goto(token)
                result["preset"] = token
        except OnvifTimeout as exc:
            raise PtzRefused(504, str(exc)) from None
        except OnvifError as exc:
            raise PtzRefused(502, str(exc)) from None
        finally:
            self.held_until = time.monotonic() + self.hold_s
        return result

    async def _preset_token(self, head: PtzHead, wanted: str) -> str:
        presets = await head.presets()
        for preset in presets:
            if wanted == preset.token:
                return preset.token
        for preset in presets:
            if wanted == preset.name:
                return preset.token
        raise PtzRefused(400, f"preset: no preset with token or name {json.dumps(wanted)[:70]}")

    async def state(self) -> dict[str, Any]:
        head = await self.head()
        try:
            status = await head.status()
            presets = await head.presets()
        except OnvifError as exc:
            raise PtzRefused(504 if isinstance(exc, OnvifTimeout) else 502, str(exc)) from None
        now = time.monotonic()
        held = self.holder if self.holder is not None and now < self.held_until else None
        return {
            "pan": status.pan, "tilt": status.tilt, "zoom": status.zoom, "moving": status.moving,
            "presets": [{"token": p.token, "name": p.name} for p in presets],
            "holder": held, "held_for_s": round(self.held_until - now, 1) if held else None,
        }  # fmt: skip

    async def answer(self, operator: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, JSON document) for one request; errors included (the MQTT result, the HTTP body)."""
        try:
            command, named = parse_command(body)
            return 200, await self.command(named or operator, command)
        except PtzRefused as refused:
            document: dict[str, Any] = {"ok": False, "status": refused.status, "error": refused.reason}
            if refused.holder:
                document["holder"] = refused.holder
            return refused.status, document
