"""What a device is and which media profiles it offers: plain data, free of the SOAP client (so that an agent
without ONVIF cameras never imports zeep)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeagent.onvif.errors import OnvifError


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str


@dataclass(frozen=True, slots=True)
class MediaProfile:
    token: str
    name: str
    codec: str | None
    width: int | None
    height: int | None
    fps: float | None
    gop: int | None  # frames between keyframes (H264.GovLength)
    ptz: bool  # the profile has a PTZ configuration


def pick_profile(profiles: list[MediaProfile], wanted: int | str) -> MediaProfile:
    """The configured profile: by index, token or name."""
    if not profiles:
        raise OnvifError("the device has no media profile")
    if isinstance(wanted, int):
        if not 0 <= wanted < len(profiles):
            raise OnvifError(f"no media profile number {wanted} (the device has {len(profiles)})")
        return profiles[wanted]
    for profile in profiles:
        if wanted in (profile.token, profile.name):
            return profile
    names = ", ".join(f"{profile.token} ({profile.name})" for profile in profiles)
    raise OnvifError(f"no media profile {wanted!r} (the device has {names})")
