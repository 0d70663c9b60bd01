"""Just enough of the H.264 bitstream to tell whether a camera sends B-frames.

Browsers' WebRTC receivers expect frames in presentation order; a stream with B-slices stalls (Chromium
decodes its keyframes only and asks for more in vain). The slice type is the second Exp-Golomb number of
the first slice header of an access unit, a few bytes in.
"""

from __future__ import annotations

SLICE_NAL_TYPES = (1, 5)  # coded slice of a non-IDR / IDR picture
B_SLICE_TYPES = (1, 6)


def _rbsp_head(data: bytes, start: int, length: int = 16) -> bytes:
    """The first bytes of a NAL unit's payload with emulation-prevention bytes (00 00 03) removed."""
    out = bytearray()
    zeros = 0
    for byte in data[start : start + length + 4]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
        if len(out) == length:
            break
    return bytes(out)


def _exp_golomb(head: bytes, count: int) -> list[int] | None:
    """The first ``count`` unsigned Exp-Golomb numbers of ``head``; None when it is too short."""
    value = int.from_bytes(head, "big")
    total = len(head) * 8
    position = 0
    numbers = []
    for _ in range(count):
        zeros = 0
        while position < total and not (value >> (total - 1 - position)) & 1:
            zeros += 1
            position += 1
        if position + zeros + 1 > total:
            return None
        code = (value >> (total - position - zeros - 1)) & ((1 << (zeros + 1)) - 1)
        numbers.append(code - 1)
        position += zeros + 1
    return numbers


def first_slice_type(access_unit: bytes) -> int | None:
    """slice_type of the first slice in an Annex B access unit (0 P, 1 B, 2 I, +5 for "all slices")."""
    position = 0
    while True:
        start = access_unit.find(b"\x00\x00\x01", position)
        if start < 0 or start + 3 >= len(access_unit):
            return None
        header = access_unit[start + 3]
        if header & 0x1F in SLICE_NAL_TYPES:
            numbers = _exp_golomb(_rbsp_head(access_unit, start + 4), 2)  # first_mb_in_slice, slice_type
            return None if numbers is None else numbers[1]
        position = start + 3


def has_b_slice(access_unit: bytes) -> bool:
    return first_slice_type(access_unit) in B_SLICE_TYPES
