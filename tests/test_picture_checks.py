"""Picture health checks on synthetic luma pictures: a still landscape, moving vehicles, sensor noise, a
ticking clock overlay, changing light, and each fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import av
import cv2
import numpy as np
import pytest

from edgeagent.media.picture import (
    CameraAlarms,
    PictureHealth,
    PictureLimits,
    PictureWatch,
    alarms_document,
    luma_plane,
)

WIDTH, HEIGHT = 320, 180
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Road:
    """A roadside view: textured landscape (larger than the picture, so that the view can turn), vehicles
    that move with time, a clock burnt in after the optics, sensor noise after the lens."""

    def __init__(self, seed: int = 1, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        rng = np.random.default_rng(seed)
        big = np.full((height * 3 // 2, width * 3 // 2), 110.0, np.float32)
        for _ in range(40):  # buildings, signs, trees: rectangles of every size and grey
            x, y = int(rng.integers(0, big.shape[1] - 20)), int(rng.integers(0, big.shape[0] - 20))
            w, h = int(rng.integers(8, width // 3)), int(rng.integers(8, height // 3))
            big[y : y + h, x : x + w] = float(rng.integers(20, 235))
        big[int(big.shape[0] * 0.6) : int(big.shape[0] * 0.8)] = 70.0  # the road
        self.landscape = big
        self.rng = np.random.default_rng(seed + 1)

    def picture(
        self,
        t: float,
        *,
        shift: tuple[int, int] = (0, 0),
        light: float = 1.0,
        noise: float = 3.0,
        blur: float = 0.0,
        vehicles: bool = True,
        black: bool = False,
        truck: bool = False,
        clock: bool = True,
    ) -> np.ndarray:
        ox, oy = self.width // 4 + shift[0], self.height // 4 + shift[1]
        image = self.landscape[oy : oy + self.height, ox : ox + self.width].copy()
        if vehicles:
            for i, speed in enumerate((37.0, -23.0, 51.0)):
                x = int((speed * t * self.width / 320) % (self.width + 60)) - 60
                y = int(self.height * (0.45 + 0.12 * i))
                image[y : y + self.height // 10, max(0, x) : max(0, x + self.width // 8)] = 230.0 - 90 * i
        if truck:  # a lorry close to the camera: a third of the picture
            image[self.height // 3 :, self.width // 4 : self.width * 3 // 4] = 200.0
        if black:
            image[:] = 8.0
        image *= light
        if blur:
            image = cv2.GaussianBlur(image, (0, 0), blur)
        image += self.rng.normal(0.0, noise, image.shape).astype(np.float32)
        out = np.clip(image, 0, 255).astype(np.uint8)
        if clock:
            text = f"2026-12-01 08:{int(t) // 60 % 60:02d}:{int(t) % 60:02d}.{int(t * 10) % 10}"
            scale = self.width / 640
            cv2.putText(out, text, (4, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2)
        return out


def watch_learned(road: Road, keyframes: int = 8) -> tuple[PictureWatch, float]:
    """A watch that has learned the road's normal view from a GOP of 2 s; returns it and the time."""
    watch = PictureWatch()
    t = 0.0
    for _ in range(keyframes):
        health = watch.observe(road.picture(t), T0 + timedelta(seconds=t))
        assert health.active == []
        t += 2.0
    return watch, t


def run(watch: PictureWatch, pictures: list[np.ndarray], t: float) -> tuple[list[list[str]], float]:
    seen = []
    for picture in pictures:
        seen.append(watch.observe(picture, T0 + timedelta(seconds=t)).active)
        t += 2.0
    return seen, t


def test_a_normal_scene_with_traffic_light_changes_and_night_noise_raises_nothing() -> None:
    road = Road()
    watch, t = watch_learned(road)
    for i in range(300):
        light = 1.0 + 0.4 * np.sin(i / 40)  # dawn and dusk
        noise = 3.0 if i < 200 else 7.0  # night: more sensor noise, less light
        light = light if i < 200 else 0.45
        health = watch.observe(road.picture(t, light=light, noise=noise, truck=i % 50 == 7), T0)
        assert health.active == [], (i, watch.measures)
        t += 2.0


