"""The ``webrtc:`` section of the configuration: ICE servers, host addresses, viewer limits, the transcode."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr, field_validator

from edgeagent.config_base import Strict
from edgeagent.urls import redact_url, refuse_credentials


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
