"""Picture health: frozen, blank, blurred and moved pictures, found on the keyframes decoded for snapshots.

A camera can send packets at the right rate while its picture is useless. Each keyframe's luma plane is
brought down to a small picture (about 160 pixels wide) and compared with the previous keyframe (frozen),
with itself (blank), with the camera's own learned sharpness (blurred) and with a learned reference view
(moved). Every measure works on blocks and takes a robust statistic over them, so that burnt-in text (a
ticking clock), a passing vehicle or a change of light does not decide it; each alarm is raised after a few
bad keyframes in a row and cleared after a few good ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

PICTURE_ALARMS = ("frozen", "blank", "blurred", "moved")
ALARMS = ("offline", *PICTURE_ALARMS, "clock")  # the order alarms are listed in ("clock": ONVIF, unit.py)

EIGHT_BIT_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


@dataclass(frozen=True, slots=True)
class PictureLimits:
    """Thresholds, in grey levels (0-255) and fractions of the small picture's blocks."""

    width: int = 160  # the small picture's width, about
    block: int = 10  # block side, in small-picture pixels
    changed_level: float = 0.6  # a block changed when its mean absolute difference exceeds this
    frozen_changed_max: float = 0.2  # frozen: at most this much changed (room for burnt-in text)
    detail_level: float = 4.0  # a block has detail when its standard deviation exceeds this
    blank_detail_max: float = 0.2  # blank: less than this much has detail
    blur_ratio: float = 0.5  # blurred: sharpness under this fraction of the learned baseline
    moved_shift: float = 0.025  # moved: the view shifted by this fraction of the width or more
    moved_gain: float = 0.05  # ... and matching the reference this much better once the shift is undone
    moved_similarity: float = 0.2  # moved: or edges this unlike the reference's (turned away)
    learn_keyframes: int = 5  # keyframes with detail that make the baseline and the reference
    raise_after: tuple[tuple[str, int], ...] = (("frozen", 2), ("blank", 3), ("blurred", 3), ("moved", 3))
    clear_after: int = 3


@dataclass(frozen=True, slots=True)
class PictureHealth:
    """The picture alarms of one camera that are active, and since when."""

    active: list[str] = field(default_factory=list)
    since: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PictureMeasures:
    """One keyframe's figures (None where not measurable yet)."""

    changed: float | None  # fraction of blocks changed since the previous keyframe
    detail: float  # fraction of blocks with detail
    sharpness: float | None  # median Laplacian-to-contrast ratio of the detailed blocks
    sharpness_ratio: float | None  # sharpness over the learned baseline
    shift_px: float | None  # shift against the reference view, in pixels of a picture 80 wide
    similarity: float | None  # edge correlation with the reference view (1 = the same)
    aligned: float | None  # the same once the shift is undone


def luma_plane(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame's luma plane as a zero-copy view (a copy for formats other than 8-bit YUV)."""
    if frame.format.name not in EIGHT_BIT_FORMATS:
        return np.asarray(frame.to_ndarray(format="gray"), np.uint8)
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)  # type: ignore[call-overload]
    return rows[:, : plane.width]


def _block_means(image: npt.NDArray[Any], block: int) -> npt.NDArray[np.float32]:
    """The mean of each whole block of a 2-D picture (an area resize: far cheaper than numpy reductions)."""
    rows, cols = image.shape[0] // block, image.shape[1] // block
    whole = np.ascontiguousarray(image[: rows * block, : cols * block], np.float32)
    return np.asarray(cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA), np.float32)


class _Hysteresis:
    def __init__(self, raise_after: int, clear_after: int) -> None:
        self.raise_after, self.clear_after = raise_after, clear_after
        self.bad = self.good = 0
        self.since: datetime | None = None  # set while the alarm is active

    def update(self, bad: bool | None, at: datetime) -> None:
        if bad is None:  # not measurable on this keyframe: neither for nor against
            return
        if bad:
            self.bad, self.good = self.bad + 1, 0
            if self.since is None and self.bad >= self.raise_after:
                self.since = at
        else:
            self.bad, self.good = 0, self.good + 1
            if self.since is not None and self.good >= self.clear_after:
                self.since = None


