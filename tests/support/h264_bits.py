"""Writing H.264 parameter sets bit by bit, to craft what a hostile camera would send."""

from __future__ import annotations


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> BitWriter:
        self.bits += [(value >> (count - 1 - index)) & 1 for index in range(count)]
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def rbsp(self) -> bytes:
        bits = self.bits + [1]  # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention: 00 00 0x (x <= 3) becomes 00 00 03 0x
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def baseline_sps(width: int, height: int) -> bytes:
    """A Constrained Baseline SPS NAL unit (no start code) declaring ``width``x``height`` (multiples of 16)."""
    writer = BitWriter().u(8, 66).u(8, 0xC0).u(8, 30)  # profile, constraint flags, level 3.0
    writer.ue(0).ue(0).ue(2).ue(1).u(1, 0)  # sps id, log2_max_frame_num-4, poc type 2, 1 ref, no gaps
    writer.ue(width // 16 - 1).ue(height // 16 - 1)
    writer.u(1, 1).u(1, 1).u(1, 0).u(1, 0)  # frame_mbs_only, direct_8x8, no cropping, no VUI
    return b"\x67" + writer.rbsp()


PPS = b"\x68\xce\x3c\x80"
