"""The one error a live-view request can end in: an HTTP-like status and a one-line reason."""

from __future__ import annotations


class LiveError(Exception):
    """A refused offer. ``status`` follows HTTP (400 malformed offer, 404 unknown camera, 406 no common
    codec, 409 session id in use, 415 not SDP, 503 over a limit); ``reason`` is one line for the operator."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason.splitlines()[0] if reason else "error"

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"