def test_frozen_behind_a_ticking_clock_is_raised_within_three_keyframes_and_cleared() -> None:
    road = Road()
    watch, t = watch_learned(road)
    still = road.picture(t, clock=False)
    frozen = []
    for _ in range(5):  # the sensor hung: the same picture, re-encoded, under a clock that ticks
        picture = still.copy()
        cv2.putText(picture, f"08:00:{int(t) % 60:02d}", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
        frozen.append(picture)
        t += 2.0
    seen, t = run(watch, frozen, t)
    assert "frozen" in seen[2], seen
    assert watch.health.since["frozen"] <= T0 + timedelta(seconds=t)
    assert all(alarm == "frozen" for active in seen for alarm in active), seen
    seen, t = run(watch, [road.picture(t + 2 * i) for i in range(4)], t)
    assert seen[-1] == [], seen


@pytest.mark.parametrize(
    ("fault", "alarm", "changes"),
    [
        ("black", "blank", {"black": True}),
        ("blur", "blurred", {"blur": 4.0}),
        ("shift", "moved", {"shift": (WIDTH // 8, HEIGHT // 12)}),
        ("small shift", "moved", {"shift": (WIDTH // 25, 0)}),
    ],
)
def test_each_fault_is_raised_within_three_keyframes_alone_and_cleared_after(
    fault: str, alarm: str, changes: dict[str, object]
) -> None:
    road = Road()
    watch, t = watch_learned(road)
    seen, t = run(watch, [road.picture(t + 2 * i, **changes) for i in range(6)], t)  # type: ignore[arg-type]
    assert alarm in seen[2], (fault, seen, watch.measures)
    assert {a for active in seen for a in active} == {alarm}, (fault, seen)
    since = watch.health.since[alarm]
    seen, t = run(watch, [road.picture(t + 2 * i) for i in range(5)], t)
    assert alarm in seen[0] and seen[-1] == [], (fault, seen)  # held until enough good keyframes
    assert since == T0 + timedelta(seconds=16 + 4)  # the third bad keyframe


def test_one_odd_keyframe_of_each_kind_raises_nothing() -> None:
    road = Road()
    watch, t = watch_learned(road)
    odd = [
        {"black": True},
        {"blur": 4.0},
        {"shift": (WIDTH // 8, 0)},
        {"truck": True},
        {"light": 0.3},
    ]
    for changes in odd:
        pictures = [road.picture(t, **changes), road.picture(t + 2), road.picture(t + 4)]  # type: ignore[arg-type]
        seen, t = run(watch, pictures, t)
        assert seen == [[], [], []], (changes, seen)
    repeated = road.picture(t)
    seen, t = run(watch, [repeated, repeated.copy(), road.picture(t + 4)], t)  # one unchanged pair
    assert seen == [[], [], []], seen


def test_reset_after_a_deliberate_re_aim_clears_moved_and_learns_the_new_view() -> None:
    road = Road()
    watch, t = watch_learned(road)
    aimed = {"shift": (WIDTH // 6, HEIGHT // 10)}
    seen, t = run(watch, [road.picture(t + 2 * i, **aimed) for i in range(3)], t)  # type: ignore[arg-type]
    assert seen[-1] == ["moved"]
    watch.reset()
    assert watch.health.active == []
    seen, t = run(watch, [road.picture(t + 2 * i, **aimed) for i in range(20)], t)  # type: ignore[arg-type]
    assert all(active == [] for active in seen), seen
    seen, t = run(watch, [road.picture(t + 2 * i) for i in range(3)], t)  # back to the old view: moved
    assert seen[-1] == ["moved"]


def test_a_new_resolution_is_learned_again_without_an_alarm() -> None:
    watch, t = watch_learned(Road())
    wide = Road(width=640, height=360)
    seen, t = run(watch, [wide.picture(t + 2 * i) for i in range(12)], t)
    assert all(active == [] for active in seen), seen
    seen, t = run(watch, [wide.picture(t + 2 * i, blur=8.0) for i in range(3)], t)
    assert seen[-1] == ["blurred"]


def test_a_1080p_picture_is_measured_like_a_small_one() -> None:
    road = Road(width=1920, height=1080)
    watch, t = watch_learned(road)
    seen, t = run(watch, [road.picture(t + 2 * i, shift=(200, 100)) for i in range(3)], t)
    assert seen[-1] == ["moved"], watch.measures


def test_limits_are_configurable() -> None:
    strict = PictureWatch(PictureLimits(raise_after=(("frozen", 1), ("blank", 1), ("blurred", 1), ("moved", 1))))
    road = Road()
    for i in range(6):
        strict.observe(road.picture(2.0 * i))
    assert strict.observe(road.picture(12.0, black=True)).active == ["blank"]


def test_luma_plane_is_a_view_of_the_decoded_frame_past_its_row_padding() -> None:
    image = np.random.default_rng(3).integers(0, 255, (90, 150, 3), np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    luma = luma_plane(frame)
    assert luma.shape == (90, 150)
    assert frame.planes[0].line_size >= 150
    assert np.array_equal(luma, frame.to_ndarray()[:90])  # yuv420p as one array: the Y rows first
    ten_bit = frame.reformat(format="yuv420p10le")
    assert luma_plane(ten_bit).shape == (90, 150)


def test_alarms_document_lists_offline_first_with_rfc3339_times() -> None:
    picture = PictureHealth(["frozen", "moved"], {"frozen": T0, "moved": T0 + timedelta(seconds=5)})
    assert alarms_document(picture, None) == {
        "active": ["frozen", "moved"],
        "since": {"frozen": "2026-12-01T08:00:00Z", "moved": "2026-12-01T08:00:05Z"},
    }
    offline = alarms_document(PictureHealth(), T0)
    assert offline == {"active": ["offline"], "since": {"offline": "2026-12-01T08:00:00Z"}}


def test_camera_alarms_say_when_the_document_changed_and_keep_the_offline_time() -> None:
    alarms = CameraAlarms()
    assert not alarms.update(True, PictureHealth())
    assert alarms.update(False, PictureHealth(), T0)
    assert not alarms.update(False, PictureHealth(), T0 + timedelta(seconds=9))
    assert alarms.document["since"] == {"offline": "2026-12-01T08:00:00Z"}
    assert alarms.update(True, PictureHealth(["blank"], {"blank": T0}))
    assert alarms.document == {"active": ["blank"], "since": {"blank": "2026-12-01T08:00:00Z"}}
