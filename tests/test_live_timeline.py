"""A viewer's RTP clock stays continuous and monotonic whatever the camera's timestamps do."""

from __future__ import annotations

from fractions import Fraction

from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.live.timeline import CLOCK_RATE, RtpTimeline
from tests.support import packets


def stream(generation: int, time_base: Fraction = Fraction(1, 90000)) -> StreamInfo:
    return packets.stream_info(generation=generation, time_base=time_base)


def packet(info: StreamInfo, pts: int | None, keyframe: bool = False) -> Packet:
    return packets.packet(keyframe=keyframe, stream=info, data=packets.H264_IDR, pts=pts, arrival=0.0)


def test_keeps_the_cameras_spacing_within_a_stream() -> None:
    info = stream(1)
    clock = RtpTimeline()
    stamps = [clock.stamp(packet(info, 1000 + i * 3600), now=10 + i * 0.04) for i in range(50)]
    assert stamps[0] == 0
    assert all(b - a == 3600 for a, b in zip(stamps, stamps[1:], strict=False))


def test_other_time_bases_are_converted_to_90_khz() -> None:
    info = stream(1, Fraction(1, 1000))
    clock = RtpTimeline()
    first = clock.stamp(packet(info, 5000), now=0.0)
    second = clock.stamp(packet(info, 5040), now=0.04)
    assert second - first == round(0.040 * CLOCK_RATE)


def test_cached_gop_keeps_to_its_send_times_then_live_packets_follow_their_own_spacing() -> None:
    info = stream(1)
    clock = RtpTimeline()
    # 250 frames (10 s of the camera's time) paced out over 0.25 s: the stamps say 0.25 s, as the arrivals do.
    gop = [
        clock.stamp(packet(info, i * 3600, keyframe=i == 0), now=5.0 + i * 0.001, catch_up=True) for i in range(250)
    ]
    assert gop == [i * 90 for i in range(250)]
    live = clock.stamp(packet(info, 250 * 3600), now=5.3)
    assert live == gop[-1] + 3600  # one frame after the last cached one, not ten seconds later


def test_a_cached_gop_sent_in_one_burst_still_moves_forward() -> None:
    info = stream(1)
    clock = RtpTimeline()
    gop = [clock.stamp(packet(info, i * 3600, keyframe=i == 0), now=5.0, catch_up=True) for i in range(50)]
    assert gop == list(range(50))  # one tick apart


def test_a_reconnect_advances_by_the_wall_clock_and_never_goes_back() -> None:
    before, after = stream(1), stream(2)
    clock = RtpTimeline()
    last = 0
    for i in range(25):
        last = clock.stamp(packet(before, 900_000 + i * 3600), now=100 + i * 0.04)
    # The camera comes back 4 s later with timestamps that restart near zero.
    resumed = clock.stamp(packet(after, 0, keyframe=True), now=100 + 24 * 0.04 + 4.0)
    assert resumed - last == round(4.0 * CLOCK_RATE)
    following = clock.stamp(packet(after, 3600), now=100 + 24 * 0.04 + 4.04)
    assert following - resumed == 3600
    assert clock.resyncs == 1


def test_backward_jumps_and_missing_timestamps_stay_monotonic() -> None:
    info = stream(1)
    clock = RtpTimeline()
    stamps = [
        clock.stamp(packet(info, 10_000), now=1.0),
        clock.stamp(packet(info, 13_600), now=1.04),
        clock.stamp(packet(info, 2_000), now=1.08),  # backwards
        clock.stamp(packet(info, None), now=1.12),  # no timestamp at all
        clock.stamp(packet(info, 10**12), now=1.16),  # a jump of years
        clock.stamp(packet(info, 10**12 + 3600), now=1.20),
    ]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[-1] - stamps[-2] == 3600
