"""The agent past one broker: a real three-node NATS JetStream cluster (its MQTT listener), and a cabinet
mosquitto bridged up to it.

The agent is given all three nodes (``mqtt.hosts``) and stays on the first while it works; the node it is
on is killed and its retained state must be current again through another node. The agent's own part
(notice, connect to the next node, publish its kept state) takes about 1 s and is held to 5 s against
plain brokers in test_mqtt_failover.py. Here NATS adds its own: when the killed node led one of the
JetStream streams behind MQTT (sessions, retained messages, qos 1 messages), the survivors elect a new
leader first (Raft election timeout 4-9 s, not configurable), and a node refuses or drops MQTT work that
JetStream does not acknowledge within its ``js_api_timeout`` (5 s). Measured here: 1.0 s when the killed
node led none of them, 5-11 s when it did; so the bound below is NATS's, and the time is printed.
A survivor's retained store may still miss the agent's republish after that (seen in CI: a late
subscriber there got the ``offline`` from the agent's start); the agent's refresh (``mqtt.refresh_s``)
puts it right, and the test holds it to a bound.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.broker import Broker
from tests.support.mqtt import MqttWatcher
from tests.support.nats import NatsCluster

pytestmark = pytest.mark.timeout(90)

BASE = "edgeagent/cabinet-17"
AVAILABILITY = f"{BASE}/availability"
STATUS = f"{BASE}/cameras/north/status"
SNAPSHOT = f"{BASE}/cameras/north/snapshot"
BRIDGE_STATE = f"{BASE}/bridge/state"
NATS_FAILOVER_BOUND_S = 20.0  # worst election (9 s) + a refused attempt (5 s) + reconnect delays
# A survivor's retained map was seen to miss the agent's republish on its new connection (a late subscriber
# there got the ``offline`` from the agent's start): the agent's refresh puts it right. Bound: the refresh
# after the failover (at most REFRESH_S after the connect) and two more, for one lost while JetStream was
# still catching up.
REFRESH_S = 5
LATE_BOUND_S = 3 * REFRESH_S + 5.0


@pytest.fixture
def cluster(tmp_path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats") as running:
        yield running


@pytest.fixture
def watchers() -> Iterator[list[MqttWatcher]]:
    made: list[MqttWatcher] = []
    yield made
    for watcher in made:
        watcher.close()


def watch(made: list[MqttWatcher], node, topic_filter: str = f"{BASE}/#") -> MqttWatcher:
    watcher = MqttWatcher(node, topic_filter)  # type: ignore[arg-type] - a node quacks like a Broker
    made.append(watcher)
    return watcher.start()


def small_camera(camera_factory):
    return camera_factory(width=320, height=180, fps=10, gop_s=1.0)


def cluster_config(tmp_path, base_config, cluster: NatsCluster, camera, **mqtt) -> dict:
    cameras = {"north": {"url": camera.url, "snapshot": {"interval_s": 2, "width": 320}}} if camera else {}
    # Starts from the first node's address and credentials; then every node, first one preferred.
    return base_config(
        tmp_path, cluster[0], cameras=cameras, health_interval_s=2,
        mqtt={"host": None, "hosts": cluster.addresses, **mqtt},
    )  # fmt: skip


def retained_within(node, topic: str, payload: bytes, bound_s: float) -> tuple[float, list[bytes | None]]:
    """Seconds until a subscriber arriving on ``node`` gets ``payload`` as ``topic``'s retained message,
    and what the tries before got (None: no retained message, or no subscription).

    Each try is a fresh subscription, at qos 0: what is tested is the node's retained store, not the
    JetStream consumer a qos 1 subscription needs (one made during an election was seen to get none).
    After a wrong (or no) retained message the next try waits for the agent's next publish of the topic
    (its refresh) on that subscription, so the tries follow the agent's republishing, not a timer."""
    started = time.monotonic()
    seen: list[bytes | None] = []
    while (remaining := started + bound_s - time.monotonic()) > 0:
        try:
            watcher = MqttWatcher(node, topic, connect_timeout=min(5.0, remaining), qos=0).start()
        except (ConnectionError, TimeoutError, OSError):  # a node still catching up may drop a client
            seen.append(None)
            continue
        try:
            subscribed = time.monotonic()
            try:
                first = watcher.wait_for(topic, lambda m: m.retain, timeout=min(3.0, remaining))
            except TimeoutError:
                first = None
            if first is not None and first.payload == payload:
                return time.monotonic() - started, seen
            seen.append(None if first is None else first.payload)
            next_publish_s = min(REFRESH_S + 2.0, max(0.0, started + bound_s - time.monotonic()))
            with contextlib.suppress(TimeoutError):  # the agent's next publish of it, then try again
                watcher.wait_for(topic, lambda m: not m.retain, timeout=next_publish_s, since=subscribed)
        finally:
            watcher.close()
    raise AssertionError(f"no retained {payload!r} on {topic} through {node.name} in {bound_s} s; got {seen}")


