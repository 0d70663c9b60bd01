"""The ``recording:`` section of the configuration: where video goes, how long it stays, how much disk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


class DiskSize(BaseModel):
    """Bytes, or a share of the file system (``percent`` set)."""

    model_config = ConfigDict(frozen=True)
    bytes: int | None = None
    percent: float | None = None

    def of(self, total_bytes: int) -> int:
        return self.bytes if self.bytes is not None else int(total_bytes * (self.percent or 0) / 100)


def parse_size(value: object) -> DiskSize:
    if isinstance(value, DiskSize):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return DiskSize(bytes=value)
    if isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = float(match.group(1)), (match.group(2) or "b").lower()
        if unit == "%":
            if not 0 <= number < 100:
                raise ValueError("a percentage must be between 0 and 100")
            return DiskSize(percent=number)
        return DiskSize(bytes=int(number * _UNITS_B[unit]))
    raise ValueError("must be a size such as 10%, 500MB or 2GB")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[DiskSize, BeforeValidator(parse_size)]


class RecordingSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Path("/var/lib/edgeagent/recordings")
    segment_s: float = Field(default=60, ge=2, le=3600)
    retain: Duration = 30 * 86400.0
    min_free: Size = DiskSize(percent=10)
    max_bytes: Size | None = None
    endurance_tbw: float | None = Field(default=None, gt=0)
    retention_check_s: float = Field(default=5, gt=0, le=3600)
    alarm_below_days: float = Field(default=3, ge=0)  # alarm when the disk holds fewer days than this
