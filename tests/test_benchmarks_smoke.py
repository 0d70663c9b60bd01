"""The benchmarks run once on tiny sizes, so that none rots. These check that each produces well-formed
results, never how fast anything is: performance figures come from ``python -m benchmarks`` alone."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS
from benchmarks.browser import browser_available
from benchmarks.figures import percentile, summary
from benchmarks.live_view import catch_up_figures
from benchmarks.webrtc_client import has_keyframe

ROOT = Path(__file__).resolve().parent.parent
ALL = {"decode", "cameras", "ttff", "latency", "viewers", "gil", "memory", "export", "picture", "soak", "browser",
       "tls_relay", "recording", "fleet"}


def _simulator_available() -> bool:
    if not Path("/usr/bin/python3").exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True).returncode == 0


def _ffmpeg_has_encoders() -> bool:
    if shutil.which("ffmpeg") is None:
        return False
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libx264" in out and "libx265" in out


def test_summary_and_percentile() -> None:
    s = summary([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert summary([])["median"] is None
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_keyframe_detection_in_h264_rtp_payloads() -> None:
    assert has_keyframe(bytes([0x65, 0x88]))  # IDR slice, single NAL unit
    assert not has_keyframe(bytes([0x41, 0x9A]))  # non-IDR slice
    stap_a = bytes([0x78]) + (2).to_bytes(2, "big") + bytes([0x67, 0x42]) + (1).to_bytes(2, "big") + bytes([0x68])
    assert has_keyframe(stap_a)  # SPS aggregated with PPS
    assert has_keyframe(bytes([0x7C, 0x85, 0x00]))  # FU-A start of an IDR slice
    assert not has_keyframe(bytes([0x7C, 0x05, 0x00]))  # FU-A continuation
    assert not has_keyframe(b"")


def test_catch_up_figures_find_the_backlog_decoded_and_the_longest_hold() -> None:
    # ms, decoded, received, jitter-buffer delay s, emitted: 40 frames held 0.5 s, then decoded at once.
    samples = [[0, 0, 0, 0.0, 0], [20, 5, 30, 0.05, 5], [40, 5, 38, 0.05, 5], [540, 5, 50, 0.05, 5],
               [560, 50, 50, 9.05, 50], [600, 51, 51, 9.06, 51]]
    figures = catch_up_figures(samples)
    assert figures["caught_up_ms"] == 560
    assert figures["longest_hold_ms"] == 520
    assert figures["jitter_ms_per_frame"] == pytest.approx(181.0)
    never = catch_up_figures([[0, 0, 0, 0.0, 0], [20, 1, 10, 0.0, 1], [40, 2, 20, 0.0, 2]])
    assert never["caught_up_ms"] is None and never["jitter_ms_per_frame"] is None


@pytest.mark.timeout(400)
@pytest.mark.skipif(not _simulator_available(), reason="needs Debian's python3 with GStreamer's RTSP server")
@pytest.mark.skipif(not _ffmpeg_has_encoders(), reason="needs ffmpeg with libx264 and libx265")
def test_every_benchmark_runs_once_on_tiny_sizes(tmp_path: Path) -> None:
    # Every registered benchmark is listed here, so a new one cannot be left out of the quick run.
    assert set(BENCHMARKS) | {"soak"} == ALL
    expected = ALL if browser_available() else ALL - {"browser"}  # Chromium is the one optional part
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--out", str(tmp_path),
         "--only", ",".join(sorted(expected))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=380,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    store = json.loads((tmp_path / "results.json").read_text())
    assert store["quick"] is True
    assert set(store["benchmarks"]) == expected
    assert store["machine"]["cores"].isdigit()
    for name, result in store["benchmarks"].items():
        assert result["met"] in (True, False), f"{name}: no verdict"  # met or missed: both are results
        assert result["title"] and result["target"], name
        assert not [note for note in result["notes"] if note.startswith("FAILED")], name
        assert result["tables"], name
        for table in result["tables"]:
            assert table["rows"], name
            assert all(len(row) == len(table["columns"]) for row in table["rows"]), name

    bench = store["benchmarks"]
    for case in bench["decode"]["data"]:
        assert case["all_frames"], case
        assert case["edgeagent_fps"]["median"] > 0 and case["ffmpeg_fps"]["median"] > 0
        assert case["ratio"] > 0
    for point in bench["cameras"]["data"]["series"]:
        assert point["agent"]["median"] >= 0 and point["copy"]["n"] == 1 and point["min_fps"] > 0
    for point in bench["viewers"]["data"]["series"]:
        assert point["agent"]["n"] == 1 and point["stock"]["n"] == 1
    for rows in bench["viewers"]["data"]["raw"].values():
        for count, results in rows.items():
            if int(count):
                assert all(r["min_fps"] and r["min_fps"] > 0 for r in results), "a viewer received no video"
    for case in bench["ttff"]["data"]:
        assert math.isfinite(case["agent"]["median"]) and math.isfinite(case["stock"]["median"])
    for case in bench["latency"]["data"]:
        assert case["frames"] > 0 and case["last_p50_ms"] is not None and case["last_p50_ms"] >= 0
    for case in bench["gil"]["data"]:
        assert case["ratio"]["median"] > 0
    export = bench["export"]["data"]
    assert all(export["speed"][job]["median"] > 0 for job in ("clip", "export", "ffmpeg"))
    assert 0 < export["first_byte_s"]["clip.mp4"]["median"] < export["wall_s"]["clip"]["median"] + 5
    assert bench["soak"]["data"]["series"] and bench["soak"]["data"]["restarts"]
    assert bench["picture"]["data"]["per_keyframe_ms"]["checks"]["median"] > 0
    if "browser" in bench:
        assert all(case["page"]["median"] > 0 for case in bench["browser"]["data"]["ttff"])
        assert all(point["agent"]["median"] > 0 for point in bench["browser"]["data"]["cpu"])
    fleet = bench["fleet"]["data"]["rows"]
    assert fleet and fleet[0]["cabinets"] > 0 and fleet[0]["messages_out_per_s"] > 0 and fleet[0]["p99_s"] is not None

    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "## Machine" in markdown and "Quick mode" in markdown and "## Commands" in markdown
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
