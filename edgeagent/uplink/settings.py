"""The ``uplink`` section: which media server the agent publishes watched cameras to, and when."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from edgeagent.urls import refuse_credentials

# edgeagent.config imports this module, so its base class and name pattern cannot be imported from there.
CAMERA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class UplinkSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["janus", "whip"] = Field(
        default="janus", description="janus: a Janus VideoRoom through its HTTP API; whip: any WHIP endpoint"
    )
    url: str = Field(
        max_length=2048,
        description="janus: its HTTP API (ending in /janus); whip: the endpoint ({camera} is replaced by the name)",
        examples=["https://media.centre.example/janus"],
    )
    room: int = Field(default=1234, ge=1, le=2**53, description="janus: the VideoRoom (made, for H.264, if missing)")
    token_file: Path | None = Field(
        default=None,
        description="janus: file holding its api_secret; whip: file holding the bearer token",
        examples=["uplink-token"],
    )
    always: list[str] = Field(
        default=[], max_length=256, description="cameras published for as long as the agent runs", examples=[["north"]]
    )
    idle_s: float = Field(
        default=300,
        ge=1,
        le=86400,
        description="an on-demand uplink stops this long after the last start request (a start renews it)",
    )
    request_timeout_s: float = Field(default=10, ge=1, le=120, description="bound on every signaling request")
    max_cameras: int = Field(default=4, ge=1, le=256, description="cameras published at once (the uplink's budget)")
    _token: SecretStr | None = PrivateAttr(None)

    @property
    def token(self) -> SecretStr | None:
        """The secret read from token_file when the configuration was loaded."""
        return self._token

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        refuse_credentials(value, "token_file")
        return value

    @field_validator("always")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not CAMERA_NAME.match(name):
                raise ValueError(f"not a camera name ({name[:64]!r})")
        return value
