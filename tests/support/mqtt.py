"""An MQTT client for tests that records every message it sees and lets a test wait for one."""

from __future__ import annotations

import dataclasses
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Broker


@dataclasses.dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    arrival: float  # time.monotonic() when the watcher received it

    @property
    def t(self) -> float:
        return self.arrival

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


def topic_matches(pattern: str, topic: str) -> bool:
    """``pattern`` may be an exact topic or an MQTT filter with ``+``/``#``."""
    return pattern == topic or mqtt.topic_matches_sub(pattern, topic)


class MqttWatcher:
    """Subscribes to ``topic_filter`` (qos 1, or ``qos``) and keeps every message, retained ones included.

    ``tls``: ``None``/``"plain"`` (the broker's plain port), ``"tls"`` (CA check) or ``"mtls"`` (client cert).
    """

    def __init__(
        self,
        broker: Broker,
        topic_filter: str = "#",
        *,
        tls: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
        qos: int = 1,
    ) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.qos = qos
        self.tls = tls or "plain"
        self.client_id = client_id or f"watcher-{uuid.uuid4().hex[:8]}"
        self.connect_timeout = connect_timeout
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._subscribed = False
        self._connect_rc: Any = None
        self._disconnects = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        self.client.username_pw_set(username or broker.username, password or broker.password)
        self.port = broker.port
        if self.tls in ("tls", "mtls"):
            kwargs: dict[str, Any] = {"ca_certs": str(broker.ca_file), "tls_version": ssl.PROTOCOL_TLS_CLIENT}
            if self.tls == "mtls":
                kwargs.update(certfile=str(broker.client_cert), keyfile=str(broker.client_key))
            self.client.tls_set(**kwargs)
            self.port = broker.tls_port if self.tls == "tls" else broker.mtls_port
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._connect_rc = reason_code
            self._cond.notify_all()
        if not reason_code.is_failure:
            # (Re)subscribe on every connection, so the watcher survives a broker restart.
            client.subscribe(self.topic_filter, qos=self.qos)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._subscribed = False
            self._disconnects += 1
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        m = Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.monotonic())
        with self._cond:
            self._messages.append(m)
            self._cond.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MqttWatcher:
        """Connect, subscribe and return once the broker acknowledged the subscription."""
        self.client.connect(self.broker.host, self.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + self.connect_timeout
        failure: BaseException | None = None
        with self._cond:
            while not self._subscribed:
                rc = self._connect_rc
                if rc is not None and rc.is_failure:
                    failure = ConnectionError(f"MQTT connect refused: {rc}")
                elif self._disconnects:
                    failure = ConnectionError("MQTT connection dropped before the subscription was acknowledged")
                elif (remaining := deadline - time.monotonic()) <= 0:
                    failure = TimeoutError(f"no SUBACK for {self.topic_filter!r} in {self.connect_timeout} s")
                if failure is not None:
                    break
                self._cond.wait(remaining)
        if failure is not None:
            # Outside the lock: the network thread may be waiting for it in a callback.
            self.close()
            raise failure
        return self

    def wait_subscribed(self, timeout: float = 15.0) -> None:
        """After a broker restart: wait until paho reconnected and subscribed again."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._subscribed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("watcher did not resubscribe")
                self._cond.wait(remaining)

    def close(self) -> None:
        """Stop the network thread first, then disconnect (no reconnect attempts in between)."""
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:
            pass

    def __enter__(self) -> MqttWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def messages(self, topic: str | None = None) -> list[Message]:
        """Every recorded message (since the last ``clear()``) whose topic matches ``topic`` (a filter)."""
        with self._cond:
            return [m for m in self._messages if topic is None or topic_matches(topic, m.topic)]

    def last(self, topic: str) -> Message | None:
        found = self.messages(topic)
        return found[-1] if found else None

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(
        self,
        topic: str,
        predicate: Callable[[Message], bool] | None = None,
        timeout: float = 10.0,
        *,
        since: float | None = None,
    ) -> Message:
        """The first recorded message (already there or still to come) matching ``topic`` (exact or filter),
        ``predicate`` and, if given, arrived at or after ``since`` (a ``time.monotonic()`` value)."""
        return self.wait_for_count(topic, 1, predicate, timeout, since=since)[0]

    def wait_for_count(
        self,
        topic: str,
        count: int,
        predicate: Callable[[Message], bool] | None = None,
        timeout: float = 10.0,
        *,
        since: float | None = None,
    ) -> list[Message]:
        """Wait until ``count`` matching messages were recorded; return the first ``count`` of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    m
                    for m in self._messages
                    if topic_matches(topic, m.topic)
                    and (since is None or m.arrival >= since)
                    and (predicate is None or predicate(m))
                ]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({m.topic for m in self._messages})
                    raise TimeoutError(
                        f"{len(found)}/{count} messages on {topic!r} after {timeout} s; topics seen: {seen}"
                    )
                self._cond.wait(remaining)

    def publish(
        self, topic: str, payload: str | bytes | dict | list, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and wait until the broker acknowledged it (qos >= 1) or it was sent (qos 0)."""
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=10)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic!r} not acknowledged")
