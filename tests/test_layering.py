"""Imports run one way (CONTRIBUTING.md): config <- camera <- media, live, record <- publish <- agent (and cli).

Every module of edgeagent/ is read with ``ast`` (imports inside functions too) and given a layer; an import of
a higher layer fails. A new module fails until it is given a place here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgeagent"

CONFIG, CAMERA, CONSUMERS, STATE, PUBLISH, AGENT = range(6)
LAYER_NAMES = ["config", "camera", "media/live/record", "state", "publish", "agent"]

# By the first name under edgeagent (a package or a top-level module).
LAYERS: dict[str, int] = {
    # config: the configuration and what reading it needs; knows nothing of the rest.
    "edgeagent": CONFIG,  # the package itself: __version__
    "config": CONFIG,
    "config_base": CONFIG,
    "configfile": CONFIG,
    "config_diff": CONFIG,
    "configdoc": CONFIG,
    "credentials": CONFIG,
    "secretfile": CONFIG,
    "yamlfile": CONFIG,
    "urls": CONFIG,
    "logs": CONFIG,
    "allocator": CONFIG,  # the C allocator's settings at start; imports nothing of the package
    "http_body": CONFIG,  # a bounded request body: used by every layer that speaks HTTP
    "systemd": CONFIG,
    "unit_dropin": CONFIG,  # the systemd drop-in is written from the configuration alone
    # camera: talking to a camera, its stream (camera/) and its control (onvif/).
    "camera": CAMERA,
    "onvif": CAMERA,
    # the consumers of a hub.
    "media": CONSUMERS,
    "live": CONSUMERS,
    "record": CONSUMERS,
    # typed state the publishers read (health.py, live/stats.py), and the per-camera bundle it is read from.
    "unit": STATE,
    "health": STATE,
    "loops": STATE,
    "tasks": CONFIG,  # keeps background tasks by reference: used from onvif/ up to the agent
    # publishers: MQTT, HTTP, /metrics, and the uplink to the centre's media server (a publisher of the
    # live view; it shares publish/ratelimit.py); alarms are published through the same throttles.
    "publish": PUBLISH,
    "uplink": PUBLISH,
    "offload": PUBLISH,  # sends recordings (exports, locked ranges) to the centre's S3 storage
    "alarms": PUBLISH,
    # wiring and lifetimes.
    "agent": AGENT,
    "camera_units": AGENT,
    "commands": AGENT,  # what each MQTT command does, on the agent's parts
    "recordings": AGENT,  # wiring: the recording service, its routes, topics and offloader in the agent
    "reload": AGENT,
    "cli": AGENT,
    "__main__": AGENT,
}

# Within the consumers' layer only live may use media's picture helpers; none of the three uses another.
ALLOWED_SIDEWAYS = {("live", "media")}

# The simulator runs as a script on /usr/bin/python3 and imports nothing from the package.
STANDALONE = {"simulator"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str) -> int:
    # Every package's settings.py is a section of the configuration: it is config, wherever it lives.
    if module.endswith(".settings"):
        return CONFIG
    return LAYERS[first_name(module)]


def imported(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    """(line, module) of every edgeagent import in ``tree``, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*anchor, base] if base else anchor)
            if base == "edgeagent":  # from edgeagent import camera_units: the names are modules or values
                found += [
                    (node.lineno, f"edgeagent.{alias.name}" if alias.name in LAYERS else "edgeagent")
                    for alias in node.names
                ]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "edgeagent" or name.startswith("edgeagent.")]


def backward_imports(source: str, module: str) -> list[str]:
    """One line per import of ``module`` that runs against the layering."""
    problems = []
    own_first, own_layer = first_name(module), layer_of(module)
    for line, target in imported(ast.parse(source), module):
        target_first = first_name(target)
        if target_first == own_first:
            continue  # within one package or module
        target_layer = layer_of(target)
        sideways = target_layer == own_layer == CONSUMERS and (own_first, target_first) not in ALLOWED_SIDEWAYS
        if target_layer > own_layer or sideways:
            problems.append(
                f"{module}:{line} imports {target}"
                f" ({LAYER_NAMES[own_layer]} must not import {LAYER_NAMES[target_layer]})"
            )
    return problems


def product_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if first_name(module_name(path)) not in STANDALONE)


def test_every_module_of_edgeagent_has_a_layer() -> None:
    unplaced = sorted({first_name(module_name(path)) for path in product_modules()} - set(LAYERS))
    assert not unplaced, f"give these a layer in tests/test_layering.py (see CONTRIBUTING.md): {unplaced}"


def test_no_import_runs_backwards() -> None:
    problems = [
        problem
        for path in product_modules()
        for problem in backward_imports(path.read_text(encoding="utf-8"), module_name(path))
    ]
    assert not problems, "\n".join(problems)


def test_the_simulator_imports_nothing_from_the_package() -> None:
    for path in sorted((PACKAGE / "simulator").glob("*.py")):
        names = imported(ast.parse(path.read_text(encoding="utf-8")), module_name(path))
        assert not names, f"{path.name} runs on /usr/bin/python3 without the package: {names}"


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("edgeagent.camera.source", "from edgeagent.health import CameraHealth"),
        ("edgeagent.camera.source", "def f():\n    from edgeagent.media import snapshot"),
        ("edgeagent.config", "import edgeagent.publish.mqtt"),
        ("edgeagent.media.snapshot", "from edgeagent.live.track import CameraTrack"),
        ("edgeagent.record.writer", "from ..publish import metrics"),
        ("edgeagent.publish.http", "from edgeagent import agent"),
    ],
)
def test_the_check_finds_a_backward_import(module: str, source: str) -> None:
    assert backward_imports(source, module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("edgeagent.live.transcode", "from edgeagent.media.masks import apply_masks"),
        ("edgeagent.config", "from edgeagent.record.settings import RecordingSection"),
        ("edgeagent.publish.http", "from edgeagent.health import AgentHealth"),
        ("edgeagent.camera.source", "from edgeagent.camera.hub import CameraHub"),
    ],
)
def test_the_check_lets_a_forward_import_pass(module: str, source: str) -> None:
    assert not backward_imports(source, module)
