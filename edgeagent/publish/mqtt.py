"""MQTT: the agent's state on the broker, kept current across broker restarts and network loss.

paho runs its network loop in its own thread; nothing here blocks the event loop. The publisher keeps
only the latest payload of each state topic (nothing unbounded while the broker is away) and publishes
all of them again on every connect, so retained state is right even after a broker that keeps none.
The retained ones go out again every ``refresh_s`` and once a few seconds after a failover, and paho
waits a random time before each reconnect (why: mqtt_timing.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from edgeagent.config import MqttSection
from edgeagent.health import MqttHealth
from edgeagent.publish.command_limits import MAX_TOPIC_CHARS
from edgeagent.publish.mqtt_timing import RefreshPlan, first_broker, reconnect_delay
from edgeagent.publish.topics import AVAILABILITY, TOPIC_LOG_CHARS

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
# A broker that does not answer the TCP (and TLS) handshake in this time is given up for the next one.
CONNECT_TIMEOUT_S = 3
MAX_QUEUED_MESSAGES = 200
# Commands waiting for the event loop, at most: a flood from the broker is dropped in paho's thread (and
# counted), not queued on the loop without bound. Topics longer than MAX_TOPIC_CHARS are dropped unread.
MAX_PENDING_COMMANDS = 256
# Commands are subscribed at qos 0: with a clean session nothing is kept for the agent while it is away, so
# qos 1 would add nothing but state on the broker; on a NATS cluster that state (a JetStream consumer per
# subscription) must be deleted before the agent may connect again through another node, which took 5-13 s
# after a node died.
COMMAND_QOS = 0

# handler(topic, payload): called on the event loop; a coroutine it returns runs as a task kept until done
CommandHandler = Callable[[str, bytes], Awaitable[None] | None]


@dataclass(slots=True)
class _State:
    payload: bytes
    retain: bool
    qos: int


class MqttPublisher:
    def __init__(self, section: MqttSection, password: SecretStr | None, agent_id: str) -> None:
        self.section = section
        self.base = f"{section.topic_prefix}/{agent_id}"
        self.availability_topic = AVAILABILITY.under(self.base)
        self._password = password
        self._client_id = section.client_id or f"edgeagent-{agent_id}"
        self._states: dict[str, _State] = {}
        # Held while the state of a topic changes and is sent, and while paho republishes every state on a
        # connect: without it a republish of an older state could reach the broker after a newer one
        # (seen: a camera's retained status left at `offline` after a failover while it was online).
        self._states_lock = threading.Lock()
        self._subscriptions: dict[str, CommandHandler] = {}
        self._handler_tasks: set[asyncio.Task[None]] = set()  # referenced until done (asyncio keeps weak ones)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self.connected = False
        self._stopping = False
        self.connects = 0
        self.last_error: str | None = None
        # Each written by one thread only (paho's, the loop's): their difference is the backlog.
        self._commands_queued = 0
        self._commands_handled = 0
        self.commands_dropped = 0
        self.brokers = section.brokers
        self._broker_index = first_broker(agent_id, len(self.brokers), section.spread)  # connected to, or tried
        self.broker: str | None = None  # "host:port" while connected
        self._last_broker: str | None = None
        self.failovers = 0  # connections to another broker than the one before
        self._rng = random.Random()  # noqa: S311 - spreads reconnects, no secret
        self._refresh_plan = RefreshPlan(float(section.refresh_s))
        self._replanned = asyncio.Event()  # set on the loop when a connect changed the plan
        self._refresh_task: asyncio.Task[None] | None = None
        self.refreshes = 0

    # -- lifetime ---------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        client.enable_logger(logging.getLogger("edgeagent.paho"))
        client.will_set(self.availability_topic, OFFLINE, qos=AVAILABILITY.qos, retain=AVAILABILITY.retained)
        if self.section.username is not None:
            secret = self._password.get_secret_value() if self._password else None
            client.username_pw_set(self.section.username, secret)
        tls = self.section.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        self._jitter_reconnect(client)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = self._make_client()
        self._states[self.availability_topic] = _State(ONLINE, AVAILABILITY.retained, AVAILABILITY.qos)
        if self.section.refresh_s > 0:
            self._refresh_task = self._loop.create_task(self._refresh_loop(), name="mqtt refresh")
        # connect_async never blocks: the network loop thread connects, and keeps reconnecting.
        host, port = self.brokers[self._broker_index]
        self._client.connect_async(host, port, keepalive=self.section.keepalive_s)
        self._client.loop_start()

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Say ``offline`` ourselves (the broker sends the will only for an unclean end), then leave."""
        client = self._client
        if client is None:
            return
        if self._refresh_task is not None:  # before ``offline``: nothing is published after it
            self._refresh_task.cancel()
            await asyncio.gather(self._refresh_task, return_exceptions=True)
            self._refresh_task = None
        self._states[self.availability_topic] = _State(OFFLINE, AVAILABILITY.retained, AVAILABILITY.qos)
        self._stopping = True
        if self.connected:
            info = client.publish(self.availability_topic, OFFLINE, qos=AVAILABILITY.qos, retain=AVAILABILITY.retained)
            try:
                await asyncio.to_thread(info.wait_for_publish, timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("mqtt: could not publish offline before stopping: %s", exc)

        def leave() -> None:
            # Stop the network thread first, so it does not report the socket that disconnect() closes.
            client.loop_stop()
            client.disconnect()

        await asyncio.to_thread(leave)
        self._client = None
        for task in list(self._handler_tasks):
            task.cancel()
        await asyncio.gather(*self._handler_tasks, return_exceptions=True)

    def health(self) -> MqttHealth:
        return MqttHealth(self.connected, self.broker, self.failovers, self.connects)

    # -- publishing -------------------------------------------------------------------------------

    def set_state(self, topic: str, payload: bytes | str, retain: bool = True, qos: int = 1) -> None:
        """Make ``payload`` the current state of ``topic``: published now if connected, else on connect."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._states_lock:
            self._states[topic] = _State(data, retain, qos)
            if self.connected and self._client is not None:
                self._client.publish(topic, data, qos=qos, retain=retain)

    def republish_retained(self) -> int:
        """Every retained state once more (also an empty one: a cleared topic stays cleared); how many."""
        with self._states_lock:  # ordered with set_state: a newer state is never overtaken by this one
            client = self._client
            if not self.connected or client is None:
                return 0
            retained = [(topic, state) for topic, state in self._states.items() if state.retain]
            for topic, state in retained:
                client.publish(topic, state.payload, qos=state.qos, retain=True)
        self.refreshes += 1
        return len(retained)

    async def _refresh_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._replanned.clear()
            wait = self._refresh_plan.wait_s(loop.time())
            try:
                await asyncio.wait_for(self._replanned.wait(), wait)
                continue  # a connect planned anew
            except TimeoutError:
                pass
            count = self.republish_retained()
            self._refresh_plan.refreshed(loop.time())
            log.debug("mqtt: %d retained states published again", count)

    def _plan_refresh(self, failover: bool) -> None:
        """On the loop, after a connect (which published everything)."""
        loop = asyncio.get_running_loop()
        self._refresh_plan.connected(loop.time(), failover)
        self._replanned.set()

    def publish(self, topic: str, payload: bytes | str, qos: int = 0) -> None:
        """A one-off message (an answer to a request); dropped when not connected."""
        if self.connected and self._client is not None:
            self._client.publish(topic, payload, qos=qos, retain=False)

    def subscribe(self, topic_filter: str, handler: CommandHandler) -> None:
        """``handler(topic, payload)`` runs on the event loop for every message matching the filter."""
        self._subscriptions[topic_filter] = handler
        if self.connected and self._client is not None:
            self._client.subscribe(topic_filter, qos=COMMAND_QOS)

    # -- paho thread ------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("mqtt: %s", self.last_error)
            return
        host, port = self.brokers[self._broker_index]
        broker = f"{host}:{port}"
        failover = self._last_broker is not None and broker != self._last_broker
        if failover:
            self.failovers += 1
        self.broker = self._last_broker = broker
        self.connects += 1
        self.last_error = None
        log.info("mqtt: connected to %s", broker)
        with self._states_lock:
            self.connected = True
            # After this callback paho sends the previous connection's unacknowledged messages again, after
            # the ones below (seen: a status ``offline`` from before a failover retained over the ``online``
            # published here). Every state goes out anew now; one-off messages are dropped when not
            # connected anyway.
            client.drop_out_messages()
            for topic_filter in list(self._subscriptions):
                client.subscribe(topic_filter, qos=COMMAND_QOS)
            for topic, state in list(self._states.items()):
                client.publish(topic, state.payload, qos=state.qos, retain=state.retain)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._plan_refresh, failover)

    def _on_disconnect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._stopping:
            log.warning("mqtt: disconnected (%s); reconnecting", reason_code)
        self.connected = False
        self.broker = None
        if reason_code.is_failure:
            self.last_error = f"disconnected: {reason_code}"
        self._next_broker(client)
        self._jitter_reconnect(client)

    def _on_connect_fail(self, client: mqtt.Client, userdata) -> None:
        host, port = self.brokers[self._broker_index]
        self.last_error = f"cannot reach {host}:{port}"
        self._next_broker(client)
        self._jitter_reconnect(client)

    def _jitter_reconnect(self, client: mqtt.Client) -> None:
        """A fresh random wait before paho's next attempt. paho (2.2) waits ``min_delay`` after
        ``reconnect_delay_set`` (doubling up to ``max_delay`` only while it is not set again), and runs
        this before each wait: on_disconnect and on_connect_fail come first. paho types the delay as an
        int but only adds it to the clock: a float works."""
        delay = reconnect_delay(self._rng)
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]  # see above

    def _next_broker(self, client: mqtt.Client) -> None:
        """Point paho's next (re)connect at the next broker of the list: a cluster node that went away is
        left for another, and the agent then stays there as long as that one works."""
        if len(self.brokers) < 2 or self._stopping:
            return
        self._broker_index = (self._broker_index + 1) % len(self.brokers)
        host, port = self.brokers[self._broker_index]
        # Only sets where paho's loop reconnects to; the will and the credentials stay on the client.
        client.connect_async(host, port, keepalive=self.section.keepalive_s)

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        if self._loop is None:
            return
        topic = message.topic
        backlog = self._commands_queued - self._commands_handled
        if len(topic) > MAX_TOPIC_CHARS or backlog >= MAX_PENDING_COMMANDS:
            self.commands_dropped += 1
            return
        for topic_filter, handler in self._subscriptions.items():
            if mqtt.topic_matches_sub(topic_filter, topic):
                payload = bytes(message.payload)
                self._commands_queued += 1
                self._loop.call_soon_threadsafe(self._dispatch, handler, topic, payload)

    def _dispatch(self, handler: CommandHandler, topic: str, payload: bytes) -> None:
        self._commands_handled += 1
        try:
            result = handler(topic, payload)
        except Exception:
            log.exception("mqtt: handler for %s failed", topic[:TOPIC_LOG_CHARS])
            return
        if asyncio.iscoroutine(result):
            task: asyncio.Task[None] = asyncio.ensure_future(result)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("mqtt: command handler failed: %s", task.exception())
