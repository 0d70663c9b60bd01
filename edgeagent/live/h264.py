"""Just enough of the H.264 bitstream to tell whether a camera sends B-frames.

Browsers' WebRTC receivers expect frames in presentation order; a stream with B-slices stalls (Chromium
decodes its keyframes only and asks for more in vain). The slice header is read by the camera package's
Annex B module, the one place that walks NAL units; this names what the live view asks of it.
"""

from __future__ import annotations

from edgeagent.camera.annexb import first_slice_type, has_b_slice

__all__ = ["first_slice_type", "has_b_slice"]
