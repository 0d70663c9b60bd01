"""One segment file being written: packets in, fragmented MP4 out, on the disk after every fragment.

Remux only: the camera's Annex B packets go to FFmpeg's MP4 muxer through a stream made from a template
(no codec is ever opened). The writer owns the file descriptor: the muxer writes through ``_SyncedFile``,
and after every packet that completed a fragment the bytes are ``fdatasync``-ed, so a power cut loses at
most the fragment being filled (about 1 s). If the disk fills up, the file is cut back to the last whole
fragment and closed; nothing already on the disk is touched.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import av.error

from edgeagent.camera.packet import Packet, StreamInfo
from edgeagent.record import fmp4
from edgeagent.record.model import Segment

log = logging.getLogger(__name__)

# About a second, a little less: a fragment reaches the disk when the first packet after it is muxed (one
# frame after it arrived, as the writer holds a packet back for its duration, plus the writer thread's
# wake-up), so 0.7 s keeps a SIGKILL or power cut under 1 s of loss. Each fragment costs about 350 bytes
# of header and one fdatasync.
FRAGMENT_US = 700_000
FRAGMENT_S = FRAGMENT_US / 1e6
MUXER_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": str(FRAGMENT_US),
    # PyAV's file output is not flushed by default: without this a fragment may sit in a buffer.
    "flush_packets": "1",
}
_PARAMETER_SETS = {"h264": {7, 8}, "hevc": {32, 33, 34}}


class DiskFullError(OSError):
    pass


def parameter_sets(data: bytes, codec: str) -> bytes | None:
    """The VPS/SPS/PPS NAL units of an Annex B access unit, as Annex B extradata (or None)."""
    wanted = _PARAMETER_SETS.get(codec, set())
    starts: list[int] = []
    position = 0
    while (found := data.find(b"\x00\x00\x01", position)) >= 0:
        starts.append(found + 3)
        position = found + 3
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00") if index + 1 < len(starts) else data[start:end]
        if not unit:
            continue
        kind = unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F
        if kind in wanted:
            units.append(b"\x00\x00\x00\x01" + unit)
    return b"".join(units) or None


def _template(codec: str) -> av.container.InputContainer:
    # An empty raw bitstream gives a stream of the right codec with a codec context, without decoding.
    return av.open(io.BytesIO(b""), "r", format=codec)


class _SyncedFile(io.RawIOBase):
    """The file the muxer writes into: counts and hashes bytes, and after a failed write swallows the rest
    so that the muxer can be closed without touching the disk again."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.position = 0
        self.hash = hashlib.sha256()
        self.hash_valid = True
        self.failed: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # fragmented MP4 is written front to back; the muxer never needs to go back

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.failed is not None:
            return len(data)
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self.fd, view[written:])
        except OSError as exc:
            self.failed = exc
            self.hash_valid = False
            self.position += written
            return len(data)
        self.hash.update(view)
        self.position += written
        return written

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()


