"""RESULTS.md and the plot, from the stored results of every benchmark (``results.json``).

Each run updates the benchmarks it ran and keeps the others, so the hour-long soak and a re-run of a single
benchmark land in the same report. The hand-written analysis (why a target was missed, what was found by
profiling, what fix is proposed) lives in ``benchmarks/FINDINGS.md`` and is included as it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import fmt
from benchmarks.settings import BENCH

ORDER = ["decode", "cameras", "viewers", "ttff", "latency", "gil", "memory", "export", "picture", "recording",
         "soak", "browser", "tls_relay", "fleet"]
FINDINGS = BENCH / "FINDINGS.md"


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"benchmarks": {}, "machine": {}, "commands": []}


def merge(path: Path, results: list[dict[str, Any]], machine: dict[str, str], commands: list[str],
          argv: list[str], quick: bool) -> dict[str, Any]:
    store = load(path)
    if store.get("quick") != quick:  # never mix tiny sizes with real ones
        store = {"benchmarks": {}, "machine": {}, "commands": []}
    store["quick"] = quick
    store["machine"] = machine
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    for result in results:
        store["benchmarks"][result["name"]] = {**result, "ran_at": when, "argv": argv,
                                               "commit": machine.get("edgeagent commit", "")}
    store["commands"] = list(dict.fromkeys([*store.get("commands", []), *commands]))
    path.write_text(json.dumps(store, indent=1, default=str))
    return store


def _headline(result: dict[str, Any]) -> str:
    data: Any = result.get("data")
    name = result["name"]
    try:
        if name == "decode":
            return "; ".join(f"{d['codec'].upper()} ×{d['threads']} thread(s): {fmt(d['ratio'], 2)}" for d in data)
        if name == "cameras":
            last = data["series"][-1]
            return (f"{fmt(last['agent_per_camera'], 2)} % of a core per camera at {last['cameras']} cameras"
                    f" (ffmpeg -c copy: {fmt(last['copy']['median'] / last['cameras'], 2)} %)")
        if name == "viewers":
            last = data["series"][-1]
            return (f"{fmt(last['agent_per_viewer'], 2)} % per viewer at {last['viewers']} viewers; "
                    f"agent {fmt(last['agent']['median'])} % vs stock {fmt(last['stock']['median'])} %")
        if name == "ttff":
            return "; ".join(f"GOP {d['gop_s']:g} s: agent {fmt(d['agent']['median'], 2)} s (worst "
                             f"{fmt(d['agent']['max'], 2)}), stock {fmt(d['stock']['median'], 2)} s" for d in data)
        if name == "latency":
            return "; ".join(f"{d.get('variant', 'today')}, {d['viewers']} viewer(s): p50 {fmt(d['last_p50_ms'], 1)} "
                             f"ms, p99 {fmt(d['last_p99_ms'], 1)} ms" for d in data
                             if d.get("variant", "today") == "today")
        if name == "gil":
            return "; ".join(f"{d['variant']}: {fmt(d['ratio'], 2)}" for d in data)
        if name == "memory":
            rows = [row for row in _current(result["tables"][0])["rows"] if "viewers" in row[1]]
            return "; ".join(f"{row[0].split(':')[0]}: RSS {row[2]} MB" for row in rows)
        if name == "export":
            return (f"{data['length_s'] / 60:g} min export {fmt(data['speed']['export'], 0)} × real time "
                    f"(ffmpeg -c copy {fmt(data['speed']['ffmpeg'], 0)} ×); first byte of a clip "
                    f"{fmt(data['first_byte_s']['clip.mp4']['median'] * 1000, 0)} ms")
        if name == "picture":
            pct, ms = data["per_camera_pct"]["checks"], data["per_keyframe_ms"]["checks"]
            return (f"checks {fmt(ms, 2)} ms a keyframe, {fmt(pct, 4)} % of a core per camera at a "
                    f"{data['gop_s']:g} s GOP ({fmt(data['checks_over_snapshot'] * 100, 1)} % of the snapshot work)")
        if name == "browser":
            ttff = "; ".join(f"{d['camera']}: first picture {fmt(d['page']['median'], 2)} s (worst "
                             f"{fmt(d['page']['max'], 2)})" for d in data["ttff"])
            per = "; ".join(f"{d['camera']} ×{d['viewers']}: {fmt(d['per_viewer'], 1)} % a viewer" for d in data["cpu"])
            return f"{ttff}; {per}"
        if name == "tls_relay":
            return (f"relay {fmt(data['relay_cost_percent'], 2)} % of a core per camera (ffmpeg's own TLS "
                    f"{fmt(data['ffmpeg_tls_cost_percent'], 2)} %)")
        if name == "recording":
            last = data["series"][-1]
            return (f"adds {fmt(last['added_per_camera'], 3)} % per camera at {last['cameras']} cameras, "
                    f"{fmt(last['ratio'], 2)} × ffmpeg; {fmt(last['amplification'], 4)} bytes written per byte; "
                    f"SIGKILL loses {fmt(data['kills']['lost_s'], 2)} s")
        if name == "fleet":
            held = data["held"] if isinstance(data["held"], dict) else {"retained": data["held"]}
            return ("cabinets of 4 cameras held with delay p99 < 1 s on three local NATS nodes: "
                    + ", ".join(f"{count} with snapshots {variant}" for variant, count in held.items()))
        if name == "soak":
            if "figures" not in data:  # a soak of one agent (before the reference ran beside it)
                return f"growth {fmt(data['growth_pct'], 2)} % over {len(data['series'])} samples"
            today, sliding = data["figures"]["today"], data["figures"]["sliding"]
            return (f"growth {fmt(today['growth_pct'], 2)} %, peak {fmt(today['peak_mb'])} MB over "
                    f"{len(data['series']['today'])} samples (sliding mmap threshold: "
                    f"{fmt(sliding['growth_pct'], 2)} %, peak {fmt(sliding['peak_mb'])} MB)")
    except (KeyError, TypeError, IndexError, ZeroDivisionError):
        pass
    return ""


def _proposed(text: object) -> bool:
    return "proposed" in str(text).lower()


def _current(table: dict[str, Any]) -> dict[str, Any]:
    """The table as RESULTS.md shows it: the agent's code as it is. Columns and rows of a proposed change
    that a benchmark measured beside it stay in results.json; FINDINGS.md quotes the ones that matter."""
    keep = [i for i, column in enumerate(table["columns"]) if not _proposed(column)]
    rows = [row for row in table["rows"] if not _proposed(row[0])]
    return {"columns": [table["columns"][i] for i in keep], "rows": [[row[i] for i in keep] for row in rows]}


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "–"}[met]


def _table(table: dict[str, Any]) -> list[str]:
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table["rows"]]
    return lines


def write_markdown(store: dict[str, Any], out: Path, plot_name: str | None) -> None:
    benchmarks = store["benchmarks"]
    lines = [
        "# Benchmark results",
        "",
        "Made by `python -m benchmarks` (see `benchmarks/__main__.py`); edgeagent's hot path measured side by side "
        "with FFmpeg and stock aiortc, in the same run, interleaved. Figures are the median with (min–max) over the "
        "repetitions; CPU is a process's user + system time over wall time, 100 % = one core.",
        "",
    ]
    if store.get("quick"):
        lines += ["**Quick mode: tiny sizes, for checking that the benchmarks run. These figures mean nothing.**", ""]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in store["machine"].items()]
    lines += ["", "## Summary", "", "| benchmark | target | result | headline | run (edgeagent commit) |",
              "|---|---|---|---|---|"]
    for name in ORDER:
        if name in benchmarks:
            r = benchmarks[name]
            run = f"{r['ran_at']}, {r['commit']}" if r.get("commit") else r["ran_at"]
            lines.append(f"| {r['title']} | {r['target']} | {_verdict(r['met'])} | {_headline(r)} | {run} |")
        else:
            how = "`python -m benchmarks --soak`" if name == "soak" else f"`python -m benchmarks --only {name}`"
            lines.append(f"| {name} | | not run | run it with {how} | |")
    if plot_name:
        lines += ["", f"![CPU against cameras and viewers]({plot_name})"]
    for name in ORDER:
        if name not in benchmarks:
            continue
        r = benchmarks[name]
        lines += ["", f"## {r['title']}", "", f"Target: {r['target']}. Result: {_verdict(r['met'])}.", ""]
        for table in r["tables"]:
            lines += _table(_current(table)) + [""]
        lines += [f"- {note}" for note in r.get("notes", []) if not note.startswith("Proposed")]
        at = f" on edgeagent {r['commit']}" if r.get("commit") else ""
        lines += [f"- Run {r['ran_at']}{at} with `{' '.join(r['argv'])}`."]
    if FINDINGS.exists() and not store.get("quick"):
        lines += ["", FINDINGS.read_text().strip()]
    lines += ["", "## Commands", "", "Every external command the benchmarks ran (ports and temporary paths vary):", ""]
    lines += ["```"] + store["commands"] + ["```", ""]
    out.write_text("\n".join(lines))


def write_plot(store: dict[str, Any], out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = store["benchmarks"]
    panels = [name for name in ("cameras", "viewers", "soak") if name in benchmarks]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        data = benchmarks[name]["data"]
        if name == "fleet":
            return f"{data['held']} cabinets of 4 cameras held with delay p99 < 1 s on three local NATS nodes"
        if name == "soak":
            runs = data["series"] if isinstance(data["series"], dict) else {"today": data["series"]}
            labels = {"today": "agent RSS", "sliding": "agent RSS, glibc's sliding mmap threshold"}
            for variant, points in runs.items():
                ax.plot([p[0] / 60 for p in points], [p[1] for p in points], label=labels.get(variant, variant))
            for restart in data["restarts"]:
                ax.axvline(restart / 60, color="grey", alpha=0.2)
            ax.set(xlabel="minutes (grey: camera restarts)", ylabel="RSS MB", title="Memory soak")
            ax.legend()
            continue
        key = "cameras" if name == "cameras" else "viewers"
        lines = {"cameras": [("agent", "edgeagent"), ("copy", "ffmpeg -c copy, one per camera"),
                             ("frigate", "Frigate-style decode at 5 fps")],
                 "viewers": [("agent", "edgeagent passthrough"),
                             ("stock", "stock aiortc (MediaPlayer + MediaRelay)"),
                             ("clients_agent", "viewer clients (agent run)")]}[name]
        for series_key, label in lines:
            points = [(p[key], p[series_key]) for p in data["series"] if p.get(series_key) and p[series_key]["n"]]
            if not points:
                continue
            x = [p[0] for p in points]
            med = [p[1]["median"] for p in points]
            err = [[m - p[1]["min"] for m, p in zip(med, points, strict=True)],
                   [p[1]["max"] - m for m, p in zip(med, points, strict=True)]]
            ax.errorbar(x, med, yerr=err, marker="o", capsize=3, label=label)
        ax.set(xlabel=f"{key} (1080p30 H.264, 4 Mbit/s)" if not store.get("quick") else key,
               ylabel="CPU % of one core", title=f"CPU against {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True
