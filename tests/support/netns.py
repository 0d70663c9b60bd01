"""A network namespace joined to this one by a veth pair, for devices that must not reach the network.

An ONVIF device announces itself by multicast and answers multicast probes: run it in a namespace of its
own so that nothing it sends can leave this machine. The link uses an address pair from 198.18.0.0/15
(set aside for network tests); inside, a route for 224.0.0.0/4 lets the device join and answer multicast.
Nothing is changed in this namespace but the one veth end, which goes away with the namespace.

Making a namespace needs root (tests run as root here and in CI): failure to make one is an error, never
a skip.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess

_counter = itertools.count()


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
        third, fourth = random.randrange(0, 256), random.randrange(0, 64) * 4
        self.host_address = f"198.18.{third}.{fourth + 1}"
        self.device_address = f"198.18.{third}.{fourth + 2}"
        self.made = False

    def make(self) -> Netns:
        try:
            _ip("netns", "add", self.name)
            self.made = True
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.device_if)
            _ip("link", "set", self.device_if, "netns", self.name)
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
