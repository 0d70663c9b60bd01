"""The shipped broker ACL (configs/mosquitto-acl.example) on a real mosquitto, with the agent behind it.

The agent's user may write only under its own base and read only its commands; an operator may send
commands and read everything, never publish state in the agent's name; a dashboard only reads.
mosquitto drops a forbidden publish silently (MQTT 3.1.1), so each check publishes a forbidden message
and then an allowed one from the same client: the second arriving alone shows the first was dropped.
"""

from __future__ import annotations

import pytest

from tests.support import Broker, MqttWatcher, base_config
from tests.support.agent import ROOT

pytestmark = pytest.mark.hostile

ACL = ROOT / "configs" / "mosquitto-acl.example"
BASE = "edgeagent/cabinet-17"


@pytest.fixture
def acl_broker(tmp_path, tls_files):
    broker = Broker(tmp_path / "mosquitto", tls_files, username="edge17")
    for user in ("operator", "dashboard", "edge18"):
        broker.add_user(user, f"{user}-pw-x9")
    with broker.config_file.open("a") as config:
        config.write(f"\nacl_file {ACL}\n")
    broker.start()
    yield broker
    broker.kill()


def _client(broker: Broker, user: str, topic_filter: str = "edgeagent/#") -> MqttWatcher:
    password = broker.password if user == "edge17" else f"{user}-pw-x9"
    return MqttWatcher(broker, topic_filter, username=user, password=password).start()


def _dropped(sender: MqttWatcher, forbidden: str, reader: MqttWatcher, marker_sender: MqttWatcher, marker: str) -> bool:
    """``sender`` publishes on ``forbidden`` (acknowledged: the broker has dealt with it), then
    ``marker_sender`` on ``marker``; True when ``reader`` got the marker and not the forbidden message."""
    sender.publish(forbidden, b"forbidden")
    marker_sender.publish(marker, b"marker")
    reader.wait_for(marker, lambda m: m.payload == b"marker", timeout=10)
    found = [m for m in reader.messages(forbidden) if m.payload == b"forbidden"]
    reader.clear()
    return not found


def test_the_shipped_acl_confines_agents_operators_and_dashboards(
    tmp_path, acl_broker, camera_factory, agent_factory
) -> None:
    camera = camera_factory(width=320, height=180)
    config = base_config(tmp_path, acl_broker, {"north": camera}, username="edge17")
    agent = agent_factory(config)
    operator = _client(acl_broker, "operator")
    dashboard = _client(acl_broker, "dashboard")
    clients = [operator, dashboard]
    try:
        # The agent publishes its state (the will and retained status included) and obeys commands.
        operator.wait_for(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=30)
        operator.wait_for(f"{BASE}/cameras/north/status", lambda m: m.payload == b"online", timeout=30)
        operator.publish(f"{BASE}/cameras/north/snapshot/request", b"")
        operator.wait_for(f"{BASE}/cameras/north/snapshot", timeout=10)

        request = f"{BASE}/cameras/north/snapshot/request"
        # An operator cannot publish state in the agent's name; a dashboard cannot command.
        assert _dropped(operator, f"{BASE}/cameras/north/status", dashboard, operator, request)
        assert _dropped(operator, f"{BASE}/health", dashboard, operator, request)
        assert _dropped(dashboard, f"{BASE}/cameras/north/restart", operator, operator, request)
        # Another cabinet's agent user cannot write under this one's base, nor read its commands.
        other = _client(acl_broker, "edge18", f"{BASE}/#")
        clients.append(other)
        assert _dropped(other, f"{BASE}/cameras/north/status", operator, operator, request)
        assert not other.messages(f"{BASE}/#")
        # The agent's user cannot write outside its base, and reads nothing but its commands.
        as_agent = _client(acl_broker, "edge17")
        clients.append(as_agent)
        assert _dropped(as_agent, "edgeagent/cabinet-18/health", operator, operator, request)
        assert as_agent.wait_for(request, lambda m: m.payload == b"marker", timeout=10)
        assert {m.topic for m in as_agent.messages()} == {request}
        assert agent.alive() and "Not authorized" not in agent.log_text()
    finally:
        for client in clients:
            client.close()
