"""Typed configuration: read once at start, validated, with secrets kept out of the YAML.

Every part of the agent receives these objects; none reads files or the environment on its own. The
secrets a section names (``*_file``, ``*_env``) are read when the file is loaded
(:mod:`edgeagent.configfile`) and held by the section as ``SecretStr`` (``camera.password``,
``mqtt.password``, ``http.token``, ``ice_server.credential``). Every field says what it is: the README's
reference and ``edgeagent config-schema`` are generated from these descriptions.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from edgeagent.offload.settings import OffloadSection
from edgeagent.record.settings import RecordingSection
from edgeagent.secretfile import SecretProblem, read_secret_env, read_secret_file
from edgeagent.uplink.settings import UplinkSection
from edgeagent.urls import check_host_name, redact_url, refuse_credentials, split_host_port, url_with_password

__all__ = ["redact_url", "url_with_password"]  # kept here for older callers; they live in edgeagent.urls

from edgeagent.onvif.settings import OnvifSection

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TOPIC_PATTERN = r"^[A-Za-z0-9_/-]+$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
HOSTS_TEXT = "or: a broker cluster, [a.example:8883, b.example:8883]; the agent stays on one while it works"


class ConfigError(Exception):
    """A configuration that cannot run: each line of ``lines`` names one field and its value."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:  # a path with one fails deep inside the agent
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not hold a NUL character")
        return value


class AgentSection(Strict):
    id: str = Field(pattern=NAME_PATTERN, description="required; part of every MQTT topic", examples=["cabinet-17"])
    state_dir: Path = Field(
        default=Path("/var/lib/edgeagent"), description="the generated HTTP token lives here; its disk free is reported"
    )
    health_interval_s: float = Field(default=10, gt=0, le=3600, description="how often health is published")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="lowest level logged")


class TlsSection(Strict):
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) to check the broker's", examples=["/etc/edgeagent/ca.pem"]
    )
    cert_file: Path | None = Field(
        default=None, description="client certificate, with key_file", examples=["/etc/edgeagent/client.pem"]
    )
    key_file: Path | None = Field(
        default=None, description="its private key (not readable by others)", examples=["/etc/edgeagent/client.key"]
    )
    insecure_skip_verify: bool = Field(default=False, description="accept any broker certificate (tests only)")

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSection(Strict):
    host: str | None = Field(None, max_length=253, description="the broker (or hosts)", examples=["broker.example"])
    port: int = Field(default=8883, ge=1, le=65535, description="the broker's port (and the default of hosts)")
    hosts: list[str] | None = Field(None, min_length=1, max_length=16, description=HOSTS_TEXT)
    username: str | None = Field(default=None, max_length=256, description="user at the broker", examples=["edge17"])
    password_file: Path | None = Field(default=None, description="file holding the broker password", examples=["mqtt"])
    password_env: str | None = Field(default=None, pattern=ENV_PATTERN, description="or: a variable holding it")
    tls: TlsSection | None = Field(default=None, description="optional; omit for a plain connection (tests, the demo)")
    topic_prefix: str = Field(default="edgeagent", pattern=TOPIC_PATTERN, description="first level of every topic")
    keepalive_s: int = Field(
        default=10, ge=2, le=3600, description="the broker sends the last will about 1.5 x this after the agent hangs"
    )
    client_id: str | None = Field(default=None, max_length=128, description="default edgeagent-<agent.id>")
    _password: SecretStr | None = PrivateAttr(None)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host_name(value)

    @model_validator(mode="after")
    def _one_form(self) -> MqttSection:
        if (self.host is None) == (self.hosts is None):
            raise ValueError("give host (with port) or hosts, not both" if self.host else "host (or hosts) is required")
        for entry in self.hosts or []:
            split_host_port(entry, self.port)  # a ValueError names the bad one
        return self

    @property
    def brokers(self) -> list[tuple[str, int]]:
        """Every broker as (host, port), in the order they are tried."""
        return [split_host_port(entry, self.port) for entry in self.hosts or [f"[{self.host}]"]]

    @property
    def password(self) -> SecretStr | None:
        """The broker password, read from password_file or password_env at load."""
        return self._password


class HttpTls(Strict):
    cert_file: Path = Field(description="server certificate (chain)", examples=["/etc/edgeagent/http.pem"])
    key_file: Path = Field(
        description="its private key (not readable by other users)", examples=["/etc/edgeagent/http.key"]
    )


