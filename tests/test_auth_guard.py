"""The bearer-token check: right tokens always pass, failures are slowed per address, nothing leaks."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from edgeagent.publish.auth_guard import AuthGuard, Verdict, presented_token
from tests.support.clock import ManualClock

TOKEN = "s3cret-token-0123456789abcdef"


def _guard(clock: ManualClock, **kwargs: object) -> AuthGuard:
    return AuthGuard(SecretStr(TOKEN), clock=clock, **kwargs)  # type: ignore[arg-type]


def test_after_five_failures_an_address_gets_429_with_a_growing_retry_after() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    verdicts = [guard.check(f"Bearer guess-{i}", "10.0.0.9").verdict for i in range(5)]
    assert verdicts == [Verdict.UNAUTHORIZED] * 5
    retries = []
    for i in range(4):
        result = guard.check(f"Bearer guess-x{i}", "10.0.0.9")
        assert result.verdict == Verdict.THROTTLED
        retries.append(result.retry_after_s)
    assert retries == sorted(retries) and retries[-1] > retries[0]
    assert guard.failures_total == 9 and guard.throttled_total == 4
    # Another address is not affected.
    assert guard.check("Bearer wrong", "10.0.0.10").verdict == Verdict.UNAUTHORIZED


def test_the_right_token_passes_at_once_from_an_address_being_throttled() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    for i in range(20):
        guard.check(f"Bearer guess-{i}", "192.0.2.1")
    assert guard.check(f"Bearer {TOKEN}", "192.0.2.1").verdict == Verdict.ALLOWED
    assert guard.check(f"bearer   {TOKEN}  ", "192.0.2.1").verdict == Verdict.ALLOWED
    # ... and it does not lift the throttle for the guesser.
    assert guard.check("Bearer guess-again", "192.0.2.1").verdict == Verdict.THROTTLED


def test_failures_spread_out_in_time_are_never_throttled_and_the_penalty_is_forgiven() -> None:
    clock = ManualClock()
    guard = _guard(clock)
    for _ in range(50):
        assert guard.check("Bearer typo", "10.1.1.1").verdict == Verdict.UNAUTHORIZED
        clock.now += 15  # four a minute
    for _ in range(30):
        guard.check("Bearer x", "10.1.1.1")
    assert guard.check("Bearer x", "10.1.1.1").retry_after_s == 300  # capped
    clock.now += 301 + 300
    results = [guard.check("Bearer x", "10.1.1.1") for _ in range(6)]
    assert results[-1].verdict == Verdict.THROTTLED and results[-1].retry_after_s == 4  # as the first time


@pytest.mark.parametrize(
    "header",
    [
        None, "", "Bearer", "Bearer ", "Basic " + TOKEN, TOKEN,
        "Bearer \udcff\udcfe" + TOKEN,  # non-UTF-8 bytes as aiohttp hands them over
        "Bearer \x00" + TOKEN, "Bearer " + TOKEN + "\x00", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
        "Bearer " + "\u00e9" * 40, "Bearer " + "A" * 100_000,
    ],
)  # fmt: skip
def test_any_wrong_header_is_a_plain_failure_never_an_exception(header: str | None) -> None:
    assert _guard(ManualClock()).check(header, "10.0.0.1").verdict == Verdict.UNAUTHORIZED


def test_presented_token_gives_back_the_bytes_on_the_wire() -> None:
    assert presented_token("Bearer \udcffab") == b"\xffab"
    assert presented_token("Bearer  abc ") == b"abc"
    assert presented_token("Digest abc") is None


def test_failures_are_logged_once_a_minute_per_address_with_a_count_and_never_the_guess(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    guard = _guard(clock)
    with caplog.at_level(logging.WARNING, logger="edgeagent.publish.auth_guard"):
        for i in range(200):
            guard.check(f"Bearer guess-{i}-{TOKEN[:6]}", "10.0.0.5")
        clock.now += 61
        guard.check("Bearer last-guess", "10.0.0.5")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "1 failed authentication(s) from 10.0.0.5" in lines[0]
    assert "200 failed authentication(s) from 10.0.0.5" in lines[1] and "(throttled)" in lines[1]
    assert not any("guess" in line or TOKEN[:6] in line for line in lines)


def test_many_addresses_cannot_grow_the_table_or_the_log_without_bound(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    guard = _guard(clock, max_tracked=100)
    with caplog.at_level(logging.WARNING, logger="edgeagent.publish.auth_guard"):
        for i in range(5000):
            guard.check("Bearer x", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert guard.tracked == 100
    assert len(caplog.records) == 20  # at most 20 lines a minute in all
