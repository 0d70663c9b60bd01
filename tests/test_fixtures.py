"""The test helpers themselves: broker listeners and auth, the MQTT watcher, the config builder, the agent
process wrapper. Failures here point at the harness, not at the agent."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import sys
import textwrap
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.config import parse_config
from tests.support import AgentProcess, Broker, Camera, MqttWatcher, base_config, free_port, net

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
    reason="mosquitto is needed (scripts/setup.sh installs it)",
)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50
    assert all(20000 <= p < 32000 for p in ports)


class _Picks:
    """An rng whose ``randrange`` answers ``picks`` in turn (the ports free_port tries)."""

    def __init__(self, *picks: int) -> None:
        self.picks = list(picks)

    def randrange(self, low: int, high: int) -> int:
        return self.picks.pop(0)


def _unused_ports(count: int) -> list[int]:
    ports = [p for p in range(net._LOW, net._HIGH) if p not in net._given and net._bindable(p, "127.0.0.1")]
    return ports[-count:]


def test_a_port_another_test_process_claimed_is_not_handed_out(monkeypatch, tmp_path) -> None:
    """Two runs of the suite on one machine (or the two workers) drew the same free port before either
    bound it: an agent then could not bind its HTTP port. A live process's claim is passed over."""
    monkeypatch.setattr(net, "CLAIMS", tmp_path / "claims")
    monkeypatch.setattr(net, "_swept", True)
    claimed, free = _unused_ports(2)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / str(claimed)).write_text("1\n")  # init's: a process that lives
    monkeypatch.setattr(net, "_rng", _Picks(claimed, free))
    assert free_port() == free
    assert (tmp_path / "claims" / str(free)).read_text() == f"{os.getpid()}\n"
    assert (tmp_path / "claims" / str(claimed)).read_text() == "1\n"


def test_a_claim_of_an_ended_process_or_past_its_time_is_taken_over(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(net, "CLAIMS", tmp_path / "claims")
    monkeypatch.setattr(net, "_swept", True)
    ended, old = _unused_ports(2)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / str(ended)).write_text("4194305\n")  # above Linux's largest pid: no such process
    (tmp_path / "claims" / str(old)).write_text("1\n")
    past = time.time() - net.CLAIM_TTL_S - 1
    os.utime(tmp_path / "claims" / str(old), (past, past))
    monkeypatch.setattr(net, "_rng", _Picks(ended, old))
    assert free_port() == ended and free_port() == old


@needs_mosquitto
def test_broker_listeners_and_watcher_round_trip(broker, mqtt_watcher_factory) -> None:
    plain = mqtt_watcher_factory("t/#")
    over_tls = mqtt_watcher_factory("t/#", tls="tls")
    over_mtls = mqtt_watcher_factory("t/#", tls="mtls")
    before = time.monotonic()
    plain.publish("t/retained", "kept", retain=True)
    plain.publish("t/json", {"n": 1})
    for w in (plain, over_tls, over_mtls):
        m = w.wait_for("t/json", lambda m: m.json()["n"] == 1, timeout=5)
        assert m.arrival >= before and not m.retain
        assert w.wait_for("t/+", lambda m: m.text == "kept", timeout=5).topic == "t/retained"
    # A late subscriber gets the retained message flagged as retained.
    late = mqtt_watcher_factory("t/retained")
    assert late.wait_for("t/retained", timeout=5).retain
    assert len(plain.wait_for_count("t/#", 2, timeout=5)) == 2
    plain.clear()
    assert plain.messages() == []
    with pytest.raises(TimeoutError):
        plain.wait_for("t/json", timeout=0.3)
    assert "New client connected" in broker.wait_log("New client connected", timeout=5)


