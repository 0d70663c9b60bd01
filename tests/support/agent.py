"""The agent as a real subprocess (``python -m edgeagent run -c FILE``) and its test configuration."""

from __future__ import annotations

import copy
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.broker import Broker
from tests.support.camera import ROOT, Camera
from tests.support.net import free_port
from tests.support.process import ManagedProcess


def write_secret(path: Path, value: str) -> Path:
    """Write a secret file readable by its owner only (0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: dicts merge, other values replace, ``None`` deletes the key."""
    for key, value in over.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


SECTIONS = ("agent", "mqtt", "http", "webrtc", "cameras")
# Where a flat override such as ``health_interval_s=30`` goes (a key already in a section goes there).
FLAT_KEYS = {
    "id": "agent", "state_dir": "agent", "health_interval_s": "agent", "log_level": "agent",
    "keepalive_s": "mqtt", "topic_prefix": "mqtt", "client_id": "mqtt", "username": "mqtt",
    "listen": "http",
}  # fmt: skip


def base_config(
    tmp_path: Path,
    broker: Broker | None,
    cameras: dict[str, Camera | dict[str, Any]] | None = None,
    *,
    mqtt_mode: str = "plain",
    tls: bool | str = False,
    camera_passwords: dict[str, str] | None = None,
    http_token: bool | str = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A complete agent config dict for a test (agent id ``cabinet-17``, state_dir ``tmp_path/state``).

    ``cameras`` maps a name to a ``Camera`` (its ``url_with_user``, and its password written to a file) or
    to a camera config dict; a ``password`` key in such a dict, or ``camera_passwords[name]``, is written
    to a 0600 file and becomes ``password_file``.
    MQTT: ``broker=None`` leaves the section out; ``mqtt_mode`` (or ``tls``) ``"plain"``, ``"tls"``
    (``tls=True``: CA check) or ``"mtls"`` (client certificate too). The broker password goes to a file.
    HTTP: a free port on 127.0.0.1; ``http_token=True`` writes a random token file (``AgentProcess.token``),
    a string writes that token, ``False`` leaves ``token_file`` out (the agent then makes its own).
    ``overrides``: a section name with a dict is deep-merged (``agent={"health_interval_s": 1}``,
    ``webrtc={...}``), ``None`` removes a key; a flat key (``health_interval_s=30``, ``keepalive_s=2``)
    is set in the section it belongs to.
    """
    tmp_path = Path(tmp_path)
    secrets_dir = tmp_path / "secrets"
    camera_passwords = dict(camera_passwords or {})
    if tls is True:
        mqtt_mode = "tls"
    elif isinstance(tls, str) and tls:
        mqtt_mode = tls
    cfg: dict[str, Any] = {
        "agent": {
            "id": "cabinet-17",
            "state_dir": str(tmp_path / "state"),
            "health_interval_s": 2,
        },
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "cameras": {},
    }
    if http_token:
        token = http_token if isinstance(http_token, str) else secrets.token_urlsafe(24)
        cfg["http"]["token_file"] = str(write_secret(secrets_dir / "http_token", token))
    if broker is not None:
        mqtt: dict[str, Any] = {
            "host": broker.host,
            "port": broker.port,
            "username": broker.username,
            "password_file": str(write_secret(secrets_dir / "mqtt_password", broker.password)),
            "topic_prefix": "edgeagent",
            "keepalive_s": 10,
        }
        if mqtt_mode == "tls":
            mqtt["port"] = broker.tls_port
            mqtt["tls"] = {"ca_file": str(broker.ca_file)}
        elif mqtt_mode == "mtls":
            mqtt["port"] = broker.mtls_port
            mqtt["tls"] = {
                "ca_file": str(broker.ca_file),
                "cert_file": str(broker.client_cert),
                "key_file": str(broker.client_key),
            }
        elif mqtt_mode != "plain":
            raise ValueError(f"mqtt_mode {mqtt_mode!r}: plain, tls or mtls")
        cfg["mqtt"] = mqtt
    for name, cam in (cameras or {}).items():
        if isinstance(cam, Camera):
            entry: dict[str, Any] = {"url": cam.url_with_user, "transport": "tcp", "stall_timeout_s": 5}
            password = cam.password
        else:
            entry = copy.deepcopy(cam)
            password = entry.pop("password", None)
        password = camera_passwords.pop(name, password)
        if password is not None:
            entry["password_file"] = str(write_secret(secrets_dir / f"camera_{name}", password))
        cfg["cameras"][name] = entry
    if camera_passwords:
        raise ValueError(f"camera_passwords for unknown cameras: {sorted(camera_passwords)}")
    for key, value in overrides.items():
        if key in SECTIONS and isinstance(value, dict):
            _merge(cfg.setdefault(key, {}), value)
        elif key in SECTIONS and value is None:
            cfg.pop(key, None)
        else:
            section = next((sec for sec in ("agent", "mqtt", "http") if key in cfg.get(sec, {})), None)
            section = section or FLAT_KEYS.get(key)
            if section is None:
                raise ValueError(f"base_config: where does {key!r} go? Pass it inside its section dict")
            _merge(cfg.setdefault(section, {}), {key: value})
    return cfg


class AgentProcess:
    """``sys.executable -m edgeagent run -c CONFIG``, stdout and stderr both into ``log_path``.

    The output is also kept in memory, so a test can wait for a log line without polling (``wait_log``).
    """

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        name: str = "agent",
        args: list[str] | None = None,
    ) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.log"
        self.env_extra = dict(env or {})
        self.extra_args = list(args or [])
        self.started_at: float | None = None
        self.process = ManagedProcess(self.command(), name=f"agent {name}", log_path=self.log_path, cwd=ROOT)
        self.write_config()

    def write_config(self, config: dict[str, Any] | None = None) -> Path:
        if config is not None:
            self.config = config
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    # ------------------------------------------------------------------ derived from the config
    @property
    def http_url(self) -> str:
        return f"http://{self.config['http']['listen']}"

    @property
    def token(self) -> str:
        """The HTTP bearer token: from the configured token_file, else the one the agent made in its
        state_dir (``http-token``)."""
        path = self.config.get("http", {}).get("token_file")
        path = Path(path) if path else self.state_dir / "http-token"
        return path.read_text().strip()

    http_token = token

    @property
    def state_dir(self) -> Path:
        return Path(self.config["agent"]["state_dir"])

    @property
    def agent_id(self) -> str:
        return self.config["agent"]["id"]

    # ------------------------------------------------------------------ process control
    def command(self) -> list[str]:
        return [sys.executable, "-m", "edgeagent", "run", "-c", str(self.config_path), *self.extra_args]

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    @property
    def running(self) -> bool:
        return self.process.running

    def alive(self) -> bool:
        return self.running

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def start(self) -> AgentProcess:
        if self.running:
            raise RuntimeError("agent already running")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.env_extra)
        self.process.argv = self.command()
        self.process.start(env)
        self.started_at = time.monotonic()
        return self

    def terminate(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM, wait up to ``timeout``; returns (exit code or None if it did not exit, seconds taken).
        An agent that does not exit in time is left running (the fixture kills it at teardown)."""
        if self.proc is None:
            return None, 0.0
        t0 = time.monotonic()
        rc = self.process.terminate(timeout)
        return rc, time.monotonic() - t0

    def kill(self) -> int | None:
        """SIGKILL (crash / power loss)."""
        self.process.signal(signal.SIGCONT)
        return self.process.kill()

    def freeze(self) -> None:
        self.process.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.signal(signal.SIGCONT)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the agent to exit on its own; returns its exit code."""
        return self.process.wait(timeout)

    def close(self) -> None:
        self.process.close()

    # ------------------------------------------------------------------ output
    def log_text(self) -> str:
        return self.process.output()

    def log_mark(self) -> int:
        return self.process.mark()

    def wait_log(self, pattern: str | re.Pattern[str], timeout: float = 10.0, after: int = 0) -> str:
        """Wait for an output line (from line number ``after`` on) matching the regex ``pattern``;
        RuntimeError as soon as the agent exited without printing it."""
        return self.process.wait_line(pattern, timeout, after)

    wait_for_log = wait_log

    def __repr__(self) -> str:
        return f"<AgentProcess {self.name} pid={self.pid} rc={self.returncode}>"
