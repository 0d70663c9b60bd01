"""Typed configuration: read once at start, validated, with secrets kept out of the YAML.

Every part of the agent receives these objects; none reads files or the environment on its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TOPIC_PATTERN = r"^[A-Za-z0-9_/-]+$"


class ConfigError(Exception):
    """A configuration that cannot run: each line of ``lines`` names one field and its value."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(Strict):
    id: str = Field(pattern=NAME_PATTERN)
    state_dir: Path = Path("/var/lib/edgeagent")
    health_interval_s: float = Field(default=10, gt=0, le=3600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class TlsSection(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSection(Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=8883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsSection | None = None
    topic_prefix: str = Field(default="edgeagent", pattern=TOPIC_PATTERN)
    keepalive_s: int = Field(default=10, ge=2, le=3600)
    client_id: str | None = None


class HttpTls(Strict):
    cert_file: Path
    key_file: Path


class HttpSection(Strict):
    listen: str = "127.0.0.1:8080"
    token_file: Path | None = None
    tls: HttpTls | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SnapshotSection(Strict):
    interval_s: float = Field(default=10, gt=0, le=86400)
    width: int = Field(default=640, ge=16, le=7680)
    quality: int = Field(default=80, ge=1, le=100)


Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]


class PrivacyMask(Strict):
    """A rectangle as fractions of the picture; the field is written as a list [x, y, w, h]."""

    x: Fraction01
    y: Fraction01
    w: Fraction01
    h: Fraction01

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

    passthrough: bool = True  # H.264 goes to viewers as the camera sent it


class CameraSection(Strict):
    url: str
    password_file: Path | None = None
    password_env: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout_s: float = Field(default=5, ge=1, le=120)
    open_timeout_s: float = Field(default=10, ge=1, le=120)
    snapshot: SnapshotSection = SnapshotSection()
    privacy_masks: list[PrivacyMask] = []
    live: LiveSection = LiveSection()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps"):
            raise ValueError("must be an rtsp:// or rtsps:// URL")
        if not parts.hostname:
            raise ValueError("has no host")
        if parts.password is not None:
            raise ValueError("must not hold a password: use password_file or password_env")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value


class IceServer(Strict):
    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential_file: Path | None = None

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^(stun|stuns|turn|turns):", url):
                raise ValueError(f"ICE server URL must start with stun:, stuns:, turn: or turns: ({url!r})")
        return value


class WebRtcSection(Strict):
    ice_servers: list[IceServer] = []  # empty: no STUN or TURN server is ever contacted
    host_addresses: list[str] = []  # addresses to offer as host candidates; empty: all local ones
    max_viewers_per_camera: int = Field(default=8, ge=0, le=256)
    max_viewers_total: int = Field(default=16, ge=0, le=1024)
    connect_timeout_s: float = Field(default=15, gt=0, le=300)
    transcode_width: int = Field(default=1280, ge=64, le=7680)
    transcode_bitrate_kbps: int = Field(default=2500, ge=100, le=50000)
    # Pace of the cached GOP sent to a new viewer (its picture at once, then live); 0 sends it unpaced.
    catch_up_kbps: int = Field(default=25000, ge=0, le=1_000_000)

    @field_validator("host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        import ipaddress

        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"host address must be an IP address ({address!r})") from None
        return value


class Config(Strict):
    agent: AgentSection
    mqtt: MqttSection | None = None
    http: HttpSection = HttpSection()
    webrtc: WebRtcSection = WebRtcSection()
    cameras: dict[Annotated[str, Field(pattern=NAME_PATTERN)], CameraSection] = {}


# -- secrets ------------------------------------------------------------------------------------


def read_secret(file: Path | None, env: str | None, what: str) -> SecretStr | None:
    """A secret from a file (systemd credential) or an environment variable; never from the YAML.

    A relative file name is looked up in $CREDENTIALS_DIRECTORY when systemd set one.
    """
    if file is not None:
        path = file
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if not path.is_absolute() and credentials:
            path = Path(credentials) / path
        try:
            return SecretStr(path.read_text().rstrip("\r\n"))
        except OSError as exc:
            raise ConfigError([f"{what}: cannot read secret file {str(path)!r}: {exc.strerror}"]) from None
    if env is not None:
        if env not in os.environ:
            raise ConfigError([f"{what}: environment variable {env!r} is not set"])
        return SecretStr(os.environ[env])
    return None


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if user else f"***@{host}"))


def url_with_password(url: str, password: SecretStr | None) -> str:
    """The URL to hand to FFmpeg; only ever passed to the demuxer, never logged."""
    if password is None:
        return url
    from urllib.parse import quote

    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password.get_secret_value(), safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- loading ------------------------------------------------------------------------------------


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _short(value: object) -> str:
    text = repr(value)
    text = re.sub(r"(rtsps?://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
    return text if len(text) <= 80 else text[:77] + "..."


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def format_validation_error(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
        if item["type"] == "extra_forbidden":
            lines.append(f"{_location(loc)}: unknown key")
        elif item["type"] == "missing":
            lines.append(f"{_location(loc)}: required field is missing")
        else:
            lines.append(f"{_location(loc)}: {_clean_message(item['msg'])} (got {_short(item.get('input'))})")
    return lines


def parse_config(data: object) -> Config:
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): must be a mapping of sections (got {_short(data)})"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"{path}:{where}: {problem}"]) from None
    config = parse_config(data)
    check_secrets(config)
    return config


def check_secrets(config: Config) -> None:
    """Fail at start, not at first use, when a named secret cannot be read."""
    errors: list[str] = []
    checks: list[tuple[Path | None, str | None, str]] = []
    if config.mqtt:
        checks.append((config.mqtt.password_file, config.mqtt.password_env, "mqtt.password_file"))
        if config.mqtt.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                file = getattr(config.mqtt.tls, name)
                if file is not None and not file.is_file():
                    errors.append(f"mqtt.tls.{name}: no such file (got {str(file)!r})")
    for name, camera in config.cameras.items():
        checks.append((camera.password_file, camera.password_env, f"cameras.{name}.password_file"))
    for file, env, what in checks:
        try:
            read_secret(file, env, what)
        except ConfigError as exc:
            errors.extend(exc.lines)
    if errors:
        raise ConfigError(errors)
