"""A configuration reload (SIGHUP, ``systemctl reload edgeagent``): the file read again and applied.

The file goes through the very check ``check-config`` and ``run`` use, in a thread (it reads files and
secrets). A file that fails changes nothing: each problem is logged in one line, as ``check-config``
prints it. A file that passes is compared with what runs (:mod:`edgeagent.config_diff`): removed and
changed cameras stop, then added and changed ones start; an untouched camera keeps its very objects
(connection, hub, viewers) and never notices. What cannot change live is named in a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent import logs, systemd
from edgeagent.config import CameraSection, ConfigError
from edgeagent.config_diff import compare, running_config
from edgeagent.configfile import CheckedConfig, check_config
from edgeagent.publish import topics
from edgeagent.unit import build_unit

if TYPE_CHECKING:
    from edgeagent.agent import Agent

log = logging.getLogger(__name__)

SHUTDOWN_JOIN_S = 2.0  # as the agent's stop: a camera's ingest thread is given this long to end


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


async def serve(agent: Agent, wanted: asyncio.Event) -> None:
    """Every time ``wanted`` is set (SIGHUP), one reload; signals during a reload make one more after it."""
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            await reload(agent)
        except Exception:
            log.exception("reload: failed; the agent runs on with what it had")


async def reload(agent: Agent) -> bool:
    """True when the file was applied. systemd hears RELOADING=1 before and READY=1 after, whatever
    the outcome (the agent runs on either way)."""
    path = agent.config_path
    if path is None:
        log.warning("reload: the agent was not started from a configuration file; nothing to read")
        return False
    systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}")
    try:
        return await _reload(agent, path)
    finally:
        systemd.notify("READY=1")


async def _read(path: Path) -> CheckedConfig | None:
    try:
        return await asyncio.to_thread(check_config, path)
    except ConfigError as exc:
        problems = exc.lines
    except OSError as exc:
        problems = [f"cannot read the file: {exc.strerror or exc}"]
    for line in problems:
        log.error("reload: config error: %s", line if line.startswith(str(path)) else f"{path}: {line}")
    log.error("reload: %s not applied (%d problem(s)); the agent runs on unchanged", path, len(problems))
    return None


def _add_camera(agent: Agent, name: str, section: CameraSection) -> None:
    unit = build_unit(name, section, section.password, agent.executor)
    if agent.bridge is not None:
        agent.bridge.set_camera_state(topics.CAMERA_STATUS, name, "offline")  # until its source says otherwise
    agent.cameras.start(unit)


async def _reload(agent: Agent, path: Path) -> bool:
    started = time.monotonic()
    log.info("reload: reading %s", path)
    checked = await _read(path)
    if checked is None:
        return False
    for warning in checked.warnings:
        log.warning("config: %s", warning)
    changes = compare(agent.config, checked.config)
    for line in changes.needs_restart:
        log.warning("reload: %s", line)

    stopping = changes.removed + changes.changed
    stops = (agent.cameras.stop(name, SHUTDOWN_JOIN_S) for name in stopping)
    results = await asyncio.gather(*stops, return_exceptions=True)
    for name, result in zip(stopping, results, strict=True):
        if isinstance(result, BaseException):
            log.error("reload: stopping camera %s failed", name, exc_info=result)
    if agent.bridge is not None:
        for name in changes.removed:
            agent.bridge.retire_camera(name)
    old = agent.config
    agent.config = running_config(old, checked.config, changes)
    for name, section in agent.config.cameras.items():
        if name in changes.added or name in changes.changed:
            _add_camera(agent, name, section)
    if old.agent.health_interval_s != agent.config.agent.health_interval_s:
        agent.restart_health_loop()
    if old.agent.log_level != agent.config.agent.log_level:
        logs.setup(agent.config.agent.log_level)

    for what, names in (("removed", changes.removed), ("restarted", changes.changed), ("added", changes.added)):
        if names:
            log.info("reload: camera(s) %s: %s", what, ", ".join(names))
    live = f"; applied live: {', '.join(changes.live_fields)}" if changes.live_fields else ""
    log.info("reload: applied in %.3f s: %s%s", time.monotonic() - started, changes.summary(), live)
    return True
