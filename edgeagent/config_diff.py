"""What a reloaded configuration changes, compared with the running one: a plan, no action.

Cameras can change live (each one compared whole, its resolved password included, so a new password
in the same file restarts it). Of the rest only ``agent.health_interval_s`` and ``agent.log_level``
apply live; any other difference (the HTTP listener, the MQTT identity, the agent id, the live-view
limits) becomes one line saying that a restart applies it, never a silent no-op. Lines name fields,
never values: a changed secret is named as changed and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from edgeagent.config import CameraSection, Config

LIVE_FIELDS = {"agent.health_interval_s", "agent.log_level"}
RESTART_NOTE = "restart the agent to apply"


@dataclass(frozen=True)
class ConfigChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # restarted with the new section
    unchanged: tuple[str, ...] = ()
    live_fields: tuple[str, ...] = ()  # applied at once, e.g. "agent.health_interval_s"
    needs_restart: tuple[str, ...] = field(default=())  # one log line each

    def summary(self) -> str:
        parts = [f"{len(names)} {what}" for what, names in (
            ("added", self.added), ("removed", self.removed), ("restarted", self.changed),
            ("unchanged", self.unchanged),
        ) if names]  # fmt: skip
        return ", ".join(parts) or "no cameras"


def camera_changed(old: CameraSection, new: CameraSection) -> bool:
    """Any field, or the secret read for it (pydantic compares private attributes too; said here
    explicitly because a password file's new content is exactly the change an operator makes)."""
    return old != new or old.password != new.password


def _section_fields(name: str, old: BaseModel | None, new: BaseModel | None) -> list[str]:
    """Dotted names of the fields of one top-level section that differ (a section added or removed
    is the section's own name)."""
    if old is None or new is None:
        return [] if old is new else [name]
    fields = [f"{name}.{key}" for key in type(old).model_fields if getattr(old, key) != getattr(new, key)]
    for secret in ("password", "token"):  # resolved secrets: a file's new content under the same path
        if hasattr(old, secret) and getattr(old, secret) != getattr(new, secret):
            fields.append(f"{name}.{secret}")
    return fields


def compare(old: Config, new: Config) -> ConfigChanges:
    sections = ("agent", "mqtt", "http", "webrtc", "uplink")
    differing = [f for s in sections for f in _section_fields(s, getattr(old, s), getattr(new, s))]
    live = tuple(f for f in differing if f in LIVE_FIELDS)
    restart = tuple(f"{f} changed: {RESTART_NOTE}" for f in differing if f not in LIVE_FIELDS)
    added = tuple(name for name in new.cameras if name not in old.cameras)
    removed = tuple(name for name in old.cameras if name not in new.cameras)
    kept = [name for name in new.cameras if name in old.cameras]
    changed = tuple(name for name in kept if camera_changed(old.cameras[name], new.cameras[name]))
    unchanged = tuple(name for name in kept if name not in changed)
    return ConfigChanges(added, removed, changed, unchanged, live, restart)


def running_config(old: Config, new: Config, changes: ConfigChanges) -> Config:
    """The configuration the agent runs after the reload: the new cameras (an untouched camera keeps
    its very section object) and live fields, everything else as it was started."""
    cameras = {name: old.cameras[name] if name in changes.unchanged else new.cameras[name] for name in new.cameras}
    live = [f.removeprefix("agent.") for f in changes.live_fields if f.startswith("agent.")]
    agent = old.agent.model_copy(update={key: getattr(new.agent, key) for key in live})
    return old.model_copy(update={"cameras": cameras, "agent": agent})
