"""The ``onvif:`` block of a camera: where its device service is and which media profile to stream."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeagent.urls import check_port, split_checked_url

DEVICE_PATH = "/onvif/device_service"


class OnvifSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(
        min_length=1,
        max_length=256,
        description="the device service: HOST[:PORT][/path] or an http(s) URL; without a path /onvif/device_service",
        examples=["10.0.0.21:80"],
    )
    username: str | None = Field(default=None, max_length=128, description="ONVIF user (password: password_file)",
                                 examples=["viewer"])  # fmt: skip
    profile: int | str = Field(default=0, description="index, token or name of the media profile")
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="every ONVIF call ends within this")
    events: bool = Field(default=True, description="motion and tamper events by PullPoint, where the camera has them")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        url = value if "://" in value else f"http://{value}"
        parts = split_checked_url(url, ("http", "https"), "must be HOST[:PORT][/path] or an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials: use onvif.username and password_file")
        check_port(parts)
        return value

    @property
    def device_url(self) -> str:
        return device_url(self.address)


def device_url(address: str) -> str:
    """The device service URL for an address as the configuration or ``--probe`` gives it."""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    path = parts.path if parts.path not in ("", "/") else DEVICE_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"