def metric(agent, name: str) -> list[tuple[str, float]]:
    """Every sample of ``name`` as (labels text, value), from the agent's /metrics."""
    request = urllib.request.Request(f"{agent.http_url}/metrics", headers={"Authorization": f"Bearer {agent.token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    return [(m[1] or "", float(m[2])) for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M)]


def connected_broker(agent, timeout: float = 15.0) -> str:
    agent.wait_log("running", timeout=timeout)  # HTTP listens before the agent says so
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = metric(agent, "edgeagent_mqtt_broker")
        if samples:
            return re.search(r'broker="([^"]+)"', samples[0][0]).group(1)  # type: ignore[union-attr]
        time.sleep(0.2)  # polled: the agent's metrics have no event to wait on
    raise TimeoutError("the agent reports no broker")


def connects_settled(agent, watcher: MqttWatcher, rounds: int = 3) -> float:
    """Wait until ``rounds`` agent health messages in a row came over one connection; return the time."""
    while True:
        connects = metric(agent, "edgeagent_mqtt_connects_total")
        since = time.monotonic()
        watcher.wait_for_count(f"{BASE}/health", rounds, timeout=NATS_FAILOVER_BOUND_S, since=since)
        if metric(agent, "edgeagent_mqtt_connects_total") == connects:
            return time.monotonic()


def test_state_published_through_one_node_is_seen_on_the_others(
    tmp_path, cluster, camera_factory, agent_factory, base_config, watchers
):
    camera = small_camera(camera_factory)
    agent = agent_factory(cluster_config(tmp_path, base_config, cluster, camera))
    assert connected_broker(agent) == cluster[0].address  # stays on the first one while it works
    live = watch(watchers, cluster[1])
    live.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
    live.wait_for(SNAPSHOT, timeout=20)
    for node in cluster.nodes[1:]:  # clients arriving now get the state from the retained store
        late = watch(watchers, node)
        assert late.wait_for(AVAILABILITY, timeout=10).retain and late.last(AVAILABILITY).payload == b"online"
        assert late.wait_for(STATUS, timeout=10).retain and late.last(STATUS).payload == b"online"
        snapshot = late.wait_for(SNAPSHOT, timeout=10)
        assert snapshot.retain and snapshot.payload[:2] == b"\xff\xd8"  # a JPEG
    assert metric(agent, "edgeagent_mqtt_failovers_total") == [("", 0.0)]


def test_killing_the_agents_node_fails_over_and_the_state_is_current_again(
    tmp_path, cluster, camera_factory, agent_factory, base_config, watchers
):
    camera = small_camera(camera_factory)
    agent = agent_factory(cluster_config(tmp_path, base_config, cluster, camera, refresh_s=REFRESH_S))
    first = cluster.node_at(connected_broker(agent))
    others = [node for node in cluster.nodes if node is not first]
    before = [watch(watchers, node) for node in others]
    for watcher in before:
        watcher.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)

    killed_at = time.monotonic()
    first.kill()
    arrivals = {}
    for topic, payload in ((AVAILABILITY, b"online"), (STATUS, b"online"), (SNAPSHOT, None)):
        seen = before[0].wait_for(
            topic, (lambda m, p=payload: p is None or m.payload == p), timeout=NATS_FAILOVER_BOUND_S, since=killed_at
        )
        arrivals[topic.rsplit("/", 1)[1]] = seen.arrival - killed_at
    failover_s = max(arrivals.values())
    print(f"failover: state current again after {failover_s:.2f} s ({arrivals})")
    assert failover_s <= NATS_FAILOVER_BOUND_S, arrivals

    now_on = connected_broker(agent)
    assert now_on in {node.address for node in others}
    # Counted once per change of broker: twice when the first survivor tried dropped the agent because
    # JetStream had not yet re-elected (the agent then went on to the third node).
    assert metric(agent, "edgeagent_mqtt_failovers_total")[0][1] >= 1
    # A client that arrives now on the survivor the agent is not on gets the current state from that
    # node's retained store: at once, or at the latest once the agent's refresh came through.
    other = next(node for node in others if node.address != now_on)
    for topic in (AVAILABILITY, STATUS):
        took, before_that = retained_within(other, topic, b"online", LATE_BOUND_S)
        print(f"late subscriber on {other.name}: retained {topic} online after {took:.2f} s (tries before: "
              f"{before_that})")  # fmt: skip

    # Killed only once the connection it is on has outlived JetStream's catching up: a node that closes
    # the agent's connection itself (no JetStream ack within js_api_timeout, 5 s after the election) was
    # seen to send no will at all, so an agent that dies in those seconds is not reported offline.
    settled = connects_settled(agent, before[0])
    agent.kill()  # the last will was given again on the new connection
    before[0].wait_for(AVAILABILITY, lambda m: m.payload == b"offline", timeout=15, since=settled)
    # Not asserted, because NATS does not keep it: a retained ``offline`` through the other survivor.
    # After a re-election, fresh subscribers there were seen to get the old ``online``, or no retained
    # message at all for 10 s, and a qos 1 subscription made during the election got no JetStream
    # consumer (NATS logged a timeout). See docs/fleet.md.


def test_sigkill_of_the_agent_delivers_offline_on_every_node(tmp_path, cluster, agent_factory, base_config, watchers):
    every = [watch(watchers, node) for node in cluster.nodes]
    agent = agent_factory(cluster_config(tmp_path, base_config, cluster, None))
    for watcher in every:
        watcher.wait_for(AVAILABILITY, lambda m: m.payload == b"online", timeout=20)
    killed_at = time.monotonic()
    agent.kill()
    for watcher in every:
        offline = watcher.wait_for(AVAILABILITY, lambda m: m.payload == b"offline", timeout=15, since=killed_at)
        assert offline.arrival - killed_at < 5


def bridge_lines(cluster: NatsCluster) -> str:
    """The cabinet's mosquitto carries the agent's topics up to the cluster (any node), and commands down."""
    addresses = " ".join(cluster.addresses)
    return (
        "\nconnection central\n"
        f"addresses {addresses}\n"
        "round_robin false\n"
        "bridge_protocol_version mqttv311\n"
        "try_private false\n"  # NATS is not a mosquitto: no private bridge flag
        "cleansession true\n"
        "keepalive_interval 5\n"
        "restart_timeout 1 5\n"
        "remote_clientid cabinet-17-bridge\n"
        f"remote_username {cluster.username}\nremote_password {cluster.password}\n"
        "notifications true\n"
        f"notification_topic {BRIDGE_STATE}\n"
        f"topic {BASE}/# out 1\n"
        f"topic {BASE}/cameras/+/snapshot/request in 1\n"
    )


def test_cabinet_mosquitto_bridged_to_the_cluster(
    tmp_path, tls_files, cluster, camera_factory, agent_factory, base_config, watchers
):
    local = Broker(tmp_path / "cabinet-mosquitto", tls_files)
    local.config_file.write_text(local.config_file.read_text() + bridge_lines(cluster))
    try:
        local.start()
        camera = small_camera(camera_factory)
        cameras = {"north": {"url": camera.url, "snapshot": {"interval_s": 2, "width": 320}}}
        agent_factory(base_config(tmp_path, local, cameras=cameras))
        centre = watch(watchers, cluster[1])
        centre.wait_for(BRIDGE_STATE, lambda m: m.payload == b"1", timeout=20)
        # Retained: a subscriber that comes later gets it too (a live delivery carries no retain flag).
        later = watch(watchers, cluster[2])
        assert later.wait_for(BRIDGE_STATE, lambda m: m.payload == b"1", timeout=10).retain
        centre.wait_for(AVAILABILITY, lambda m: m.payload == b"online", timeout=20)
        centre.wait_for(STATUS, lambda m: m.payload == b"online", timeout=20)
        assert centre.wait_for(SNAPSHOT, timeout=20).payload[:2] == b"\xff\xd8"
        # A command from the centre reaches the agent through the bridge: a snapshot now.
        asked_at = time.monotonic()
        centre.publish(f"{BASE}/cameras/north/snapshot/request", b"", qos=1)
        centre.wait_for(SNAPSHOT, timeout=10, since=asked_at)

        killed_at = time.monotonic()
        local.kill()  # the cabinet's broker dies: its bridge's will says the link is down
        down = centre.wait_for(BRIDGE_STATE, lambda m: m.payload == b"0", timeout=20, since=killed_at)
        print(f"bridge down seen at the centre after {down.arrival - killed_at:.2f} s")
        late = watch(watchers, cluster[2])
        assert late.wait_for(BRIDGE_STATE, timeout=10).payload == b"0"
    finally:
        local.kill()