@needs_mosquitto
def test_broker_refuses_wrong_password_and_missing_client_certificate(broker) -> None:
    with pytest.raises(ConnectionError):
        MqttWatcher(broker, password="wrong", connect_timeout=5).start().close()
    # The mTLS listener with a CA-only client: the handshake is refused.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="no-cert")
    client.username_pw_set(broker.username, broker.password)
    client.tls_set(ca_certs=str(broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises((ssl.SSLError, OSError)):
        client.connect(broker.host, broker.mtls_port)
        # TLS 1.3: the refusal may only show on the first read
        for _ in range(20):
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                raise OSError("connection dropped")
            if client.is_connected():
                break
    assert not client.is_connected()


@needs_mosquitto
def test_broker_restart_keeps_ports_and_watcher_resubscribes(broker, mqtt_watcher_factory) -> None:
    w = mqtt_watcher_factory("r/#")
    ports = (broker.port, broker.tls_port, broker.mtls_port)
    assert broker.stop() == 0
    broker.start()
    assert (broker.port, broker.tls_port, broker.mtls_port) == ports
    w.wait_subscribed(timeout=15)
    w.publish("r/x", b"after restart")
    assert w.wait_for("r/x", timeout=5).payload == b"after restart"


def test_base_config_is_valid_and_keeps_secrets_in_0600_files(tmp_path: Path, tls_files) -> None:
    broker = Broker(tmp_path / "b", tls_files)  # not started: only its addresses and secrets are used
    cam = Camera(user="viewer", password="pw-1", port=free_port())
    cfg = base_config(
        tmp_path,
        broker,
        {"north": cam, "south": {"url": "rtsp://u@127.0.0.1:1/x", "snapshot": {"width": 320}}},
        camera_passwords={"south": "pw-2"},
        mqtt_mode="mtls",
        health_interval_s=30,
        webrtc={"host_addresses": ["127.0.0.1"]},
        mqtt={"keepalive_s": 2},
    )
    assert cfg["agent"] == {"id": "cabinet-17", "state_dir": str(tmp_path / "state"), "health_interval_s": 30}
    assert cfg["mqtt"]["port"] == broker.mtls_port and cfg["mqtt"]["keepalive_s"] == 2
    assert set(cfg["mqtt"]["tls"]) == {"ca_file", "cert_file", "key_file"}
    assert cfg["cameras"]["north"]["url"] == f"rtsp://viewer@127.0.0.1:{cam.port}/stream1"
    text = yaml.safe_dump(cfg)
    for secret in ("pw-1", "pw-2", broker.password):
        assert secret not in text
    secret_files = [
        cfg["mqtt"]["password_file"],
        cfg["http"]["token_file"],
        cfg["cameras"]["north"]["password_file"],
        cfg["cameras"]["south"]["password_file"],
    ]
    for f in secret_files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert Path(cfg["cameras"]["south"]["password_file"]).read_text().strip() == "pw-2"
    parse_config(cfg)  # the agent's own schema accepts it

    plain = base_config(tmp_path / "p", None, {}, http_token=False, agent={"health_interval_s": None})
    assert "mqtt" not in plain and "token_file" not in plain["http"]
    assert "health_interval_s" not in plain["agent"]
    with pytest.raises(ValueError):
        base_config(tmp_path, None, {}, no_such_key=1)


FAKE_AGENT = textwrap.dedent(
    """
    import signal, sys, time
    def stop(*_):
        print("stopped in 0.01 s", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("config", sys.argv[-1], flush=True)
    print("running", flush=True)
    while True:
        time.sleep(1)
    """
)


class FakeAgent(AgentProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", FAKE_AGENT, str(self.config_path)]


def test_agent_process_wrapper(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, None, {})
    agent = FakeAgent(cfg, tmp_path, name="fake").start()
    try:
        assert "fake.yaml" in agent.wait_log(r"^config ", timeout=10)
        agent.wait_for_log("running", timeout=10)
        assert agent.alive()
        assert yaml.safe_load(agent.config_path.read_text()) == cfg
        assert len(agent.token) >= 24
        code, elapsed = agent.terminate()
        assert code == 0 and elapsed < 5
        assert "stopped in" in agent.log_text()
        assert "stopped in" in agent.log_path.read_text()
        agent.start()
        mark = agent.log_mark()
        agent.wait_log("running", after=mark, timeout=10)
        assert agent.kill() == -9
        with pytest.raises(RuntimeError, match="exited"):
            agent.wait_log("never printed", after=agent.log_mark(), timeout=10)
    finally:
        agent.close()
