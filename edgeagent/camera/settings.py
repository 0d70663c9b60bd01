"""A camera's section of the configuration: its stream, snapshots, privacy masks and live view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from edgeagent.config_base import ENV_PATTERN, Strict
from edgeagent.onvif.settings import OnvifSection
from edgeagent.urls import check_port, refuse_credentials, split_checked_url


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
        parts = split_checked_url(value, ("rtsp", "rtsps"), "must be an rtsp:// or rtsps:// URL")
        refuse_credentials(value, "password_file or password_env")
        check_port(parts)
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
