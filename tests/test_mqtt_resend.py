"""A reconnect never sends an older state after a newer one, with the real paho client and two brokers
that speak just enough MQTT 3.1.1 to be told apart: the first never acknowledges a publish, then dies;
the second records what it gets, in order.

paho keeps the unacknowledged qos 1 messages of a connection and sends them again after a reconnect,
after what ``on_connect`` published: the camera status ``offline`` published before the failover then
reached the next broker after the ``online`` the agent published there, and stayed retained (seen with
three mosquittos in tests/test_mqtt_failover.py on a loaded machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import pytest

from edgeagent.configfile import parse_config
from edgeagent.publish.mqtt import MqttPublisher
from tests.support.net import free_port

STATUS = "edgeagent/c1/cameras/north/status"


def _read_packet(conn: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first = exactly(1)[0]
    length, shift = 0, 0
    while True:
        byte = exactly(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return first, exactly(length)


class TinyBroker:
    """Accepts one client at a time on 127.0.0.1; ``acknowledge`` False: PUBLISHes are read and never
    acknowledged. ``published`` holds (topic, payload, dup) in the order they came."""

    def __init__(self, acknowledge: bool) -> None:
        self.acknowledge = acknowledge
        self.port = free_port()
        self.published: list[tuple[str, bytes, bool]] = []
        self.got = threading.Condition()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._client: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._client = conn
            conn.settimeout(10)
            try:
                self._session(conn)
            except (ConnectionError, OSError):
                pass
            finally:
                conn.close()

    def _session(self, conn: socket.socket) -> None:
        while True:
            kind, body = _read_packet(conn)
            kind_type = kind >> 4
            if kind_type == 1:  # CONNECT
                conn.sendall(b"\x20\x02\x00\x00")
            elif kind_type == 3:  # PUBLISH
                qos = (kind >> 1) & 3
                topic_length = int.from_bytes(body[:2], "big")
                start = 2 + topic_length + (2 if qos else 0)
                with self.got:
                    self.published.append((body[2 : 2 + topic_length].decode(), body[start:], bool(kind & 0x08)))
                    self.got.notify_all()
                if qos and self.acknowledge:
                    conn.sendall(b"\x40\x02" + body[2 + topic_length : start])
            elif kind_type == 12:  # PINGREQ
                conn.sendall(b"\xd0\x00")

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        with self.got:
            if not self.got.wait_for(lambda: predicate(self.published), timeout):
                raise TimeoutError(f"got only {self.published}")

    def kill(self) -> None:
        """The broker dies: its listening socket and its client's connection close."""
        self._stop.set()
        self._server.close()
        if self._client is not None:
            with contextlib.suppress(OSError):  # closed already
                self._client.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)


def disconnected(publisher: MqttPublisher, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while publisher.connected:  # polled: the publisher has no event for it
        if time.monotonic() > deadline:
            raise TimeoutError("the publisher did not notice its broker died")
        time.sleep(0.01)


@pytest.mark.blocking_ok("the test's own brokers wait on sockets and conditions in their threads")
async def test_a_state_from_before_a_failover_is_not_sent_again_after_the_new_one() -> None:
    silent, recording = TinyBroker(acknowledge=False), TinyBroker(acknowledge=True)
    try:
        hosts = [f"127.0.0.1:{silent.port}", f"127.0.0.1:{recording.port}"]
        config = parse_config({"agent": {"id": "c1"}, "mqtt": {"hosts": hosts, "refresh_s": 0}})
        assert config.mqtt is not None
        publisher = MqttPublisher(config.mqtt, None, "c1")
        publisher.set_state(STATUS, "offline")  # as at the agent's start: offline until the camera is up
        publisher.start()
        try:
            await asyncio.to_thread(silent.wait_for, lambda got: (STATUS, b"offline", False) in got)
            silent.kill()  # the offline was never acknowledged: paho keeps it to send again
            await asyncio.to_thread(disconnected, publisher)
            publisher.set_state(STATUS, "online")  # the camera came online while the agent had no broker
            await asyncio.to_thread(recording.wait_for, lambda got: (STATUS, b"online", False) in got)
            # Whatever paho sends again comes right behind what on_connect published: a probe marks the end.
            publisher.set_state("edgeagent/c1/probe", "end")
            await asyncio.to_thread(recording.wait_for, lambda got: got[-1][0] == "edgeagent/c1/probe")
        finally:
            await publisher.stop()
    finally:
        silent.kill()
        recording.kill()
    statuses = [payload for topic, payload, _ in recording.published if topic == STATUS]
    assert statuses[-1] == b"online", recording.published
    assert not any(dup for _, _, dup in recording.published), recording.published  # nothing sent again
