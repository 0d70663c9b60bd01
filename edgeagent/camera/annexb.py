"""H.264 and H.265 access units in Annex B form: the one place that walks NAL units.

RTSP hands the agent access units whose NAL units are separated by start codes (00 00 01, or 00 00 00 01).
Ingest needs to know which units carry parameter sets (to put them in front of keyframes), the live view
whether a camera sends B-frames (browsers cannot take them passed through), and the source what picture
size the camera's SPS declares (to refuse an absurd one instead of reporting a 0x0 stream online).
Everything here is pure, bounded by the length of its input and never raises on garbage.
"""

from __future__ import annotations

from collections.abc import Iterator

START_CODE = b"\x00\x00\x01"

# NAL unit types, per FFmpeg codec name.
PARAMETER_SET_TYPES = {"h264": frozenset({7, 8}), "hevc": frozenset({32, 33, 34})}  # (VPS,) SPS, PPS
SPS_TYPES = {"h264": 7, "hevc": 33}
# Pictures a decoder can start from: H.264 IDR; H.265 IRAP (BLA, IDR, CRA).
KEYFRAME_TYPES = {"h264": frozenset({5}), "hevc": frozenset(range(16, 22))}
H264_SLICE_TYPES = frozenset({1, 5})  # coded slice of a non-IDR / IDR picture
H264_B_SLICE_TYPES = frozenset({1, 6})  # slice_type B, and B for "all slices of the picture"
SUPPORTED_CODECS = frozenset(PARAMETER_SET_TYPES)


def nal_unit_starts(data: bytes, limit: int | None = None) -> Iterator[int]:
    """Offsets of the NAL unit headers (the byte after each start code), at most ``limit`` of them."""
    position = 0
    found = 0
    while limit is None or found < limit:
        start = data.find(START_CODE, position)
        if start < 0 or start + 3 >= len(data):
            return
        found += 1
        yield start + 3
        position = start + 3


def nal_type(header: int, codec: str) -> int:
    """The type in a NAL unit's first header byte (H.264: 5 low bits; H.265: 6 bits after the F bit)."""
    return header & 0x1F if codec == "h264" else (header >> 1) & 0x3F


def nal_types(data: bytes, codec: str, limit: int = 6) -> list[int]:
    """Types of the first few NAL units of an access unit (parameter sets, AUD and SEI come first)."""
    return [nal_type(data[offset], codec) for offset in nal_unit_starts(data, limit)]


def is_keyframe(data: bytes, codec: str, limit: int = 8) -> bool:
    """Whether the access unit holds a picture that a fresh decoder can start from."""
    return bool(KEYFRAME_TYPES.get(codec, frozenset()) & set(nal_types(data, codec, limit)))


def is_annexb(data: bytes | None) -> bool:
    return data is not None and data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01"))


def with_parameter_sets(data: bytes, codec: str, extradata: bytes | None) -> bytes:
    """A keyframe that a fresh decoder can start from: parameter sets in front when the camera left them
    in the SDP only (many do), so the GOP cache and snapshots never depend on out-of-band state."""
    wanted = PARAMETER_SET_TYPES.get(codec)
    if not wanted or extradata is None or not is_annexb(extradata):
        return data
    if wanted & set(nal_types(data, codec)):
        return data
    return extradata + data


def rbsp(data: bytes, start: int, length: int) -> bytes:
    """Up to ``length`` payload bytes of the NAL unit at ``start``, emulation prevention (00 00 03) removed.

    Stops at the next start code, so a short unit never borrows the bytes of the one after it.
    """
    out = bytearray()
    zeros = 0
    for byte in data[start : start + length + length // 2 + 4]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        if zeros >= 2 and byte <= 1:
            break  # a start code (00 00 01) or trailing zeros: the unit has ended
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
        if len(out) == length:
            break
    return bytes(out)


class BitReader:
    """Reads fixed-width and Exp-Golomb fields from an RBSP; ``EOFError`` when it runs out."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self.position = 0

    def bits(self, count: int) -> int:
        if self.position + count > self._total:
            raise EOFError("RBSP ended")
        self.position += count
        return (self._value >> (self._total - self.position)) & ((1 << count) - 1)

    def flag(self) -> bool:
        return bool(self.bits(1))

    def ue(self) -> int:
        """Unsigned Exp-Golomb; more than 31 leading zeros is not a valid field in these headers."""
        zeros = 0
        while not self.bits(1):
            zeros += 1
            if zeros > 31:
                raise EOFError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def first_slice_type(access_unit: bytes) -> int | None:
    """H.264 slice_type of the first slice of an access unit (0 P, 1 B, 2 I, +5 for "all slices")."""
    for offset in nal_unit_starts(access_unit):
        if nal_type(access_unit[offset], "h264") in H264_SLICE_TYPES:
            reader = BitReader(rbsp(access_unit, offset + 1, 16))
            try:
                reader.ue()  # first_mb_in_slice
                return reader.ue()
            except EOFError:
                return None
    return None


def has_b_slice(access_unit: bytes) -> bool:
    return first_slice_type(access_unit) in H264_B_SLICE_TYPES


# High profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1).
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def _skip_h264_scaling_list(reader: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + reader.se()) % 256
        last = next_scale or last


def _h264_sps_size(reader: BitReader) -> tuple[int, int]:
    profile_idc = reader.bits(8)
    reader.bits(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in _H264_HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            reader.bits(1)  # separate_colour_plane_flag
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bits(1)  # qpprime_y_zero_transform_bypass_flag
        if reader.flag():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.flag():
                    _skip_h264_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        reader.bits(1)
        reader.se()
        reader.se()
        cycle = reader.ue()
        if cycle > 255:
            raise EOFError("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bits(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_map_units = reader.ue() + 1
    frame_mbs_only = reader.flag()
    height_mbs = height_map_units * (1 if frame_mbs_only else 2)
    # Cropping is left out: it shaves at most a few rows off a size that is only checked against limits.
    return width_mbs * 16, height_mbs * 16


def _hevc_sps_size(reader: BitReader) -> tuple[int, int]:
    reader.bits(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = reader.bits(3)
    reader.bits(1)  # sps_temporal_id_nesting_flag
    reader.bits(96)  # general profile_tier_level
    sub_layer_flags = [(reader.flag(), reader.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        reader.bits(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in sub_layer_flags:
        reader.bits((88 if profile_present else 0) + (8 if level_present else 0))
    reader.ue()  # sps_seq_parameter_set_id
    if reader.ue() == 3:  # chroma_format_idc
        reader.bits(1)  # separate_colour_plane_flag
    return reader.ue(), reader.ue()  # pic_width_in_luma_samples, pic_height_in_luma_samples


def declared_picture_size(data: bytes | None, codec: str) -> tuple[int, int] | None:
    """The picture size that the first SPS in ``data`` (extradata or a keyframe) declares; None when
    there is no SPS or it cannot be read. FFmpeg gives up on an SPS it finds absurd and then reports 0x0;
    this says what the camera asked for."""
    if not data or codec not in SPS_TYPES:
        return None
    header_bytes = 1 if codec == "h264" else 2
    for offset in nal_unit_starts(data, limit=16):
        if nal_type(data[offset], codec) != SPS_TYPES[codec]:
            continue
        reader = BitReader(rbsp(data, offset + header_bytes, 256))
        try:
            return _h264_sps_size(reader) if codec == "h264" else _hevc_sps_size(reader)
        except EOFError:
            return None
    return None
