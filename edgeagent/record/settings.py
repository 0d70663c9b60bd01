"""The ``recording:`` section of the configuration: where video goes, how long it stays, how much disk.

Durations and sizes are kept as written (``30d``, ``10%``, ``500MB``), checked at load, and turned into
seconds and bytes where they are used.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|b|kb|mb|gb|tb)?\s*$", re.IGNORECASE)
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNITS_B = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``15m``, ``12h``, ``30d`` (or a plain number of seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS_S[match.group(2)]
    else:
        raise ValueError("must be a duration such as 90s, 15m, 12h or 30d")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def parse_size(value: object, total: int = 0) -> int:
    """Bytes from ``500MB``, ``2GB`` or a plain number; ``10%`` is a share of ``total`` (the file system)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = float(match.group(1)), (match.group(2) or "b").lower()
        if unit == "%":
            if not 0 <= number < 100:
                raise ValueError("a percentage must be between 0 and 100")
            return int(total * number / 100)
        return int(number * _UNITS_B[unit])
    raise ValueError("must be a size such as 10%, 500MB or 2GB")


def _as_text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class RecordingSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(default=Path("/var/lib/edgeagent/recordings"), description="where segments and the index go")
    segment_s: float = Field(default=60, ge=2, le=3600, description="seconds per file, cut on a keyframe")
    retain: str = Field(default="30d", description="delete video older than this: 90s, 15m, 12h, 30d")
    min_free: str = Field(default="10%", description="keep this much of the disk free: 10%, 500MB, 2GB")
    max_bytes: str | None = Field(default=None, description="most video kept, all cameras: 500MB, 2GB, 1TB")
    endurance_tbw: float | None = Field(
        default=None, gt=0, description="the card's rated terabytes written, for the flash wear figure"
    )
    retention_check_s: float = Field(default=5, gt=0, le=3600, description="how often retention looks")
    alarm_below_days: float = Field(default=3, ge=0, description="alarm when the disk holds fewer days of video")

    @field_validator("retain", mode="before")
    @classmethod
    def _retain(cls, value: object) -> object:
        parse_duration(value)
        return _as_text(value)

    @field_validator("min_free", "max_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if value is not None:
            parse_size(value)
        return _as_text(value)

    @property
    def retain_s(self) -> float:
        return parse_duration(self.retain)

    def min_free_bytes(self, total: int) -> int:
        return parse_size(self.min_free, total)

    def max_bytes_of(self, total: int) -> int | None:
        return None if self.max_bytes is None else parse_size(self.max_bytes, total)