class PictureWatch:
    """The picture alarms of one camera. ``observe`` runs in the snapshot worker thread; ``health`` and
    ``measures`` are immutable and may be read from any thread; ``reset`` may be called from any thread."""

    def __init__(self, limits: PictureLimits | None = None) -> None:
        self.limits = limits or PictureLimits()
        self._lock = threading.Lock()
        self._alarms = {
            name: _Hysteresis(dict(self.limits.raise_after)[name], self.limits.clear_after) for name in PICTURE_ALARMS
        }
        self.health = PictureHealth()
        self.measures: PictureMeasures | None = None
        self.checks = 0
        self.seconds_total = 0.0  # time spent in observe
        self._forget()

    def _forget(self) -> None:
        self._previous: npt.NDArray[np.int16] | None = None
        self._learning: list[tuple[float | None, npt.NDArray[np.float32]]] = []
        self._baseline: float | None = None
        self._reference: npt.NDArray[np.float32] | None = None
        self._window: npt.NDArray[np.float32] | None = None

    def reset(self) -> None:
        """Forget the learned sharpness and reference view (the camera was re-aimed or refocused on
        purpose): ``blurred`` and ``moved`` clear at once and are learned again from the next keyframes."""
        with self._lock:
            self._forget()
            for name in ("blurred", "moved"):
                self._alarms[name] = _Hysteresis(self._alarms[name].raise_after, self.limits.clear_after)
            self._publish()

    def observe(self, luma: npt.NDArray[np.uint8], at: datetime | None = None) -> PictureHealth:
        """Check one keyframe's luma plane (any size, any row stride) and return the alarms after it."""
        started = time.perf_counter()
        at = at or datetime.now(UTC)
        with self._lock:
            self._observe(luma, at)
            self._publish()
        self.checks += 1
        self.seconds_total += time.perf_counter() - started
        return self.health

    def _observe(self, luma: npt.NDArray[np.uint8], at: datetime) -> None:
        lim = self.limits
        if min(luma.shape) < 4 * lim.block:
            return  # not a camera picture: nothing to measure
        factor = max(1, luma.shape[1] // lim.width)
        size = (luma.shape[1] // factor, luma.shape[0] // factor)
        # Averaging every pixel of a large picture costs more than everything else together: average a
        # grid of about 4 x 4 pixels a small pixel instead (enough to calm the noise).
        step = max(1, factor // 4)
        grid = np.ascontiguousarray(luma[::step, ::step]) if step > 1 else luma
        small = cv2.resize(grid, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        # Frozen compares samples, not averages: averaging would smooth away the sensor noise that tells
        # a live still scene from a hung one.
        sampled = luma[factor // 2 :: factor, factor // 2 :: factor][: size[1], : size[0]].astype(np.int16)
        if self._previous is not None and self._previous.shape != sampled.shape:
            self._forget()  # a new resolution: nothing learned applies

        block_mean = _block_means(small, lim.block)
        block_std = np.sqrt(np.maximum(_block_means(small * small, lim.block) - block_mean * block_mean, 0.0))
        detailed = block_std > lim.detail_level
        detail = float(detailed.mean())
        blank = detail < lim.blank_detail_max

        changed = None
        if self._previous is not None:
            mad = _block_means(np.abs(sampled - self._previous), lim.block)
            changed = float((mad > lim.changed_level).mean())
        self._previous = sampled

        sharpness = None
        if detailed.sum() >= 4:
            # Edge steepness over edge contrast, per block: the level of light cancels out. Sensor noise
            # adds the same Laplacian everywhere; the flat blocks measure it and it is taken off.
            laplacian = _block_means(np.abs(cv2.Laplacian(small, cv2.CV_32F)), lim.block)
            noise = float(np.median(laplacian[~detailed])) if not detailed.all() else 0.0
            ratio = np.maximum(laplacian[detailed] - noise, 0.0) / block_std[detailed]
            sharpness = float(np.median(ratio))
        coarse = np.asarray(cv2.resize(small, (size[0] // 2, size[1] // 2), interpolation=cv2.INTER_AREA), np.float32)
        edges = self._edges(coarse)

        if self._reference is None and not blank:
            self._learning.append((sharpness, edges))
            if len(self._learning) >= lim.learn_keyframes:
                values = [s for s, _ in self._learning if s is not None]
                self._baseline = float(np.median(values)) if values else None
                self._reference = np.mean([e for _, e in self._learning], axis=0).astype(np.float32)
                self._learning = []

        sharpness_ratio = shift_px = similarity = aligned = None
        moved = blurred = None
        if self._reference is not None and not blank:
            if self._baseline and sharpness is not None:
                sharpness_ratio = sharpness / self._baseline
                blurred = sharpness_ratio < lim.blur_ratio
            shift_px, similarity, aligned = self._compare(edges)
            shifted = shift_px >= lim.moved_shift * edges.shape[1] and aligned >= similarity + lim.moved_gain
            moved = shifted or similarity < lim.moved_similarity

        frozen = None if changed is None or blank else changed <= lim.frozen_changed_max
        for name, bad in (("frozen", frozen), ("blank", blank), ("blurred", blurred), ("moved", moved)):
            self._alarms[name].update(bad, at)
        self.measures = PictureMeasures(changed, detail, sharpness, sharpness_ratio, shift_px, similarity, aligned)

    @staticmethod
    def _edges(coarse: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Gradient magnitude of the slightly smoothed picture, scaled to its own mean: the structure of
        the view, little changed by noise, focus or the level of light."""
        smooth = cv2.GaussianBlur(coarse, (0, 0), 1.0)
        magnitude = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
        return np.asarray(magnitude / max(float(magnitude.mean()), 1e-3), np.float32)

    def _compare(self, edges: npt.NDArray[np.float32]) -> tuple[float, float, float]:
        """(shift in pixels, correlation as it stands, correlation once the shift is undone) against the
        reference. A real shift correlates much better undone; a blurred or busy picture's spurious phase
        peak does not."""
        reference = self._reference
        assert reference is not None
        window = self._window
        if window is None or window.shape != edges.shape:
            window = self._window = np.asarray(
                cv2.createHanningWindow((edges.shape[1], edges.shape[0]), cv2.CV_32F), np.float32
            )
        # Windowed copies: OpenCV 5.0's phaseCorrelate applies the window in place, into its inputs.
        (dx, dy), _response = cv2.phaseCorrelate(reference * window, edges * window)
        height, width = edges.shape
        mx, my = int(np.ceil(abs(dx))), int(np.ceil(abs(dy)))
        if mx >= width // 2 or my >= height // 2:
            aligned = -1.0  # no overlap worth the name
        else:
            undo = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            moved = np.asarray(cv2.warpAffine(reference, undo, (width, height), flags=cv2.INTER_LINEAR), np.float32)
            aligned = _correlation(moved[my : height - my, mx : width - mx], edges[my : height - my, mx : width - mx])
        return float(np.hypot(dx, dy)), _correlation(reference, edges), aligned

    def _publish(self) -> None:
        since = {name: alarm.since for name, alarm in self._alarms.items() if alarm.since is not None}
        self.health = PictureHealth([name for name in PICTURE_ALARMS if name in since], since)


def _correlation(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / max(float(np.sqrt((a * a).sum() * (b * b).sum())), 1e-6))


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alarms_document(picture: PictureHealth, offline_since: datetime | None) -> dict[str, Any]:
    """The camera's alarms as published: ``{"active": [names], "since": {name: RFC 3339}}``, ``offline``
    first when the camera is offline (the picture alarms then describe the last picture seen)."""
    since = dict(picture.since)
    if offline_since is not None:
        since["offline"] = offline_since
    active = [name for name in ALARMS if name in since]
    return {"active": active, "since": {name: rfc3339(since[name]) for name in active}}


class CameraAlarms:
    """Merges a camera's online state with its picture alarms and says when the document changed."""

    def __init__(self) -> None:
        self.offline_since: datetime | None = None
        self.document: dict[str, Any] = {"active": [], "since": {}}

    def update(self, online: bool, picture: PictureHealth, at: datetime | None = None) -> bool:
        """Take the current state; True when the document changed (publish it then)."""
        if online:
            self.offline_since = None
        elif self.offline_since is None:
            self.offline_since = at or datetime.now(UTC)
        document = alarms_document(picture, self.offline_since)
        changed = document != self.document
        self.document = document
        return changed
