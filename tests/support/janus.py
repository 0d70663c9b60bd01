"""Janus (Debian's) as the traffic centre's media server, in a network namespace of its own.

The namespace has two veth links to the test's (host) namespace: ``uplink``, the cabinet's link, on
which the agent publishes, and ``operators``, on which the centre's viewers subscribe. Janus gathers ICE
candidates on those two interfaces only (``ice_enforce_list``), and strict reverse-path filtering in the
namespace keeps each peer on its own link, so the host side's counters of the ``uplink`` link are
exactly what the cabinet sends. Nothing outside the test's namespaces can reach any of it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from pydantic import SecretStr

from edgeagent.live.ice import offered_host_addresses
from edgeagent.uplink.janus import JanusVideoRoom
from edgeagent.uplink.signaling import SignalingError
from tests.support.live_client import FrameReader
from tests.support.net import wait_for_port
from tests.support.netns import address_claim

LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
HTTP_PORT = 8088
WS_PORT = 8188
PLUGINS_OFF = [
    "libjanus_audiobridge.so",
    "libjanus_duktape.so",
    "libjanus_echotest.so",
    "libjanus_lua.so",
    "libjanus_nosip.so",
    "libjanus_recordplay.so",
    "libjanus_sip.so",
    "libjanus_streaming.so",
    "libjanus_textroom.so",
    "libjanus_videocall.so",
    "libjanus_voicemail.so",
]
TRANSPORTS = ["libjanus_http.so", "libjanus_mqtt.so", "libjanus_nanomsg.so", "libjanus_pfunix.so",
              "libjanus_rabbitmq.so", "libjanus_websockets.so"]  # fmt: skip


_counter = itertools.count()


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class Link:
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def host_counter(self, name: str) -> int:
        """A counter of the host side, e.g. ``tx_bytes``: what the host sent into the namespace."""
        return int(Path(f"/sys/class/net/{self.host_if}/statistics/{name}").read_text())


class Netns:
    def __init__(self) -> None:
        # Unique among live processes; a pid is at most 0x400000, so interface names keep within 15 characters.
        tag = f"{os.getpid():x}{next(_counter) % 256:02x}"
        self.name = f"eajanus-{tag}"
        self.tag = tag
        self._choose_addresses()

    def _choose_addresses(self) -> None:
        octet, tag = random.randrange(256), self.tag
        self.uplink = Link(f"eu{tag}h", f"eu{tag}n", f"10.231.{octet}.1", f"10.231.{octet}.2")
        self.operators = Link(f"eo{tag}h", f"eo{tag}n", f"10.231.{octet}.5", f"10.231.{octet}.6")

    def create(self) -> Netns:
        _run("ip", "netns", "add", self.name)
        _run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        # Strict reverse-path filtering: a packet from the cabinet's address that arrives on the
        # operators' link (or the other way round) is dropped, so no ICE pair crosses the links.
        _run("ip", "netns", "exec", self.name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
        with address_claim() as in_use:
            links = (self.uplink, self.operators)
            while {address for link in links for address in (link.host_ip, link.ns_ip)} & in_use:
                self._choose_addresses()
                links = (self.uplink, self.operators)
            for link in links:
                _run("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if)
                _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        for link in (self.uplink, self.operators):
            _run("ip", "link", "set", link.ns_if, "netns", self.name)
            _run("ip", "link", "set", link.host_if, "up")
            _run("ip", "netns", "exec", self.name, "ip", "addr", "add", f"{link.ns_ip}/30", "dev", link.ns_if)
            _run("ip", "netns", "exec", self.name, "ip", "link", "set", link.ns_if, "up")
            _run("ip", "netns", "exec", self.name, "sysctl", "-qw", f"net.ipv4.conf.{link.ns_if}.rp_filter=1")
        return self

    def delete(self) -> None:
        for link in (self.uplink, self.operators):
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


class Janus:
    """One Janus process in ``netns``; ``restart()`` kills it and starts a new one on the same ports."""

    def __init__(self, netns: Netns, workdir: Path, api_secret: str | None = None, websockets: bool = False) -> None:
        self.netns = netns
        self.workdir = workdir
        self.api_secret = api_secret
        self.websockets = websockets
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.ready_at: float | None = None

    @property
    def url(self) -> str:
        """The HTTP API as the cabinet reaches it (over its uplink)."""
        return f"http://{self.netns.uplink.ns_ip}:{HTTP_PORT}/janus"

    @property
    def operators_url(self) -> str:
        return f"http://{self.netns.operators.ns_ip}:{HTTP_PORT}/janus"

    @property
    def secret(self) -> SecretStr | None:
        return SecretStr(self.api_secret) if self.api_secret else None

    def _write_config(self) -> Path:
        conf = self.workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        secret = f'api_secret = "{self.api_secret}"' if self.api_secret else ""
        enabled = {"libjanus_http.so"} | ({"libjanus_websockets.so"} if self.websockets else set())
        (conf / "janus.jcfg").write_text(
            f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{LIB}/plugins"
    transports_folder = "{LIB}/transports"
    events_folder = "{LIB}/events"
    loggers_folder = "{LIB}/loggers"
    debug_level = 4
    session_timeout = 60
    {secret}
}}
certificates: {{ }}
media: {{ rtp_port_range = "40000-40999" }}
nat: {{
    nice_debug = false
    ice_enforce_list = "{self.netns.uplink.ns_if},{self.netns.operators.ns_if}"
}}
plugins: {{ disable = "{",".join(PLUGINS_OFF)}" }}
transports: {{ disable = "{",".join(t for t in TRANSPORTS if t not in enabled)}" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false }}
"""
        )
        (conf / "janus.transport.http.jcfg").write_text(
            f"""general: {{ json = "compact", base_path = "/janus", http = true, port = {HTTP_PORT}, https = false }}
admin: {{ admin_http = false, admin_https = false }}
cors: {{ }}
"""
        )
        (conf / "janus.transport.websockets.jcfg").write_text(
            f"""general: {{ json = "compact", ws = true, ws_port = {WS_PORT}, ws_ip = "127.0.0.1", wss = false }}
admin: {{ admin_ws = false, admin_wss = false }}
"""
        )
        (conf / "janus.plugin.videoroom.jcfg").write_text("general: { }\n")
        return conf

    def start(self) -> Janus:
        conf = self._write_config()
        self.starts += 1
        log = open(self.workdir / f"janus-{self.starts}.log", "wb")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns.name, "janus", "-C", str(conf / "janus.jcfg"), "-F", str(conf), "-o"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        alive = lambda: self.proc is not None and self.proc.poll() is None  # noqa: E731
        wait_for_port(self.netns.operators.ns_ip, HTTP_PORT, timeout=20, alive=alive)
        self.ready_at = time.monotonic()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> Janus:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("janus-*.log")))


