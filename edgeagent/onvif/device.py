"""One ONVIF device, through onvif-zeep-async: the only ONVIF client of the agent.

Every call ends within ``timeout_s`` (asyncio's timeout around the call, and the HTTP session's own read
timeout), whatever the camera does. WS-Security tokens are dated by the camera's clock (``clock.py``), so
a camera with a wrong clock is still reached. Replies zeep cannot read fall back, where it matters (PTZ
status, presets), to the lenient parser of ``soap.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import onvif  # type: ignore[import-untyped]
import zeep.exceptions
from lxml import etree
from onvif.client import ONVIFService  # type: ignore[import-untyped]
from onvif.definition import SERVICES  # type: ignore[import-untyped]
from onvif.exceptions import ONVIFError  # type: ignore[import-untyped]

from edgeagent.onvif import soap
from edgeagent.onvif.clock import ClockReading, read_clock
from edgeagent.onvif.errors import OnvifAuthError, OnvifError, OnvifTimeout, OnvifUnreachable
from edgeagent.onvif.profiles import DeviceInfo, MediaProfile

log = logging.getLogger(__name__)

WSDL_DIR = Path(onvif.__file__).parent / "wsdl"
SETUP_TIMEOUT_S = 30.0  # loading a WSDL is local work in a thread, slow on small boards the first time
UNREADABLE = (ValueError, zeep.exceptions.XMLParseError, zeep.exceptions.XMLSyntaxError, etree.XMLSyntaxError)
T = TypeVar("T")


def _attr(value: Any, *path: str) -> Any:
    for name in path:
        if value is None:
            return None
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def describe(exc: BaseException) -> str:
    if isinstance(exc, zeep.exceptions.Fault):
        return f"fault: {exc.message or exc.code or 'no reason given'}"
    if isinstance(exc, UNREADABLE):
        return f"unreadable reply ({type(exc).__name__}: {str(exc)[:120]})"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def _is_auth_fault(exc: BaseException) -> bool:
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'code', '')} {getattr(exc, 'subcodes', '')}".lower()
    return any(word in text for word in soap.AUTH_FAULTS)


class OnvifDevice:
    """Talks to one device service URL. ``connect()`` first; then the queries; ``close()`` at the end."""

    def __init__(self, url: str, username: str | None, password: str | None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self.clock: ClockReading | None = None
        self.xaddrs: dict[str, str] = {"devicemgmt": url}
        self._services: dict[str, ONVIFService] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    async def call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()`` within the timeout; every failure becomes one OnvifError line."""
        try:
            return await asyncio.wait_for(make(), self.timeout_s)
        except TimeoutError:
            raise OnvifTimeout(f"{what}: no answer within {self.timeout_s:g} s") from None
        except OnvifError:
            raise
        except zeep.exceptions.Fault as exc:
            error = OnvifAuthError if _is_auth_fault(exc) else OnvifError
            raise error(f"{what}: {describe(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise OnvifUnreachable(f"{what}: {describe(exc)}") from None
        except (ONVIFError, zeep.exceptions.Error, *UNREADABLE) as exc:
            if isinstance(exc, ONVIFError) and "timeout" in str(exc).lower():
                raise OnvifTimeout(f"{what}: no answer within {self.timeout_s:g} s") from None
            raise OnvifError(f"{what}: {describe(exc)}") from None

    async def service(self, name: str) -> ONVIFService:
        existing = self._services.get(name)
        if existing is not None:
            return existing
        xaddr = self.xaddrs.get(name)
        if xaddr is None:
            raise OnvifError(f"the device offers no {name} service")
        spec = SERVICES[name]
        offset = self.clock.offset if self.clock is not None else None
        made = ONVIFService(
            xaddr,
            self.username,
            self.password,
            str(WSDL_DIR / spec["wsdl"]),
            True,  # PasswordDigest
            no_cache=True,  # the WSDLs are local; no cache file to write
            dt_diff=offset,
            binding_name=f"{{{spec['ns']}}}{spec['binding']}",
            binding_key=(name, None),
            read_timeout=max(1, math.ceil(self.timeout_s)),
        )
        try:
            await asyncio.wait_for(made.setup(), SETUP_TIMEOUT_S)
        except BaseException:
            await made.close()
            raise
        self._services[name] = made
        return made

    async def security(self) -> str:
        """A WS-Security header for a plain SOAP request (the lenient fallback)."""
        if not self.username or self.password is None:
            return ""
        offset = self.clock.offset if self.clock is not None else dt.timedelta()
        return soap.security_header(self.username, self.password, offset)

    async def raw(self, service: str, action: str, body: str) -> etree._Element:
        """A request sent and read without zeep, for replies zeep cannot parse."""
        xaddr = self.xaddrs.get(service)
        if xaddr is None:
            raise OnvifError(f"the device offers no {service} service")
        reply = await soap.call(xaddr, action, body, self.timeout_s, await self.security())
        return soap.raise_for_reply(reply, action.rpartition("/")[2])

    # -- connection -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """The camera's clock, then where its services are (GetCapabilities, else GetServices)."""
        self.clock = await read_clock(self.url, self.username, self.password, self.timeout_s)
        await self._close_services()  # made before the clock was known
        device = await self.service("devicemgmt")
        try:
            capabilities = await self.call("GetCapabilities", lambda: device.GetCapabilities({"Category": "All"}))
            for name, key in (("media", "Media"), ("ptz", "PTZ"), ("events", "Events"), ("imaging", "Imaging")):
                xaddr = _text(_attr(capabilities, key, "XAddr"))
                if xaddr:
                    self.xaddrs[name] = xaddr
        except OnvifAuthError:
            raise
        except OnvifError as exc:
            log.debug("onvif %s: GetCapabilities failed (%s); asking GetServices", self.url, exc)
        if "media" not in self.xaddrs:
            services = await self.call("GetServices", lambda: device.GetServices({"IncludeCapability": False}))
            by_namespace = {spec["ns"]: name for name, spec in SERVICES.items()}
            for entry in services or []:
                service = by_namespace.get(_text(_attr(entry, "Namespace")))
                xaddr = _text(_attr(entry, "XAddr"))
                if service and xaddr:
                    self.xaddrs[service] = xaddr

    async def _close_services(self) -> None:
        services, self._services = self._services, {}
        for made in services.values():
            try:
                await made.close()
            except Exception:
                log.debug("onvif %s: closing a service failed", self.url, exc_info=True)

    async def close(self) -> None:
        await self._close_services()

    # -- queries ----------------------------------------------------------------------------------

    async def device_info(self) -> DeviceInfo:
        device = await self.service("devicemgmt")
        info = await self.call("GetDeviceInformation", device.GetDeviceInformation)
        return DeviceInfo(
            manufacturer=_text(_attr(info, "Manufacturer")),
            model=_text(_attr(info, "Model")),
            firmware=_text(_attr(info, "FirmwareVersion")),
            serial=_text(_attr(info, "SerialNumber")),
        )

    async def profiles(self) -> list[MediaProfile]:
        media = await self.service("media")
        found = await self.call("GetProfiles", media.GetProfiles)
        profiles = []
        for entry in found or []:
            encoder = _attr(entry, "VideoEncoderConfiguration")
            codec = _text(_attr(encoder, "Encoding")) or None
            fps = _number(_attr(encoder, "RateControl", "FrameRateLimit"))
            gop = _int(_attr(encoder, "H264", "GovLength")) if codec == "H264" else None
            if codec and codec.upper() in ("H265", "HEVC"):
                gop = _int(_attr(encoder, "H265", "GovLength"))
            if gop is None and codec == "H264" and _attr(encoder, "token"):
                gop = await self._gop(media, _text(_attr(encoder, "token")))
            profiles.append(
                MediaProfile(
                    token=_text(_attr(entry, "token")),
                    name=_text(_attr(entry, "Name")),
                    codec=codec,
                    width=_int(_attr(encoder, "Resolution", "Width")),
                    height=_int(_attr(encoder, "Resolution", "Height")),
                    fps=fps,
                    gop=gop,
                    ptz=_attr(entry, "PTZConfiguration") is not None,
                )
            )
        return profiles

    async def _gop(self, media: ONVIFService, encoder_token: str) -> int | None:
        """GovLength from the encoder's own configuration (some cameras leave it out of GetProfiles)."""
        try:
            request = {"ConfigurationToken": encoder_token}
            found = await self.call("GetVideoEncoderConfiguration", lambda: media.GetVideoEncoderConfiguration(request))
        except OnvifError:
            return None
        return _int(_attr(found, "H264", "GovLength"))

    async def stream_uri(self, profile_token: str) -> str:
        media = await self.service("media")
        request = {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": profile_token,
        }
        reply = await self.call("GetStreamUri", lambda: media.GetStreamUri(request))
        uri = _text(_attr(reply, "Uri"))
        if urlsplit(uri).scheme not in ("rtsp", "rtsps"):
            raise OnvifError(f"GetStreamUri: not an RTSP URI ({uri[:80]!r})")
        return uri

    async def snapshot_uri(self, profile_token: str) -> str | None:
        media = await self.service("media")
        reply = await self.call("GetSnapshotUri", lambda: media.GetSnapshotUri({"ProfileToken": profile_token}))
        return _text(_attr(reply, "Uri")) or None

    @property
    def has_ptz(self) -> bool:
        return "ptz" in self.xaddrs
