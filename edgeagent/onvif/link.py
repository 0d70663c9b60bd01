"""A configured camera's ONVIF side: its stream URI for the source, its identity and clock for health,
and its PTZ head.

The source asks ``resolve_url`` (in its ingest thread) before every connect. The first connect of a
camera with a ``url`` uses that URL at once; every later connect (they all follow an end or a failure)
asks GetStreamUri again, but waits at most ``timeout_s`` for it when a ``url`` is given: an unreachable
ONVIF service never holds RTSP back, and the answer still serves the connect after. A failed ONVIF call
drops the connection to the device, so the next one reads the clock and the services again (a camera
that rebooted, or got a new firmware).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import importlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import SecretStr

from edgeagent.camera.failures import AuthRefused
from edgeagent.onvif.clock import read_clock
from edgeagent.onvif.errors import OnvifAuthError, OnvifError
from edgeagent.onvif.profiles import DeviceInfo, MediaProfile, pick_profile
from edgeagent.onvif.ptz import PtzHead
from edgeagent.onvif.settings import OnvifSection

if TYPE_CHECKING:
    from edgeagent.onvif.device import OnvifDevice

log = logging.getLogger(__name__)

CLOCK_ALARM_S = 2.0  # evidence needs the right time
CLOCK_CHECK_S = 300.0


@dataclass(frozen=True, slots=True)
class OnvifHealth:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    clock_offset_s: float | None = field(metadata={"digits": 1})
    profile: str | None
    ptz: bool
    last_error: str | None
    alarms: list[str]


def with_user(uri: str, username: str | None) -> str:
    parts = urlsplit(uri)
    if not username or "@" in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=f"{quote(username, safe='')}@{parts.netloc}"))


class OnvifLink:
    def __init__(self, camera: str, section: OnvifSection, url: str | None, password: SecretStr | None) -> None:
        self.camera = camera
        self.section = section
        self.configured_url = url
        self._password = password.get_secret_value() if password is not None else None
        self.device: OnvifDevice | None = None
        self.info: DeviceInfo | None = None
        self.profile: MediaProfile | None = None
        self.stream_uri: str | None = None  # the last one GetStreamUri gave, with the user name
        self.clock_offset_s: float | None = None
        self.clock_alarm_since: dt.datetime | None = None  # while the camera's clock is off by more than 2 s
        self.last_error: str | None = None
        self.head: PtzHead | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing: asyncio.Task[str] | None = None
        self._connects = 0
        self._lock = asyncio.Lock()

    def placeholder_url(self) -> str:
        """rtsp://USER@HOST/ of the device: where the stream is until GetStreamUri says (never opened)."""
        host = urlsplit(self.section.device_url).hostname or "onvif.invalid"
        host = f"[{host}]" if ":" in host else host
        return with_user(f"rtsp://{host}/", self.section.username)

    def secrets(self) -> tuple[str, ...]:
        """What must never be repeated from the device's replies (it may echo it): our password to it."""
        return (self._password,) if self._password else ()

    @property
    def timeout_s(self) -> float:
        return self.section.timeout_s

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    # -- the device -------------------------------------------------------------------------------

    async def _connected(self) -> OnvifDevice:
        if self.device is not None:
            return self.device
        # The SOAP client (zeep, 9.5 MB) is imported only where an ONVIF camera is configured, in a thread.
        client = await asyncio.to_thread(importlib.import_module, "edgeagent.onvif.device")
        device: OnvifDevice = client.OnvifDevice(
            self.section.device_url, self.section.username, self._password, self.timeout_s
        )
        try:
            await device.connect()
            self.info = await device.device_info()
            self.profile = pick_profile(await device.profiles(), self.section.profile)
        except BaseException:
            await device.close()
            raise
        assert device.clock is not None
        self._note_clock(device.clock.offset_s)
        self.device = device
        self.head = PtzHead(device, self.profile.token) if device.has_ptz and self.profile.ptz else None
        log.info(
            "camera %s: onvif %s %s (firmware %s), profile %s, clock %+.1f s (%s)",
            self.camera,
            self.info.manufacturer,
            self.info.model,
            self.info.firmware,
            self.profile.token,
            device.clock.offset_s,
            device.clock.method,
        )
        return device

    def _note_clock(self, offset_s: float) -> None:
        self.clock_offset_s = offset_s
        if abs(offset_s) <= CLOCK_ALARM_S:
            if self.clock_alarm_since is not None:
                log.info("camera %s: its clock is right again (%+.1f s)", self.camera, offset_s)
            self.clock_alarm_since = None
        elif self.clock_alarm_since is None:
            self.clock_alarm_since = dt.datetime.now(dt.UTC)
            log.warning("camera %s: its clock is off by %+.1f s (alarm: clock)", self.camera, offset_s)

    async def drop(self) -> None:
        device, self.device = self.device, None
        head, self.head = self.head, None
        if head is not None:
            await head.close()
        if device is not None:
            await device.close()

    async def refresh(self) -> str:
        """GetStreamUri (connecting first when needed); the URI with the user name."""
        async with self._lock:
            try:
                device = await self._connected()
                assert self.profile is not None
                uri = with_user(await device.stream_uri(self.profile.token), self.section.username)
            except OnvifError as exc:
                self.last_error = str(exc)
                await self.drop()
                raise
            self.last_error = None
            if uri != self.stream_uri:
                log.info("camera %s: stream URI from ONVIF: %s", self.camera, uri)
            self.stream_uri = uri
            return uri

    async def connected(self) -> OnvifDevice:
        """The device, connecting first when needed (a failure is noted for health)."""
        async with self._lock:
            try:
                return await self._connected()
            except OnvifError as exc:
                self.last_error = str(exc)
                await self.drop()
                raise

    async def ptz_head(self) -> PtzHead | None:
        """The head, connecting to the device when needed; None when the camera has no PTZ."""
        await self.connected()
        return self.head

    async def drop_quietly(self) -> None:
        """Forget the connection (the device went away): the next use reads clock and services again."""
        async with self._lock:
            await self.drop()

    async def watch_clock(self) -> None:
        """The camera's clock every few minutes (it drifts, and resets on some reboots)."""
        while True:
            await asyncio.sleep(CLOCK_CHECK_S)
            try:
                clock = await read_clock(self.section.device_url, self.section.username, self._password, self.timeout_s)
                self._note_clock(clock.offset_s)
            except OnvifError as exc:
                log.debug("camera %s: clock check failed: %s", self.camera, exc)

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        async with self._lock:
            await self.drop()

    # -- the source's hook (ingest thread) --------------------------------------------------------

    def _start_refresh(self) -> asyncio.Task[str]:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh(), name=f"onvif-{self.camera}")
            self._refreshing.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._refreshing

    async def _refresh_shared(self) -> str:
        return await asyncio.shield(self._start_refresh())

    def resolve_url(self) -> str:
        """The URL for the next connect (blocking; called in the ingest thread, never on the loop)."""
        self._connects += 1
        fallback = self.stream_uri or self.configured_url
        if self._loop is None:
            if fallback is None:
                raise OnvifError("onvif: the agent has not started this camera's ONVIF link")
            return fallback
        if self._connects == 1 and self.configured_url is not None:
            # Connect at once with the configured URL; the device is asked meanwhile for health and PTZ.
            self._loop.call_soon_threadsafe(self._start_refresh)
            return self.configured_url
        wait_s = self.timeout_s if fallback is not None else self.timeout_s * 4 + 1
        future = asyncio.run_coroutine_threadsafe(self._refresh_shared(), self._loop)
        try:
            return future.result(wait_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the shared refresh goes on and serves the next connect
            error = f"onvif: GetStreamUri took longer than {wait_s:g} s"
        except OnvifAuthError as exc:
            if fallback is None:  # the source backs off: retrying fast could lock the device's account
                raise AuthRefused(str(exc)) from None
            error = str(exc)
        except OnvifError as exc:
            error = str(exc)
        except concurrent.futures.CancelledError:
            error = "onvif: cancelled"
        if fallback is None:
            raise OnvifError(error)
        log.info(
            "camera %s: %s; connecting to %s",
            self.camera,
            error,
            "the last stream URI" if self.stream_uri else "the configured url",
        )
        return fallback

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> OnvifHealth:
        offset = self.clock_offset_s
        return OnvifHealth(
            manufacturer=self.info.manufacturer if self.info else None,
            model=self.info.model if self.info else None,
            firmware=self.info.firmware if self.info else None,
            clock_offset_s=offset,
            profile=self.profile.token if self.profile else None,
            ptz=self.head is not None,
            last_error=self.last_error,
            alarms=["clock"] if offset is not None and abs(offset) > CLOCK_ALARM_S else [],
        )