class JanusViewer(FrameReader):
    """An operator at the centre: subscribes to a publisher of the room through Janus, decodes frames."""

    def __init__(self, janus: Janus, room: int) -> None:
        self.janus = janus
        self.room = room
        self.http = aiohttp.ClientSession()
        self.client = JanusVideoRoom(self.http, janus.operators_url, room, "operator", janus.secret, timeout_s=10)
        super().__init__(RTCPeerConnection(RTCConfiguration(iceServers=[])))

    async def publishers(self) -> dict[str, int]:
        """Display name -> feed id of the room's publishers (opens the viewer's session on first use)."""
        if self.client.session_id is None:
            await self.client.open()
        try:
            answer = await self.client.request({"request": "listparticipants", "room": self.room})
        except SignalingError as exc:
            if "426" in str(exc):  # no such room (yet): nobody publishes
                return {}
            raise
        participants = answer["plugindata"]["data"].get("participants", [])
        return {str(p.get("display")): int(p["id"]) for p in participants if p.get("publisher")}

    async def subscribe(self, feed: int) -> None:
        joined = await self.client.request(
            {"request": "join", "ptype": "subscriber", "room": self.room, "streams": [{"feed": feed}]}
        )
        offer = joined["jsep"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        with offered_host_addresses([self.janus.netns.operators.host_ip]):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.client.request({"request": "start"}, jsep={"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.unpublish()
        await self.close_reader()
        await self.http.close()


# -- fixtures (imported by the uplink tests) ----------------------------------------------------------

JANUS_SECRET = "janus-api-secret-for-tests"


@pytest.fixture
def netns() -> Any:
    """A fresh network namespace with the cabinet's and the operators' links; deleted at teardown."""
    ns = Netns().create()
    yield ns
    ns.delete()


@pytest.fixture
def janus(netns: Netns, tmp_path: Path) -> Any:
    """Janus in ``netns`` with ``api_secret = JANUS_SECRET``; its log is printed when a test failed."""
    server = Janus(netns, tmp_path / "janus", api_secret=JANUS_SECRET).start()
    yield server
    server.kill()
    print(f"----- janus log (last 4000 chars) -----\n{server.log_text()[-4000:]}")
