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

from tests.support.net import free_port

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
    port = free_port()  # claimed: one from port 0 is free until the agent binds it, another bind to 0 may get it
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


def test_unit_denies_every_address_but_localhost_and_sets_a_descriptor_limit() -> None:
    text = UNIT.read_text()
    assert re.search(r"^IPAddressDeny=any$", text, re.M)
    assert re.findall(r"^IPAddressAllow=(.*)$", text, re.M) == ["localhost"]
    match = re.search(r"^LimitNOFILE=(\d+)$", text, re.M)
    assert match and int(match.group(1)) >= 4096


def _dropin_config(tmp_path: Path) -> Path:
    config = tmp_path / "edgeagent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"id": "cab-1", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "localhost", "port": 1883},
        "http": {"listen": "0.0.0.0:8080"},
        "webrtc": {"ice_servers": [{"urls": ["turn:192.0.2.7:3478?transport=udp", "stun:[2001:db8::5]:3478"]}]},
        "cameras": {
            "north": {"url": "rtsp://viewer@10.0.0.21:554/stream1"},
            "south": {"url": "rtsps://10.0.0.22/stream1"},
        },
    }))
    return config


def _dropin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeagent", "systemd-dropin", *args],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip


def test_systemd_dropin_allows_the_addresses_the_configuration_names(tmp_path: Path) -> None:
    config = _dropin_config(tmp_path)
    result = _dropin("-c", str(config), "--clients", "10.20.0.0/24")
    assert result.returncode == 0, result.stderr
    allowed = re.findall(r"^IPAddressAllow=(.*)$", result.stdout, re.M)
    for address in ("10.0.0.21", "10.0.0.22", "127.0.0.1", "192.0.2.7", "2001:db8::5", "10.20.0.0/24"):
        assert address in allowed, result.stdout
    assert result.stdout.splitlines()[2] == "[Service]"
    assert "# camera north" in result.stdout and "# MQTT broker (localhost)" in result.stdout
    # The unit with the drop-in applied keeps its exposure score.
    unit_dir = tmp_path / "unit"
    unit_dir.mkdir()
    combined = UNIT.read_text().replace("[Install]", "\n".join(f"IPAddressAllow={a}" for a in allowed) + "\n[Install]")
    (unit_dir / "edgeagent.service").write_text(combined)
    analyze = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_dir / "edgeagent.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for edgeagent\.service: (\d+\.\d+)", analyze.stdout)
    assert match and float(match.group(1)) <= 2.0


def test_systemd_dropin_says_when_http_listens_beyond_localhost_with_no_operator_network(tmp_path: Path) -> None:
    output = tmp_path / "edgeagent.service.d" / "ip-allow.conf"
    result = _dropin("-c", str(_dropin_config(tmp_path)), "-o", str(output))
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert "no operator network was given (--clients CIDR)" in text
    assert oct(output.stat().st_mode & 0o777) == "0o644"


def test_systemd_dropin_refuses_a_bad_network_in_one_line(tmp_path: Path) -> None:
    result = _dropin("-c", str(_dropin_config(tmp_path)), "--clients", "10.0.0.0/99")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "10.0.0.0/99" in result.stderr
