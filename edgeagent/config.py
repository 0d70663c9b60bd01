"""Typed configuration: read once at start, validated, with secrets kept out of the YAML.

Every part of the agent receives these objects; none reads files or the environment on its own. The
secrets a section names (``*_file``, ``*_env``) are read when the file is loaded
(:mod:`edgeagent.configfile`) and held by the section as ``SecretStr`` (``camera.password``,
``mqtt.password``, ``http.token``, ``ice_server.credential``). Every field says what it is: the README's
reference and ``edgeagent config-schema`` are generated from these descriptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from edgeagent.camera.settings import CameraSection, LiveSection, PrivacyMask, SnapshotSection
from edgeagent.config_base import ENV_PATTERN, NAME_PATTERN, TOPIC_PATTERN, ConfigError, Strict
from edgeagent.live.settings import IceServer, WebRtcSection
from edgeagent.offload.settings import OffloadSection
from edgeagent.publish.settings import HttpSection, HttpTls, MqttSection, TlsSection
from edgeagent.record.settings import RecordingSection
from edgeagent.secretfile import SecretProblem, read_secret_env, read_secret_file
from edgeagent.uplink.settings import UplinkSection
from edgeagent.urls import redact_url, url_with_password

# The sections live beside the code that reads them; every name stays importable from here.
__all__ = [
    "ENV_PATTERN",
    "NAME_PATTERN",
    "TOPIC_PATTERN",
    "AgentSection",
    "CameraSection",
    "Config",
    "ConfigError",
    "HttpSection",
    "HttpTls",
    "IceServer",
    "LiveSection",
    "MqttSection",
    "PrivacyMask",
    "SnapshotSection",
    "Strict",
    "TlsSection",
    "WebRtcSection",
    "load_config",
    "parse_config",
    "read_secret",
    "redact_url",  # kept here for older callers; it lives in edgeagent.urls
    "url_with_password",
]


class AgentSection(Strict):
    id: str = Field(pattern=NAME_PATTERN, description="required; part of every MQTT topic", examples=["cabinet-17"])
    state_dir: Path = Field(
        default=Path("/var/lib/edgeagent"), description="the generated HTTP token lives here; its disk free is reported"
    )
    health_interval_s: float = Field(default=10, gt=0, le=3600, description="how often health is published")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="lowest level logged")


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
