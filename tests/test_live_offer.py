"""check_offer's refusals and the screening of an offer's ICE candidates, as pure logic on SDP text."""

from __future__ import annotations

import pytest

from edgeagent.live.candidates import MAX_CANDIDATE_LINES, MAX_CHECKED_ADDRESSES, screen_candidates
from edgeagent.live.errors import LiveError
from edgeagent.live.offer import MAX_MEDIA_SECTIONS, MAX_SDP_BYTES, MAX_SDP_LINE_BYTES, check_offer

# An offer as aiortc's PythonViewer makes it (tests/support/live_client.py), trimmed of what nothing checks.
CANDIDATE = "a=candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 54451 typ host"
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4005103630 4005103630 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=video 54451 UDP/TLS/RTP/SAVPF 99",
        "c=IN IP4 127.0.0.1",
        "a=recvonly",
        "a=mid:0",
        "a=rtcp-mux",
        "a=rtpmap:99 H264/90000",
        "a=rtcp-fb:99 nack pli",
        "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        CANDIDATE,
        "a=end-of-candidates",
        "a=ice-ufrag:asdu",
        "a=ice-pwd:YGN0lIbhNoK3CqF1i7xSWC",
        "a=fingerprint:sha-256 C5:BD:44:DF:95:D9:9E:51:4D:2B:27:2C:42:AF:90:1E:30:FD:21:9D:03:5D:79:2A:F2:01:69:E3"
        ":89:1A:A1:5C",
        "a=setup:actpass",
        "",
    ]
)


def refusal(text: str) -> LiveError:
    with pytest.raises(LiveError) as caught:
        check_offer(text)
    assert "\n" not in caught.value.reason
    return caught.value


def without(text: str, prefix: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefix))


def test_a_complete_h264_offer_passes() -> None:
    check_offer(OFFER)  # no exception


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        ("v=0\r\n" + "a=x:" + "y" * MAX_SDP_BYTES + "\r\n", 400, "larger than"),
        ("hello", 400, "starts with v=0"),
        ("", 400, "starts with v=0"),
        (OFFER.replace("a=setup:actpass", "a=x-long:" + "z" * MAX_SDP_LINE_BYTES), 400, "a line of"),
        (OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" * MAX_MEDIA_SECTIONS, 400, "media sections"),
        (OFFER.replace("m=video 54451", "m=video notaport"), 400, "malformed SDP"),
        (OFFER.replace("typ host", ""), 400, "malformed SDP"),  # a candidate line aiortc asserts on
        ("v=0\r\ns=-\r\n", 400, "no video section"),
        (OFFER.replace("m=video", "m=audio"), 400, "no video section"),
        (OFFER.replace("a=recvonly", "a=sendonly"), 400, "does not receive video"),
        (OFFER.replace("a=recvonly", "a=inactive"), 400, "does not receive video"),
        (without(OFFER, "a=ice-pwd:"), 400, "ICE credentials"),
        (without(OFFER, "a=ice-ufrag:"), 400, "ICE credentials"),
        (without(OFFER, "a=fingerprint:"), 400, "DTLS fingerprint"),
        (OFFER.replace("H264/90000", "VP8/90000"), 406, "the offer has VP8"),
        (without(OFFER, "a=fmtp:"), 406, "H.264"),  # packetization-mode 0
    ],
    ids=[
        "too-large", "not-sdp", "empty", "long-line", "too-many-sections", "bad-m-line", "bad-candidate",
        "no-video", "audio-only", "sendonly", "inactive", "no-ice-pwd", "no-ice-ufrag", "no-fingerprint",
        "vp8-only", "h264-mode-0",
    ],
)  # fmt: skip
def test_each_refusal_has_its_status_and_a_one_line_reason(text: str, status: int, words: str) -> None:
    error = refusal(text)
    assert error.status == status, error
    assert words in error.reason, error


# -- candidates ------------------------------------------------------------------------------------------


def candidate(host: str, port: int = 50000, kind: str = "host", transport: str = "udp", index: int = 0) -> str:
    return f"a=candidate:f{index} 1 {transport} 2130706431 {host} {port} typ {kind}"


