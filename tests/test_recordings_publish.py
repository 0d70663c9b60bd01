"""The agent's recording state on MQTT: a camera removed while its figures are being taken stays removed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgeagent.record.service import RecordingStats
from edgeagent.record.settings import RecordingSection
from edgeagent.recordings import AgentRecordings


class Bridge:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def set_camera_state(self, topic: Any, camera: str, payload: bytes | str) -> None:
        self.states.append((topic.path, camera))


def figures(camera: str) -> RecordingStats:
    return RecordingStats(camera, "recording", None, None, None, 0, 0, 0.0, 0, None, None)


async def test_a_camera_removed_while_the_figures_are_taken_is_not_published_again(tmp_path: Path) -> None:
    bridge = Bridge()
    recordings = AgentRecordings(RecordingSection(dir=tmp_path / "rec", min_free="0%"), "cab", bridge, None)  # type: ignore[arg-type]
    recordings.service.recorders = {"north": object(), "south": object()}  # type: ignore[dict-item]
    taking, taken = asyncio.Event(), asyncio.Event()

    async def astats() -> dict[str, RecordingStats]:
        taking.set()
        await taken.wait()  # the thread that reads SQLite and statvfs
        return {name: figures(name) for name in ("north", "south")}

    recordings.service.astats = astats  # type: ignore[method-assign]
    recordings.service.alarms = lambda stats: []  # type: ignore[method-assign]
    publishing = asyncio.create_task(recordings.publish())
    await taking.wait()
    del recordings.service.recorders["south"]  # a reload removed it (and cleared its retained topics)
    taken.set()
    await publishing

    assert [camera for path, camera in bridge.states if path.endswith("recording")] == ["north"]
    assert set(recordings.stats) == {"north"}  # nor counted in the agent's health
