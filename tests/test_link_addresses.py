"""Two tests' namespaces never share a link address.

A CI run failed when two pytest-xdist workers gave their Janus namespaces the same 10.231.x.0/24: the
later test's publication was routed to the other test's Janus and died when that test ended. Each test
here makes the random choice collide on purpose and checks that the second namespace got other addresses.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import pytest

from tests.support import janus as janus_support
from tests.support import netns as netns_support
from tests.support.netns import addresses_in_use

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="making a network namespace needs root")


def _scripted(*picks: int) -> Callable[..., int]:
    """``randrange`` answering ``picks`` first, then at random (so that a taken address never loops)."""
    scripted: Iterator[int] = iter(picks)
    real = random.randrange

    def randrange(*args: int) -> int:
        return next(scripted, None) or real(*args)

    return randrange


def test_a_second_janus_namespace_takes_other_addresses_when_the_first_choice_is_in_use(monkeypatch):
    first = janus_support.Netns()
    monkeypatch.setattr(janus_support.random, "randrange", _scripted(7, 7, 8))
    first._choose_addresses()
    second = None
    try:
        first.create()
        assert first.uplink.host_ip == "10.231.7.1" and first.uplink.host_ip in addresses_in_use()
        second = janus_support.Netns().create()
        assert second.uplink.host_ip == "10.231.8.1", second.uplink
        assert second.operators.host_ip == "10.231.8.5", second.operators
    finally:
        for made in (second, first):
            if made is not None:
                made.delete()
    assert not {"10.231.7.1", "10.231.8.1"} & addresses_in_use()


def test_a_second_device_namespace_takes_other_addresses_when_the_first_choice_is_in_use(monkeypatch):
    picks = (5, 3, 5, 3, 5, 4)  # (third, fourth): the second namespace draws the first's pair again
    monkeypatch.setattr(netns_support.random, "randrange", _scripted(*picks))
    first = netns_support.Netns()
    second = netns_support.Netns()
    try:
        first.make()
        second.make()
        assert first.host_address == "198.18.5.13"
        assert second.host_address == "198.18.5.17", second.host_address
        assert {first.host_address, second.host_address} <= addresses_in_use()
    finally:
        second.close()
        first.close()


def test_the_claim_sees_every_address_of_this_namespace():
    in_use = addresses_in_use()
    assert "127.0.0.1" in in_use
    assert all(address.count(".") == 3 for address in in_use), in_use