def offer_with(candidates: list[str]) -> str:
    return OFFER.replace(CANDIDATE + "\r\n", "".join(line + "\r\n" for line in candidates))


def kept_candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_an_offer_listing_800_candidates_is_refused_with_one_line() -> None:
    hostile = offer_with([candidate(f"10.{i // 250}.{i % 250}.1", index=i) for i in range(800)])
    check_offer(hostile)  # well-formed, and under the size limit
    with pytest.raises(LiveError) as caught:
        screen_candidates(hostile, allow_loopback=False)
    assert caught.value.status == 400
    assert caught.value.reason == f"offer lists 800 ICE candidates; the agent takes at most {MAX_CANDIDATE_LINES}"


def test_at_most_16_distinct_addresses_are_kept_and_repeats_in_bundled_sections_are_free() -> None:
    many = [candidate(f"192.0.2.{i}", index=i) for i in range(1, MAX_CANDIDATE_LINES)]
    screened = screen_candidates(offer_with(many + [many[0]]), allow_loopback=False)
    kept = kept_candidates(screened.sdp)
    assert kept == many[:MAX_CHECKED_ADDRESSES] + [many[0]]
    assert screened.dropped == {f"over {MAX_CHECKED_ADDRESSES} addresses": MAX_CANDIDATE_LINES - 1 - 16}
    assert "a=end-of-candidates" in screened.sdp and "a=ice-pwd:YGN0lIbhNoK3CqF1i7xSWC" in screened.sdp
    check_offer(screened.sdp)  # still an offer the agent answers


def test_only_plausible_addresses_are_checked() -> None:
    implausible = {
        "0.0.0.0": "unspecified address",
        "::": "unspecified address",
        "224.0.0.251": "multicast address",
        "ff02::1": "multicast address",
        "255.255.255.255": "reserved or broadcast address",
        "240.0.0.1": "reserved or broadcast address",
        "127.0.0.1": "loopback address",
        "::1": "loopback address",
        "::ffff:127.0.0.1": "loopback address",
        "camera.example.com": "not an IP address",
    }
    lines = [candidate(host, index=i) for i, host in enumerate(implausible)]
    lines += [
        candidate("192.0.2.7", port=0),
        candidate("192.0.2.7", port=70000),
        candidate("192.0.2.7", kind="prflx"),
        candidate("192.0.2.7", transport="tcp", port=9),
        "a=candidate:x 1 udp notanumber 192.0.2.7 5000 typ host",
    ]
    plausible = [
        candidate("192.168.1.20"),
        candidate("203.0.113.5", kind="srflx"),
        candidate("198.51.100.9", kind="relay"),
        candidate("2001:db8::5"),
        candidate("0b1e6cf4-53b8-4a1f-9f3e-7bc6ad1f6c39.local"),  # a browser's mDNS name
    ]
    screened = screen_candidates(offer_with(lines + plausible), allow_loopback=False)
    assert kept_candidates(screened.sdp) == plausible
    expected: dict[str, int] = {}
    for reason in implausible.values():
        expected[reason] = expected.get(reason, 0) + 1
    expected.update({"port out of range": 2, "of type prflx": 1, "not UDP": 1, "malformed": 1})
    assert dict(screened.dropped) == expected
    assert screened.summary().startswith("5 ICE candidates kept, 15 left out (")


def test_loopback_is_checked_only_when_the_agent_offers_loopback_itself() -> None:
    sdp = offer_with([candidate("127.0.0.1"), candidate("::1", index=1)])
    assert kept_candidates(screen_candidates(sdp, allow_loopback=True).sdp) == kept_candidates(sdp)
    assert kept_candidates(screen_candidates(sdp, allow_loopback=False).sdp) == []


def test_an_offer_without_candidates_is_left_as_it_is() -> None:
    sdp = without(OFFER, "a=candidate:")
    screened = screen_candidates(sdp, allow_loopback=False)
    assert screened.sdp == sdp and screened.kept == 0 and not screened.dropped
