"""``mqtt.hosts``: the agent's own failover, against plain mosquitto brokers (no cluster delays).

The agent stays on the broker it is on while that one works, moves to the next of the list when it goes
away, and is current there (availability, status, snapshot, all retained) within 5 s; the last will comes
with every connection. The cluster itself (NATS JetStream) is tested in test_mqtt_cluster.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from edgeagent.config import ConfigError
from edgeagent.configfile import parse_config
from tests.support.broker import Broker
from tests.support.mqtt import MqttWatcher
from tests.test_mqtt_cluster import AVAILABILITY, SNAPSHOT, STATUS, connected_broker, metric

pytestmark = [pytest.mark.timeout(90), pytest.mark.timed]

FAILOVER_BOUND_S = 5.0


def test_hosts_parse_and_host_with_hosts_is_one_clear_line() -> None:
    config = parse_config({"agent": {"id": "c1"}, "mqtt": {"hosts": ["a.example:8883", "b.example", "[::1]:1884"]}})
    assert config.mqtt is not None
    assert config.mqtt.brokers == [("a.example", 8883), ("b.example", 8883), ("::1", 1884)]
    with pytest.raises(ConfigError) as both:
        parse_config({"agent": {"id": "c1"}, "mqtt": {"host": "a.example", "hosts": ["b.example:8883"]}})
    assert len(both.value.lines) == 1 and both.value.lines[0].startswith("mqtt: give host (with port) or hosts")
    with pytest.raises(ConfigError) as bad:
        parse_config({"agent": {"id": "c1"}, "mqtt": {"hosts": ["a.example:http"]}})
    assert "'a.example:http' must be HOST or HOST:PORT" in bad.value.lines[0]
    with pytest.raises(ConfigError) as neither:
        parse_config({"agent": {"id": "c1"}, "mqtt": {"port": 8883}})
    assert "host (or hosts) is required" in neither.value.lines[0]


@pytest.fixture
def brokers(tmp_path, tls_files) -> Iterator[list[Broker]]:
    """Three mosquittos sharing user and password (one cluster's nodes, as the agent sees them)."""
    first = Broker(tmp_path / "b0", tls_files)
    made = [first] + [Broker(tmp_path / f"b{i}", tls_files, password=first.password) for i in (1, 2)]
    try:
        for broker in made:
            broker.start()
        yield made
    finally:
        for broker in made:
            broker.kill()


@pytest.fixture
def watchers() -> Iterator[list[MqttWatcher]]:
    made: list[MqttWatcher] = []
    yield made
    for watcher in made:
        watcher.close()


def watch(made: list[MqttWatcher], broker: Broker) -> MqttWatcher:
    watcher = MqttWatcher(broker, "edgeagent/#")
    made.append(watcher)
    return watcher.start()


def address(broker: Broker) -> str:
    return f"{broker.host}:{broker.port}"


def agent_config(tmp_path, base_config, brokers: list[Broker], camera=None) -> dict:
    cameras = {"north": {"url": camera.url, "snapshot": {"interval_s": 2, "width": 320}}} if camera else {}
    hosts = [address(broker) for broker in brokers]
    return base_config(tmp_path, brokers[0], cameras=cameras, mqtt={"host": None, "hosts": hosts})


def current_within(watcher: MqttWatcher, since: float, bound: float) -> float:
    """Seconds after ``since`` by which availability, status and a snapshot all arrived."""
    latest = 0.0
    for topic, payload in ((AVAILABILITY, b"online"), (STATUS, b"online"), (SNAPSHOT, None)):
        seen = watcher.wait_for(
            topic, (lambda m, p=payload: p is None or m.payload == p), timeout=bound + 5, since=since
        )
        latest = max(latest, seen.arrival - since)
    return latest


def test_killing_the_broker_moves_the_agent_to_the_next_current_within_5_s_and_it_stays(
    tmp_path, brokers, camera_factory, agent_factory, base_config, watchers
):
    camera = camera_factory(width=320, height=180, fps=10, gop_s=1.0)
    agent = agent_factory(agent_config(tmp_path, base_config, brokers, camera))
    first, second, third = brokers
    assert connected_broker(agent) == address(first)
    on_second = watch(watchers, second)

    killed_at = time.monotonic()
    first.kill()
    took = current_within(on_second, killed_at, FAILOVER_BOUND_S)
    print(f"failover to the next broker: state current after {took:.2f} s")
    assert took <= FAILOVER_BOUND_S
    assert connected_broker(agent) == address(second)
    assert metric(agent, "edgeagent_mqtt_failovers_total") == [("", 1.0)]
    late = watch(watchers, second)  # what a client arriving now gets: the retained state
    assert late.wait_for(AVAILABILITY, timeout=5).retain and late.last(AVAILABILITY).payload == b"online"
    assert late.wait_for(STATUS, timeout=5).retain and late.last(STATUS).payload == b"online"

    # The first broker returns: the agent stays where it is (two health rounds later it still is).
    first.start()
    back_at = time.monotonic()
    on_second.wait_for_count("edgeagent/cabinet-17/health", 2, timeout=15, since=back_at)
    assert connected_broker(agent) == address(second)
    assert metric(agent, "edgeagent_mqtt_failovers_total") == [("", 1.0)]

    # The one it is on goes away: on to the next of the list, the will given again there.
    on_third = watch(watchers, third)
    killed_at = time.monotonic()
    second.kill()
    assert current_within(on_third, killed_at, FAILOVER_BOUND_S) <= FAILOVER_BOUND_S
    assert connected_broker(agent) == address(third)
    agent.kill()
    on_third.wait_for(AVAILABILITY, lambda m: m.payload == b"offline", timeout=5, since=killed_at)


def test_an_unreachable_first_broker_is_passed_over_at_start(tmp_path, brokers, agent_factory, base_config, watchers):
    brokers[0].kill()  # nothing listens there now: connection refused
    on_second = watch(watchers, brokers[1])
    agent = agent_factory(agent_config(tmp_path, base_config, brokers))
    online = on_second.wait_for(AVAILABILITY, lambda m: m.payload == b"online", timeout=10)
    assert online.arrival - agent.started_at < 5
    assert connected_broker(agent) == address(brokers[1])
    assert metric(agent, "edgeagent_mqtt_failovers_total") == [("", 0.0)]  # never was anywhere else
