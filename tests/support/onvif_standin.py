"""A STAND-IN ONVIF device of our own (aiohttp on 127.0.0.1, canned SOAP replies): not an independent
implementation, only for what IPyCam lacks: presets that zeep can read, a wrong clock behind an
authenticated time query, broken XML, and a device that never answers.

``clock_offset_s`` shifts its clock (GetSystemDateAndTime, the HTTP Date header, and the WS-Security
window of 300 s it enforces on every request, the time query included); ``hang`` makes every request
wait forever; ``broken`` sends replies zeep cannot parse (undeclared prefixes, cut off).
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import email.utils
import hashlib
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"'
    ' xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
    "<s:Body>{body}</s:Body></s:Envelope>"
)
FAULT = (
    "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode>"
    '</s:Code><s:Reason><s:Text xml:lang="en">Sender not Authorized</s:Text></s:Reason></s:Fault>'
)


@dataclass
class StandIn:
    user: str = "admin"
    password: str = "standin-secret"
    clock_offset_s: float = 0.0
    hang: bool = False
    broken: bool = False
    presets: dict[str, str] = field(default_factory=lambda: {"p1": "Bridge", "p2": "Junction"})
    calls: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each request
    goto: list[str] = field(default_factory=list)
    stream_uri: str = "rtsp://127.0.0.1:1/standin"  # what GetStreamUri answers
    events: bool = False  # offers PullPoint (GetCapabilities lists an Events service)
    queued: list[tuple[str, str]] = field(default_factory=list)  # (topic, state) for the next pull
    event_time: str = "2026-12-01T10:00:00Z"  # the UtcTime of every event sent (the camera's clock)
    delivered: int = 0  # events sent in PullMessages replies
    subscriptions: set[str] = field(default_factory=set)
    subscribed: int = 0
    renewed: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/onvif/device_service"

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def _authorized(self, text: str) -> bool:
        found = {
            name: re.search(rf"<(?:\w+:)?{name}(?:\s[^>]*)?>([^<]*)<", text)
            for name in ("Username", "Password", "Nonce", "Created")
        }
        if not all(found.values()):
            return False
        user, digest, nonce, created = (match.group(1).strip() for match in found.values() if match)
        try:
            when = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return False
        if abs(when - self.now()) > 300:
            return False
        expected = base64.b64encode(
            hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
        )
        return user == self.user and expected.decode() == digest

    def _reply(self, action: str) -> str:
        xaddr = f"http://127.0.0.1:{self.port}/onvif"
        if action == "GetSystemDateAndTime":
            t = time.gmtime(self.now())
            return (
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime>"
                f"<tt:Time><tt:Hour>{t.tm_hour}</tt:Hour><tt:Minute>{t.tm_min}</tt:Minute><tt:Second>{t.tm_sec}</tt:Second></tt:Time>"
                f"<tt:Date><tt:Year>{t.tm_year}</tt:Year><tt:Month>{t.tm_mon}</tt:Month><tt:Day>{t.tm_mday}</tt:Day></tt:Date>"
                "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            )
        if action == "GetCapabilities":
            return (
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                + (f"<tt:Events><tt:XAddr>{xaddr}/events</tt:XAddr></tt:Events>" if self.events else "")
                + f"<tt:Media><tt:XAddr>{xaddr}/media</tt:XAddr></tt:Media>"
                f"<tt:PTZ><tt:XAddr>{xaddr}/ptz</tt:XAddr></tt:PTZ>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if action == "GetDeviceInformation":
            if self.broken:  # an undeclared prefix and a document cut off: zeep refuses it
                return "<tds:GetDeviceInformationResponse><x:Manufacturer>Stand-in</x:Manufacturer><tds:Mod"
            return (
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>Stand-in</tds:Manufacturer>"
                "<tds:Model>Canned-1</tds:Model><tds:FirmwareVersion>0.1</tds:FirmwareVersion>"
                "<tds:SerialNumber>SI-1</tds:SerialNumber><tds:HardwareId>1</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>"
            )
        if action == "GetProfiles":
            return (
                '<trt:GetProfilesResponse><trt:Profiles token="main" fixed="true"><tt:Name>Main</tt:Name>'
                '<tt:VideoEncoderConfiguration token="vec"><tt:Name>e</tt:Name><tt:UseCount>1</tt:UseCount>'
                "<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>320</tt:Width><tt:Height>180</tt:Height>"
                "</tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
                "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>1000</tt:BitrateLimit></tt:RateControl>"
                "<tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
                "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
                "<tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
                "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
                '<tt:PTZConfiguration token="ptz"><tt:Name>p</tt:Name><tt:UseCount>1</tt:UseCount>'
                "<tt:NodeToken>n</tt:NodeToken></tt:PTZConfiguration></trt:Profiles></trt:GetProfilesResponse>"
            )
        if action == "GetStreamUri":
            return (
                f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{self.stream_uri}</tt:Uri>"
                "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
                "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
            )
        if action == "GetPresets":
            items = "".join(
                f'<tptz:Preset token="{token}"><tt:Name>{name}</tt:Name></tptz:Preset>'
                for token, name in self.presets.items()
            )
            return f"<tptz:GetPresetsResponse>{items}</tptz:GetPresetsResponse>"
        if action == "SetPreset":
            token = f"p{len(self.presets) + 1}"
            self.presets[token] = "new"
            return f"<tptz:SetPresetResponse><tptz:PresetToken>{token}</tptz:PresetToken></tptz:SetPresetResponse>"
        if action == "GotoPreset":
            return "<tptz:GotoPresetResponse/>"
        if action == "GetStatus":  # as IPyCam sends it: a prefix that is never declared
            return (
                '<ptz:GetStatusResponse><ptz:PTZStatus><tt:Position><tt:PanTilt x="0.25" y="-0.5"/>'
                '<tt:Zoom x="0.75"/></tt:Position><tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt></tt:MoveStatus>'
                "</ptz:PTZStatus></ptz:GetStatusResponse>"
            )
        if action == "CreatePullPointSubscription":
            self.subscribed += 1
            address = f"{xaddr}/subscription/{self.subscribed}"
            self.subscriptions.add(address)
            return (
                '<tev:CreatePullPointSubscriptionResponse xmlns:tev="http://www.onvif.org/ver10/events/wsdl"'
                ' xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2">'
                f"<tev:SubscriptionReference><wsa5:Address>{address}</wsa5:Address></tev:SubscriptionReference>"
                "<wsnt:CurrentTime>2026-01-01T00:00:00Z</wsnt:CurrentTime>"
                "<wsnt:TerminationTime>2026-01-01T00:01:00Z</wsnt:TerminationTime>"
                "</tev:CreatePullPointSubscriptionResponse>"
            )
        if action == "Renew":
            self.renewed += 1
            return '<wsnt:RenewResponse xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"/>'
        if action == "PullMessages":
            queued, self.queued = self.queued, []
            self.delivered += len(queued)
            messages = "".join(
                '<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/'
                f'ConcreteSet">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{self.event_time}"'
                ' PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Source" Value="1"/></tt:Source>'
                f'<tt:Data><tt:SimpleItem Name="State" Value="{state}"/></tt:Data></tt:Message></wsnt:Message>'
                "</wsnt:NotificationMessage>"
                for topic, state in queued
            )
            return (
                '<tev:PullMessagesResponse xmlns:tev="http://www.onvif.org/ver10/events/wsdl"'
                ' xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tns1="http://www.onvif.org/ver10/topics">'
                "<tev:CurrentTime>2026-12-01T10:00:00Z</tev:CurrentTime>"
                f"<tev:TerminationTime>2026-12-01T10:01:00Z</tev:TerminationTime>{messages}</tev:PullMessagesResponse>"
            )
        return f"<tptz:{action}Response/>"

    def reboot(self) -> None:
        """Forget every subscription, as a camera does when it restarts."""
        self.subscriptions.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.Event().wait()
        text = (await request.read()).decode(errors="replace")
        match = re.search(r"<s:Body>\s*<(?:\w+:)?(\w+)", text) or re.search(r"Body[^>]*>\s*<(?:\w+:)?(\w+)", text)
        action = match.group(1) if match else "?"
        self.calls.append(action)
        self.times.append(time.monotonic())
        date = email.utils.formatdate(self.now(), usegmt=True)
        if not self._authorized(text):
            return web.Response(status=400, text=ENVELOPE.format(body=FAULT), content_type="application/soap+xml",
                                headers={"Date": date})  # fmt: skip
        known = f"http://127.0.0.1:{self.port}{request.path}" in self.subscriptions
        if "/subscription/" in request.path and not known:  # one it no longer knows (it rebooted)
            fault = FAULT.replace("ter:NotAuthorized", "wsrf-rw:ResourceUnknownFault")
            fault = fault.replace("Sender not Authorized", "Unknown subscription")
            return web.Response(status=400, text=ENVELOPE.format(body=fault), content_type="application/soap+xml")
        if action == "PullMessages" and not self.queued:
            await asyncio.sleep(0.3)  # a short long-poll
        if action == "GotoPreset":
            preset = re.search(r"PresetToken>([^<]+)<", text)
            self.goto.append(preset.group(1) if preset else "")
        return web.Response(text=ENVELOPE.format(body=self._reply(action)), content_type="application/soap+xml",
                            headers={"Date": date})  # fmt: skip

    async def start(self) -> StandIn:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