class SegmentWriter:
    """Writes one segment; ``close()`` returns its size, end time and SHA-256."""

    def __init__(self, path: Path, first: Packet, start: datetime) -> None:
        stream = first.stream
        # Parameter sets from the keyframe itself first: they are what this GOP was encoded with, and a
        # camera that left them out of its SDP still gives a playable file.
        extradata = parameter_sets(first.data, stream.codec) or stream.extradata
        if extradata is None:
            raise ValueError("the keyframe carries no parameter sets and the stream gave none")
        self.path = path
        self.stream_info: StreamInfo = stream
        self.start = start
        self.time_base = stream.time_base
        self.tick_s = stream.tick_s
        self.first_dts = _dts(first)
        self.last_end_dts = self.first_dts  # end of the last muxed packet
        self.synced_bytes = 0  # bytes known to be on the disk, all of them whole fragments
        self.synced_sha256 = ""  # of those bytes
        self.synced_end_dts = self.first_dts  # where the last whole fragment ends (decode time)
        self.fragments = 0
        self.fragment_arrival = first.arrival  # when the first packet of the fragment being filled arrived
        # Until a second packet tells, a lone frame lasts 1/25 s.
        self._last_duration = max(1, int(Fraction(1, 25) / stream.time_base))
        self._pending: Packet | None = None  # held one packet back to learn its duration from the next
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _SyncedFile(path)
        try:
            self._container = av.open(self._file, "w", format="mp4", options=dict(MUXER_OPTIONS))
            self._container.metadata["comment"] = fmp4.start_tag(start)
            self._container.metadata["creation_time"] = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self._template = _template(stream.codec)
            out = self._container.add_stream_from_template(self._template.streams.video[0], opaque=True)
            context = out.codec_context
            context.width = stream.width
            context.height = stream.height
            context.extradata = extradata
            if stream.codec == "hevc":
                context.codec_tag = "hvc1"  # what browsers that play H.265 in MP4 expect (FFmpeg says hev1)
            out.time_base = stream.time_base
            self._out = out
            self._container.start_encoding()
            self._sync()
        except BaseException:
            self._abandon()
            raise
        self.push(first)

    @property
    def bytes_written(self) -> int:
        return self._file.position

    def duration_s(self) -> float:
        return float((self.last_end_dts - self.first_dts) * self.time_base)

    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s())

    def synced_segment(self, camera: str, prev_sha256: str | None) -> Segment:
        """What of this segment is on the disk, as readers may see it: up to the end of the last whole fragment."""
        end = self.start + timedelta(seconds=float((self.synced_end_dts - self.first_dts) * self.time_base))
        stream = self.stream_info
        return Segment(camera, self.path, self.start, end, self.synced_bytes, stream.codec, stream.width,
                       stream.height, self.synced_sha256, prev_sha256, open=True)  # fmt: skip

    def push(self, packet: Packet) -> None:
        """Mux the packet before this one (now that its duration is known). Raises DiskFullError."""
        previous, self._pending = self._pending, packet
        if previous is not None:
            self._mux(previous, _dts(packet) - _dts(previous))

    def _mux(self, packet: Packet, duration: int) -> None:
        av_packet = av.Packet(packet.data)
        dts = _dts(packet)
        av_packet.dts = dts
        av_packet.pts = packet.pts if packet.pts is not None else dts
        av_packet.duration = max(1, duration)
        av_packet.time_base = self.time_base
        av_packet.is_keyframe = packet.keyframe
        av_packet.stream = self._out
        before = self._file.position
        try:
            self._container.mux(av_packet)
        except av.error.FFmpegError:
            if self._file.failed is None:
                raise
        self._raise_if_failed()
        self.last_end_dts = dts + max(1, duration)
        self._last_duration = max(1, duration)
        if self._file.position != before:
            # The muxer wrote out the fragment before this packet (it flushes before adding the packet that
            # is due to open the next one): the video on the disk now ends where this packet starts.
            self._sync(dts)
            self.fragment_arrival = packet.arrival

    def _sync(self, end_dts: int | None = None) -> None:
        try:
            os.fdatasync(self._file.fd)
        except OSError as exc:
            self._file.failed = exc
            self._raise_if_failed()
        self.synced_bytes = self._file.position
        self.synced_sha256 = self._file.hash.copy().hexdigest()  # about a microsecond: readers of the open file
        if end_dts is not None:
            self.synced_end_dts = end_dts
        self.fragments += 1

    def _raise_if_failed(self) -> None:
        failed = self._file.failed
        if failed is not None:
            if failed.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(failed.errno, "no space left on the recording disk")
            raise failed

    def close(self, next_dts: int | None = None) -> tuple[int, datetime, str]:
        """Finish the file. ``next_dts``: where the next packet starts (the last one's duration); without
        it the last packet lasts as long as the one before. Returns (bytes, end, sha256)."""
        if self._pending is not None and self._file.failed is None:
            pending, self._pending = self._pending, None
            duration = (next_dts - _dts(pending)) if next_dts is not None else self._last_duration
            try:
                self._mux(pending, duration if duration > 0 else self._last_duration)
            except DiskFullError:
                pass
        try:
            self._container.close()  # writes the last fragment (and mfra)
        except (av.error.FFmpegError, OSError):
            pass
        if self._file.failed is None:
            try:
                os.fdatasync(self._file.fd)
                self.synced_bytes = self._file.position
            except OSError as exc:
                self._file.failed = exc
        return self._finish()

    def _finish(self) -> tuple[int, datetime, str]:
        self._template.close()
        if self._file.failed is not None:
            # Cut the torn tail: keep every whole fragment, exactly what a crash repair would keep.
            log.warning("recording %s: %s; keeping %d bytes of whole fragments", self.path, self._file.failed,
                        self.synced_bytes)  # fmt: skip
            self._file.close()
            size, end_s, digest = truncate_to_whole_fragments(self.path)
            return size, self.start + timedelta(seconds=end_s), digest
        digest = self._file.hash.hexdigest()
        size = self._file.position
        self._file.close()
        return size, self.end(), digest

    def _abandon(self) -> None:
        try:
            self._file.close()
        finally:
            self.path.unlink(missing_ok=True)


def _dts(packet: Packet) -> int:
    value = packet.dts if packet.dts is not None else packet.pts
    if value is None:
        raise ValueError("a packet without timestamps")
    return value


def truncate_to_whole_fragments(path: Path) -> tuple[int, float, str]:
    """Drop a torn tail: the file ends after its last whole moof+mdat pair. Returns (bytes, seconds, sha256).

    Truncating only removes bytes past what is kept, so it cannot fail for lack of space."""
    layout = fmp4.scan(path)
    if not layout.clean:
        with open(path, "r+b") as file:
            file.truncate(layout.whole_end)
            file.flush()
            os.fsync(file.fileno())
        layout = fmp4.scan(path)
    return layout.size, layout.duration_s, file_sha256(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

