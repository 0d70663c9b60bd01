"""When the MQTT publisher acts on its own: the wait before a reconnect, and when the retained states are
published again (``mqtt.refresh_s``). Pure logic, on a clock the caller gives.

Reconnects: paho's own delay is the same for every client (1 s, then 2 s), so a fleet whose broker node
went away comes back all at the same instant; a random wait in a range spreads it, and stays short enough
for the agent to be current within 5 s of a failover.

Refreshes: a broker cluster was seen to lose retained updates while it re-elected (NATS: a stale
``offline`` kept on one node while the agent was online, see docs/fleet.md), and nothing else would
ever correct that; so every retained state goes out again every ``refresh_s``, and once ``settle_s``
after a failover, the moment such a loss happens.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 2.0
FAILOVER_SETTLE_S = 10.0


def first_broker(agent_id: str, brokers: int, spread: bool) -> int:
    """Where an agent starts in its broker list: the first, or (``mqtt.spread``) one picked by a stable hash of
    its id, so that a fleet whose cabinets all list the nodes in the same order does not sit on one node."""
    if not spread or brokers < 2:
        return 0
    digest = hashlib.sha256(agent_id.encode()).digest()  # not hash(): Python salts it per process
    return int.from_bytes(digest[:8], "big") % brokers


def reconnect_delay(rng: random.Random) -> float:
    """The wait before the next reconnect attempt, in seconds: a new draw for each attempt."""
    return rng.uniform(RECONNECT_MIN_S, RECONNECT_MAX_S)


@dataclass(slots=True)
class RefreshPlan:
    """When the retained states go out again (times in seconds on one monotonic clock).

    A connect publishes everything, so the next refresh is ``interval_s`` after it; after a failover it
    comes ``settle_s`` after the connect (sooner if ``interval_s`` is shorter), then every ``interval_s``.
    ``interval_s`` 0: never (only on connect)."""

    interval_s: float
    settle_s: float = FAILOVER_SETTLE_S
    due: float | None = None

    def connected(self, now: float, failover: bool) -> None:
        if self.interval_s > 0:
            self.due = now + (min(self.settle_s, self.interval_s) if failover else self.interval_s)

    def refreshed(self, now: float) -> None:
        if self.interval_s > 0:
            self.due = now + self.interval_s

    def wait_s(self, now: float) -> float | None:
        """Seconds until the next refresh (0: now), or None while none is planned."""
        return None if self.due is None else max(0.0, self.due - now)
