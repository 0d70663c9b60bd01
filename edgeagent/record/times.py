"""RFC 3339 times as the recordings API and CLI take and give them: always with a time zone, UTC out."""

from __future__ import annotations

import re
from datetime import UTC, datetime

MAX_TIME_CHARS = 40
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


class TimeRangeError(ValueError):
    """A time or range a client got wrong; ``status`` is the HTTP answer (400, or 413 for too long)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a ``Z``: ``2026-12-01T08:00:05.500Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None, name: str) -> datetime:
    if value is None or value == "":
        raise TimeRangeError(f"{name} is required (RFC 3339, e.g. 2026-12-01T08:00:00Z)")
    if re.search(r" \d{2}:\d{2}$", value):
        value = value[:-6] + "+" + value[-5:]  # an unencoded "+" in a query string arrives as a space
    if len(value) > MAX_TIME_CHARS or not RFC3339.match(value):
        raise TimeRangeError(f"{name} is not an RFC 3339 time with a time zone")
    text = value.upper().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Python keeps microseconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TimeRangeError(f"{name} is not a valid time") from None
    if not 2000 <= moment.year <= 2200:
        raise TimeRangeError(f"{name} is out of range")
    return moment.astimezone(UTC)


def parse_range(start: str | None, end: str | None, max_s: float) -> tuple[datetime, datetime]:
    first, last = parse_time(start, "start"), parse_time(end, "end")
    if last <= first:
        raise TimeRangeError("end must be after start")
    if (last - first).total_seconds() > max_s:
        raise TimeRangeError(f"the range is longer than {max_s:g} s", status=413)
    return first, last
