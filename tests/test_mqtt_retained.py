"""What the broker keeps of the agent, against a real mosquitto: ``mqtt.refresh_s`` puts back a retained
state the broker lost (here cleared behind the agent's back, as a cluster re-election was seen to lose
one), and ``mqtt.snapshot_retain: false`` leaves no snapshot on the broker while live subscribers still
get every one. On the NATS cluster: test_mqtt_cluster.py; the timing logic: test_mqtt_refresh.py.
"""

from __future__ import annotations

import time

import pytest

from tests.support.mqtt import MqttWatcher
from tests.test_mqtt_cluster import AVAILABILITY, BASE, SNAPSHOT, STATUS, connected_broker, metric

pytestmark = pytest.mark.timeout(60)

REFRESH_S = 5
MARGIN_S = 3.0  # the agent's loop turn and the broker's round trip, with room for a busy machine


def test_the_refresh_puts_back_a_retained_state_the_broker_lost(
    tmp_path, broker, agent_factory, base_config, mqtt_watcher_factory
):
    agent = agent_factory(base_config(tmp_path, broker, mqtt={"refresh_s": REFRESH_S}))
    live = mqtt_watcher_factory(f"{BASE}/#")
    live.wait_for(AVAILABILITY, lambda m: m.payload == b"online", timeout=15)
    connected_broker(agent)
    connects = metric(agent, "edgeagent_mqtt_connects_total")

    cleared_at = time.monotonic()
    live.publish(AVAILABILITY, b"", qos=1, retain=True)  # acknowledged: the broker holds none now
    cleared = live.wait_for(AVAILABILITY, lambda m: m.payload == b"", timeout=5, since=cleared_at)
    # What came after the clear (the broker delivers in its order): a refresh the broker had just before
    # the clear may still arrive after cleared_at, and the broker would then hold nothing.
    back = live.wait_for(
        AVAILABILITY, lambda m: m.payload == b"online", timeout=REFRESH_S + MARGIN_S, since=cleared.arrival
    )
    print(f"retained availability put back {back.arrival - cleared_at:.2f} s after it was cleared")
    assert back.arrival - cleared_at <= REFRESH_S + MARGIN_S
    # By the refresh on the same connection, not by a reconnect (which publishes everything too).
    assert metric(agent, "edgeagent_mqtt_connects_total") == connects
    with MqttWatcher(broker, AVAILABILITY) as late:  # and the broker keeps it again
        retained = late.wait_for(AVAILABILITY, timeout=5)
        assert retained.retain and retained.payload == b"online"


def test_snapshots_not_retained_reach_live_subscribers_and_no_late_one(
    tmp_path, broker, camera_factory, agent_factory, base_config, mqtt_watcher_factory
):
    # A snapshot the broker kept from before snapshot_retain was turned off: the agent clears it.
    with MqttWatcher(broker, SNAPSHOT) as before:
        before.publish(SNAPSHOT, b"\xff\xd8 an old picture", qos=1, retain=True)
    camera = camera_factory(width=320, height=180, fps=10, gop_s=1.0)
    cameras = {"north": {"url": camera.url, "snapshot": {"interval_s": 1, "width": 320}}}
    live = mqtt_watcher_factory(f"{BASE}/#")
    agent_factory(base_config(tmp_path, broker, cameras=cameras, mqtt={"snapshot_retain": False}))
    live.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
    jpeg = lambda m: m.payload[:2] == b"\xff\xd8" and m.payload != b"\xff\xd8 an old picture"  # noqa: E731
    snapshots = live.wait_for_count(SNAPSHOT, 2, jpeg, timeout=15)
    assert all(not m.retain and m.qos == 0 for m in snapshots)

    late = mqtt_watcher_factory(f"{BASE}/#")
    # Retained messages come right after the subscription, before anything published later: once a live
    # snapshot and the agent's retained status are in, a retained snapshot would have come first.
    late.wait_for(STATUS, lambda m: m.retain and m.payload == b"online", timeout=10)
    late.wait_for(SNAPSHOT, jpeg, timeout=10)
    assert [m for m in late.messages(SNAPSHOT) if m.retain] == []
    assert late.messages(f"{BASE}/availability")[0].retain  # the state itself is still retained
