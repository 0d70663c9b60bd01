"""Figures from repetitions: summaries (median, min, max), ratios, percentiles, and how they print."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any


def summary(values: Iterable[float]) -> dict[str, Any]:
    items = [float(v) for v in values]
    if not items:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {
        "median": statistics.median(items),
        "min": min(items),
        "max": max(items),
        "n": len(items),
        "values": [round(v, 4) for v in items],
    }


def fmt(s: dict[str, Any] | float | None, digits: int = 1) -> str:
    """``median (min–max)`` of a summary, or a plain number."""
    if s is None:
        return "–"
    if isinstance(s, int | float):
        return f"{s:.{digits}f}"
    if s.get("median") is None:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b



def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation, or None for no values."""
    if not values:
        return None
    items = sorted(values)
    position = (len(items) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(items) - 1)
    return items[low] + (items[high] - items[low]) * (position - low)
