"""A network namespace joined to this one by a veth pair, for devices that must not reach the network.

An ONVIF device announces itself by multicast and answers multicast probes: run it in a namespace of its
own so that nothing it sends can leave this machine. The link uses an address pair from 198.18.0.0/15
(set aside for network tests); inside, a route for 224.0.0.0/4 lets the device join and answer multicast.
Nothing is changed in this namespace but the one veth end, which goes away with the namespace.

Making a namespace needs root (tests run as root here and in CI): failure to make one is an error, never
a skip.

Two tests (two pytest-xdist workers) that put the same address on two host-side veths route each other's
traffic into the wrong namespace: a publication reached the other test's media server and died with it.
``address_claim`` makes every choice of link addresses unique on this machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.net import machine_lock

_counter = itertools.count()
CLAIM_LOCK = Path(tempfile.gettempdir()) / "edgeagent-tests-link-addresses.lock"


def addresses_in_use() -> set[str]:
    """The IPv4 addresses on this namespace's interfaces."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10, check=True)
    return {line.split()[3].split("/")[0] for line in listed.stdout.splitlines() if len(line.split()) > 3}


@contextlib.contextmanager
def address_claim() -> Iterator[set[str]]:
    """The addresses in use, under a lock held across processes: choose link addresses outside them and
    put them on the host side before the block ends, so that no other test can choose them meanwhile."""
    with machine_lock(CLAIM_LOCK):
        yield addresses_in_use()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


class Netns:
    def __init__(self) -> None:
        number = next(_counter)
        tag = f"{os.getpid() % 100000}{number}"
        self.name = f"ea-onvif-{tag}"
        self.host_if = f"eah{tag}"[:15]
        self.device_if = f"ead{tag}"[:15]
        self._choose_addresses()
        self.made = False

    def _choose_addresses(self) -> None:
        third, fourth = random.randrange(0, 256), random.randrange(0, 64) * 4
        self.host_address = f"198.18.{third}.{fourth + 1}"
        self.device_address = f"198.18.{third}.{fourth + 2}"

    def make(self) -> Netns:
        try:
            _ip("netns", "add", self.name)
            self.made = True
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.device_if)
            _ip("link", "set", self.device_if, "netns", self.name)
            with address_claim() as in_use:
                while {self.host_address, self.device_address} & in_use:
                    self._choose_addresses()
                _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "addr", "add", f"{self.device_address}/30", "dev", self.device_if)
            _ip("-n", self.name, "link", "set", self.device_if, "up")
            _ip("-n", self.name, "route", "add", "224.0.0.0/4", "dev", self.device_if)
        except BaseException:
            self.close()
            raise
        return self

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
        if self.made:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            self.made = False
