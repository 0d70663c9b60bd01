"""The camera's clock against ours (GetSystemDateAndTime), so WS-Security tokens carry the camera's time.

ONVIF lets the time query go unauthenticated so a client can learn the clock before it signs anything.
Some cameras (Axis; IPyCam) authenticate it too: then it is asked signed with our own time, and when the
camera refuses that (its clock is off by more than its window), the offset is estimated from the HTTP
``Date`` header of the refusal and the query signed again with it. ``ClockReading.method`` says which.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from edgeagent.onvif import soap
from edgeagent.onvif.errors import OnvifAuthError, OnvifError

log = logging.getLogger(__name__)

ACTION = "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"
BODY = "<tds:GetSystemDateAndTime/>"


@dataclass(frozen=True, slots=True)
class ClockReading:
    offset_s: float  # camera clock minus ours
    method: str  # "unauthenticated", "authenticated" or "authenticated, offset from the HTTP Date header"

    @property
    def offset(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.offset_s)


def camera_utc(root: soap.etree._Element) -> dt.datetime | None:
    """UTCDateTime of a GetSystemDateAndTime reply (LocalDateTime is no use without the zone's rules)."""
    utc = soap.find(root, "UTCDateTime")
    if utc is None:
        return None
    values = {}
    for name in ("Year", "Month", "Day", "Hour", "Minute", "Second"):
        element = soap.find(utc, name)
        if element is None or not (element.text or "").strip().lstrip("-").isdigit():
            return None
        values[name] = int((element.text or "").strip())
    try:
        return dt.datetime(
            values["Year"], values["Month"], values["Day"], values["Hour"], values["Minute"], values["Second"],
            tzinfo=dt.UTC,
        )  # fmt: skip
    except ValueError:
        return None


async def _ask(url: str, timeout_s: float, security: str) -> tuple[soap.Reply, float]:
    started = time.time()
    reply = await soap.call(url, ACTION, BODY, timeout_s, security)
    return reply, (started + time.time()) / 2


def _offset(reply: soap.Reply, at: float) -> float | None:
    if reply.root is None or reply.fault() is not None or reply.status >= 400:
        return None
    camera = camera_utc(reply.root)
    # The camera reports whole seconds: +0.5 s is its expected fraction.
    return None if camera is None else camera.timestamp() + 0.5 - at


async def read_clock(url: str, username: str | None, password: str | None, timeout_s: float) -> ClockReading:
    reply, at = await _ask(url, timeout_s, "")
    offset = _offset(reply, at)
    if offset is not None:
        return ClockReading(offset, "unauthenticated")
    if not username or password is None:
        soap.raise_for_reply(reply, "GetSystemDateAndTime")
        raise OnvifError("GetSystemDateAndTime: no UTCDateTime in the reply")
    signed, at = await _ask(url, timeout_s, soap.security_header(username, password, dt.timedelta()))
    offset = _offset(signed, at)
    if offset is not None:
        return ClockReading(offset, "authenticated")
    date = signed.server_date or reply.server_date
    if not signed.auth_failed() or date is None:
        soap.raise_for_reply(signed, "GetSystemDateAndTime")
        raise OnvifError("GetSystemDateAndTime: no UTCDateTime in the reply")
    estimate = dt.timedelta(seconds=date.timestamp() + 0.5 - at)
    again, at = await _ask(url, timeout_s, soap.security_header(username, password, estimate))
    offset = _offset(again, at)
    if offset is None:
        if again.auth_failed():
            raise OnvifAuthError("GetSystemDateAndTime: not authorized (also with the camera's clock): check the user")
        soap.raise_for_reply(again, "GetSystemDateAndTime")
        raise OnvifError("GetSystemDateAndTime: no UTCDateTime in the reply")
    log.info(
        "onvif %s: the camera authenticates its time query; its clock (%+.0f s) was read through the HTTP "
        "Date header of its refusal",
        url,
        offset,
    )
    return ClockReading(offset, "authenticated, offset from the HTTP Date header")