class HttpSection(Strict):
    listen: str = Field(
        default="127.0.0.1:8080", description="HOST:PORT; plain HTTP beyond loopback gets a warning: set tls"
    )
    token_file: Path | None = Field(
        default=None,
        description=(
            "bearer token (>= 16 characters, >= 8 different ones); without it a random token is made once and "
            "stored 0600 as <state_dir>/http-token (its path is logged, never it)"
        ),
        examples=["http-token"],
    )
    tls: HttpTls | None = Field(default=None, description="optional: serve HTTPS")
    _token: SecretStr | None = PrivateAttr(None)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        check_host_name(host)
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def token(self) -> SecretStr | None:
        """The token read from token_file at load; None when the agent makes its own."""
        return self._token


class SnapshotSection(Strict):
    interval_s: float = Field(default=10, gt=0, le=86400, description="a fresh snapshot this often")
    width: int = Field(default=640, ge=16, le=7680, description="scaled to this width (height keeps the aspect)")
    quality: int = Field(default=80, ge=1, le=100, description="JPEG quality")


Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]


class PrivacyMask(Strict):
    """A rectangle as fractions of the picture; the field is written as a list [x, y, w, h]."""

    x: Fraction01 = Field(description="left edge, fraction of the width")
    y: Fraction01 = Field(description="top edge, fraction of the height")
    w: Fraction01 = Field(description="width, fraction of the picture's")
    h: Fraction01 = Field(description="height, fraction of the picture's")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if len(value) != 4:
                raise ValueError("a mask is [x, y, w, h]")
            return dict(zip("xywh", value, strict=True))
        return value

    @model_validator(mode="after")
    def _inside(self) -> PrivacyMask:
        if self.w <= 0 or self.h <= 0:
            raise ValueError("mask width and height must be > 0")
        if self.x + self.w > 1.0 + 1e-9 or self.y + self.h > 1.0 + 1e-9:
            raise ValueError("mask must lie inside the picture (x + w <= 1, y + h <= 1)")
        return self


class LiveSection(Strict):
    """Settings for every camera's live view."""

    passthrough: bool = Field(
        default=True, description="H.264 goes to viewers as the camera sent it; false: always the shared transcode"
    )


class CameraSection(Strict):
    url: str = Field(
        default="",
        max_length=2048,
        description="rtsp:// or rtsps://; never holds a password (user:pw@, ?password=, ...); may be left out"
        " with onvif: the stream URI then comes from GetStreamUri",
        examples=["rtsp://viewer@10.0.0.21:554/stream1"],
    )
    onvif: OnvifSection | None = Field(default=None, description="reach the camera through ONVIF")
    password_file: Path | None = Field(default=None, description="file holding its password", examples=["camera-north"])
    password_env: str | None = Field(default=None, pattern=ENV_PATTERN, description="or: a variable holding it")
    transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP transport: tcp | udp (rtsps:// needs tcp: the media goes through its TLS)"
    )
    stall_timeout_s: float = Field(
        default=5, ge=1, le=120, description="no packet for this long: the camera is offline, reconnect"
    )
    open_timeout_s: float = Field(default=10, ge=1, le=120, description="time allowed to open the stream")
    allow_basic_auth: bool = Field(
        default=False, description="rtsp://: send the password to a camera offering only Basic (rtsps://: always)"
    )
    tls_ca_file: Path | None = Field(
        default=None, description="rtsps://: CA the camera's certificate must chain to (default: the system's)"
    )
    tls_fingerprint_sha256: str | None = Field(
        default=None, pattern=r"^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$", description="rtsps://: pinned cert SHA-256"
    )
    snapshot: SnapshotSection = Field(default=SnapshotSection(), description="JPEG snapshots")
    privacy_masks: list[PrivacyMask] = Field(
        default=[],
        max_length=64,
        description="[x, y, w, h] as fractions of the picture; applied to snapshots and to the live picture",
        examples=[[[0.0, 0.0, 0.25, 0.2]]],
    )
    live: LiveSection = Field(default=LiveSection(), description="live view")
    record: bool = Field(default=True, description="recorded when a recording section exists; false leaves it out")
    _password: SecretStr | None = PrivateAttr(None)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value == "":
            return value  # left out: onvif gives it
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps"):
            raise ValueError("must be an rtsp:// or rtsps:// URL")
        if not parts.hostname:
            raise ValueError("has no host")
        refuse_credentials(value, "password_file or password_env")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @property
    def password(self) -> SecretStr | None:
        """The camera password, read from password_file or password_env at load."""
        return self._password

    @model_validator(mode="after")
    def _tls_needs_rtsps(self) -> CameraSection:
        if (self.tls_ca_file or self.tls_fingerprint_sha256) and not self.url.startswith("rtsps://"):
            raise ValueError("tls_ca_file and tls_fingerprint_sha256 need an rtsps:// url")
        if self.url.startswith("rtsps://") and self.transport != "tcp":
            # UDP media would bypass the agent's TLS relay (camera/tls_relay.py): unencrypted, unverified.
            raise ValueError("transport: udp cannot carry rtsps:// (the media would leave TLS); use tcp")
        return self

    @model_validator(mode="after")
    def _stream(self) -> CameraSection:
        if not self.url and self.onvif is None:
            raise ValueError("needs a url, or an onvif section to ask the stream URI from")
        return self


