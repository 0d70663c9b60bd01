"""The systemd face: a hardened unit, READY=1 once running, WATCHDOG=1 from a live event loop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "edgeagent.service"


def test_unit_exposure_score_is_two_or_less() -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is installed by scripts/setup.sh"
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for edgeagent\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_uses_notify_watchdog_credentials_and_no_root() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert line in text
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^LoadCredential=", text, re.M)
    assert not re.search(r"^User=root", text, re.M)


def test_agent_says_ready_then_pings_the_watchdog(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.settimeout(20)
    config = tmp_path / "edgeagent.yaml"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(yaml.safe_dump({
        "agent": {"id": "notify-test", "state_dir": str(tmp_path / "state")},
        "http": {"listen": f"127.0.0.1:{port}"},
    }))
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="1000000")
    agent = subprocess.Popen(
        [sys.executable, "-m", "edgeagent", "run", "-c", str(config)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        messages = [receiver.recv(4096).decode() for _ in range(3)]
        assert messages[0] == "READY=1"
        assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert receiver.recv(4096).decode() in ("STOPPING=1", "WATCHDOG=1")
        assert agent.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if agent.poll() is None:
            agent.kill()
        receiver.close()


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeagent import systemd

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval_s() is None
