"""The MQTT publisher's own timing, without a broker: the refresh plan (``mqtt.refresh_s``), the jittered
reconnect wait (and that paho really waits it), which states a refresh sends, and the settings' bounds.

The refresh against a real broker is in test_mqtt_retained.py, on the NATS cluster in test_mqtt_cluster.py.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from typing import Any

import pytest

from edgeagent.config import ConfigError
from edgeagent.configfile import parse_config
from edgeagent.publish import mqtt_timing
from edgeagent.publish.mqtt import MqttPublisher
from edgeagent.publish.mqtt_timing import FAILOVER_SETTLE_S, RECONNECT_MAX_S, RECONNECT_MIN_S, RefreshPlan
from tests.support.net import free_port


def mqtt_section(**mqtt: Any):
    config = parse_config({"agent": {"id": "c1"}, "mqtt": {"host": "127.0.0.1", "port": 1883, **mqtt}})
    assert config.mqtt is not None
    return config.mqtt


def test_a_connect_plans_the_next_refresh_one_interval_later() -> None:
    plan = RefreshPlan(300)
    assert plan.wait_s(0.0) is None  # nothing before the first connect
    plan.connected(100.0, failover=False)
    assert plan.wait_s(100.0) == 300
    assert plan.wait_s(350.0) == 50
    assert plan.wait_s(500.0) == 0  # overdue: now
    plan.refreshed(400.0)
    assert plan.wait_s(400.0) == 300


def test_a_failover_brings_one_refresh_forward_to_the_settle_delay() -> None:
    plan = RefreshPlan(300)
    plan.connected(0.0, failover=False)
    plan.connected(50.0, failover=True)  # moved to another broker: its connect replans
    assert plan.wait_s(50.0) == FAILOVER_SETTLE_S
    plan.refreshed(50.0 + FAILOVER_SETTLE_S)  # then back to the interval
    assert plan.wait_s(50.0 + FAILOVER_SETTLE_S) == 300
    plan.connected(400.0, failover=False)  # a reconnect to the same broker published everything itself
    assert plan.wait_s(400.0) == 300


def test_the_settle_delay_never_comes_after_the_interval() -> None:
    plan = RefreshPlan(5)
    plan.connected(0.0, failover=True)
    assert plan.wait_s(0.0) == 5


def test_refresh_s_0_plans_nothing() -> None:
    plan = RefreshPlan(0)
    plan.connected(0.0, failover=True)
    plan.refreshed(1.0)
    assert plan.wait_s(1.0) is None


def test_reconnect_waits_stay_in_their_bounds_and_spread_over_them() -> None:
    rng = random.Random(12)
    waits = [mqtt_timing.reconnect_delay(rng) for _ in range(20_000)]
    assert all(RECONNECT_MIN_S <= wait <= RECONNECT_MAX_S for wait in waits)
    assert RECONNECT_MIN_S == 0.5 and RECONNECT_MAX_S == 2.0  # the 5 s failover bound counts on at most 2 s
    # Evenly over the range (uniform: a tenth of them in each tenth of it), not at one or two steps.
    span = RECONNECT_MAX_S - RECONNECT_MIN_S
    tenths = [sum(1 for w in waits if RECONNECT_MIN_S + i * span / 10 <= w < RECONNECT_MIN_S + (i + 1) * span / 10)
              for i in range(10)]  # fmt: skip
    assert all(1700 < count < 2300 for count in tenths), tenths
    # Two cabinets losing the same broker at the same instant come back at different times.
    firsts = {round(mqtt_timing.reconnect_delay(random.Random(seed)), 3) for seed in range(100)}
    assert len(firsts) > 90


@pytest.mark.blocking_ok("start() runs paho's network thread; the test reads its clock from that thread")
async def test_paho_really_waits_the_jittered_time_between_attempts() -> None:
    # Two brokers, both refusing, as a cluster that is down. (With a single broker paho waits twice after
    # the very first refused attempt, in its two loops: at most 2 x 2 s, once, at start.)
    hosts = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nothing listens: refused at once
    publisher = MqttPublisher(mqtt_section(host=None, hosts=hosts, refresh_s=0), None, "c1")
    attempts: list[float] = []
    enough = threading.Event()
    fail = publisher._on_connect_fail

    def counted(client: Any, userdata: Any) -> None:
        attempts.append(time.monotonic())
        if len(attempts) >= 6:
            enough.set()
        fail(client, userdata)

    publisher._on_connect_fail = counted  # type: ignore[method-assign]
    publisher.start()
    try:
        assert await asyncio.to_thread(enough.wait, 6 * RECONNECT_MAX_S + 5)
    finally:
        await publisher.stop()
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    # Each gap is the wait plus a refused connect (a few ms) and paho's loop turn.
    assert all(RECONNECT_MIN_S - 0.05 <= gap <= RECONNECT_MAX_S + 0.5 for gap in gaps), gaps
    assert statistics.pstdev(gaps) > 0.02, gaps  # not paho's fixed steps (they would be 1, 2, 2, 2, 2)


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))


def test_a_refresh_sends_every_retained_state_as_it_is_now_and_nothing_else() -> None:
    publisher = MqttPublisher(mqtt_section(), None, "c1")
    client = RecordingClient()
    publisher._client, publisher.connected = client, True  # type: ignore[assignment]
    publisher.set_state("edgeagent/c1/cameras/north/status", "offline", retain=True, qos=1)
    publisher.set_state("edgeagent/c1/cameras/north/status", "online", retain=True, qos=1)
    publisher.set_state("edgeagent/c1/cameras/north/health", "{}", retain=False, qos=0)
    publisher.set_state("edgeagent/c1/cameras/gone/snapshot", b"", retain=True, qos=0)  # a cleared topic
    client.sent.clear()
    assert publisher.republish_retained() == 2
    assert client.sent == [
        ("edgeagent/c1/cameras/north/status", b"online", 1, True),
        ("edgeagent/c1/cameras/gone/snapshot", b"", 0, True),
    ]
    publisher.connected = False
    assert publisher.republish_retained() == 0  # the connect will publish them all anyway


@pytest.mark.parametrize("value", [1, 4, 86401, -1])
def test_refresh_s_out_of_bounds_is_one_clear_line(value: int) -> None:
    with pytest.raises(ConfigError) as bad:
        mqtt_section(refresh_s=value)
    assert len(bad.value.lines) == 1 and bad.value.lines[0].startswith("mqtt.refresh_s"), bad.value.lines


def test_refresh_and_snapshot_retain_defaults_and_limits() -> None:
    section = mqtt_section()
    assert section.refresh_s == 300 and section.snapshot_retain is True
    assert mqtt_section(refresh_s=0).refresh_s == 0
    assert mqtt_section(refresh_s=5).refresh_s == 5
    assert mqtt_section(refresh_s=86400, snapshot_retain=False).snapshot_retain is False


def test_spread_starts_each_agent_at_a_stable_broker_and_the_fleet_covers_every_node() -> None:
    hosts = {"host": None, "hosts": ["a.example:8883", "b.example:8883", "c.example:8883"]}
    assert MqttPublisher(mqtt_section(**hosts), None, "cabinet-17")._broker_index == 0  # not spread: the first
    spread = mqtt_section(**hosts, spread=True)
    starts = [MqttPublisher(spread, None, f"cabinet-{n}")._broker_index for n in range(300)]
    assert starts == [mqtt_timing.first_broker(f"cabinet-{n}", 3, True) for n in range(300)]  # same every time
    counts = [starts.count(index) for index in range(3)]
    assert min(counts) >= 70, counts  # 300 cabinets over 3 nodes: about 100 each, none left empty
    assert mqtt_timing.first_broker("cabinet-17", 1, True) == 0