class IceServer(Strict):
    urls: list[str] = Field(
        min_length=1, max_length=8, description="stun:, stuns:, turn: or turns: URLs", examples=[["turn:turn.example"]]
    )
    username: str | None = Field(default=None, max_length=256, description="TURN user name")
    credential_file: Path | None = Field(default=None, description="file holding the TURN credential")
    _credential: SecretStr | None = PrivateAttr(None)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^(stun|stuns|turn|turns):", url) or len(url) > 512:
                raise ValueError(f"ICE server URL must start with stun:, stuns:, turn: or turns: ({redact_url(url)!r})")
            refuse_credentials(url, "username and credential_file")
        return value

    @property
    def credential(self) -> SecretStr | None:
        """The TURN credential, read from credential_file at load."""
        return self._credential


class WebRtcSection(Strict):
    ice_servers: list[IceServer] = Field(
        default=[], max_length=8, description="none by default: nothing is contacted that you did not configure"
    )
    host_addresses: list[str] = Field(
        default=[], max_length=64, description="addresses offered as host candidates; empty: the machine's own"
    )
    max_viewers_per_camera: int = Field(default=8, ge=0, le=256, description="viewers of one camera at once")
    max_viewers_total: int = Field(default=16, ge=0, le=1024, description="viewers of all cameras at once")
    connect_timeout_s: float = Field(default=15, gt=0, le=300, description="sessions that never connect are closed")
    transcode_width: int = Field(
        default=1280, ge=64, le=7680, description="for H.265 cameras and masked cameras (shared transcode)"
    )
    transcode_bitrate_kbps: int = Field(default=2500, ge=100, le=50000, description="bitrate of the shared transcode")
    catch_up_kbps: int = Field(
        default=25000, ge=0, le=1_000_000, description="how fast a new viewer gets the cached GOP; 0 sends it unpaced"
    )

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"host address must be an IP address ({address[:60]!r})") from None
        return value


class Config(Strict):
    agent: AgentSection = Field(description="this agent")
    mqtt: MqttSection | None = Field(default=None, description="optional; without it nothing is published over MQTT")
    http: HttpSection = Field(default=HttpSection(), description="the HTTP API, the operator page and WHEP")
    webrtc: WebRtcSection = Field(default=WebRtcSection(), description="the live view")
    cameras: dict[Annotated[str, Field(pattern=NAME_PATTERN)], CameraSection] = Field(
        default={}, max_length=256, description="by name", json_schema_extra={"x-example-key": "north"}
    )
    uplink: UplinkSection | None = Field(
        default=None, description="optional: watched cameras go once to the centre's media server, which fans out"
    )
    recording: RecordingSection | None = Field(default=None, description="optional; without it nothing is recorded")
    offload: OffloadSection | None = Field(
        default=None, description="optional, with recording: exports, locked ranges (and segments) to S3 storage"
    )
    _secrets_resolved: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _uplink_cameras(self) -> Config:
        unknown = sorted(set(self.uplink.always) - set(self.cameras)) if self.uplink else []
        if unknown:
            raise ValueError(f"uplink.always names no such camera: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _offload_needs_recording(self) -> Config:
        if self.offload is not None and self.recording is None:
            raise ValueError("offload needs a recording section (it sends recordings)")
        return self

    @property
    def secrets_resolved(self) -> bool:
        """True once every named secret was read into its section (a file loaded by configfile)."""
        return self._secrets_resolved


# -- kept for callers from before secrets were resolved at load --------------------------------------


def read_secret(file: Path | None, env: str | None, what: str) -> SecretStr | None:
    """A secret from a file (systemd credential) or an environment variable; never from the YAML.

    Prefer the value the loaded section holds (``camera.password``, ...): it was read once, at load.
    """
    try:
        if file is not None:
            return read_secret_file(file)
        if env is not None:
            return read_secret_env(env, allow_empty=True)  # as before: an empty variable is an empty secret
    except SecretProblem as exc:
        raise ConfigError([f"{what}: {exc}"]) from None
    return None


def parse_config(data: object) -> Config:
    """:func:`edgeagent.configfile.parse_config` (imported late: that module imports this one)."""
    from edgeagent.configfile import parse_config as parse

    return parse(data)


def load_config(path: Path) -> Config:
    """The configuration in ``path``, every check applied: :func:`edgeagent.configfile.check_config`."""
    from edgeagent.configfile import check_config

    return check_config(path).config
