"""Why a connection to a camera failed, and how long to wait before the next one.

Two kinds of failure call for opposite answers. A camera that is away (refused, unreachable, silent at the
TCP level: rebooting, unplugged, its address dead) costs nothing to watch for, so the source waits for it
with a cheap TCP probe and connects the moment it accepts again. A camera that answers and says no (wrong
password, 4xx/5xx on DESCRIBE or SETUP, a stream the agent cannot use) must not be hammered: many lock an
account after a few bad logins. Only those get capped exponential backoff.
"""

from __future__ import annotations

import random

import av.error

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0

# What the source is waiting for while it is not online (the `waiting_for` health attribute).
WAITING_FOR_CONNECTIONS = "camera to accept connections"
WAITING_AFTER_AUTH_FAILURE = "retry after authentication failure"
WAITING_AFTER_CAMERA_ERROR = "retry after the camera refused the stream"
WAITING_AFTER_NO_ANSWER = "retry after the camera accepted the connection but did not answer"
WAITING_FOR_STREAM_URL = "stream URL from the camera's ONVIF service"
# A camera configured by ONVIF alone has no address to probe until its device names the stream: it is asked
# again after this pause (the ask itself waits up to its own timeout; an auth refusal backs off instead).
STREAM_URL_RETRY_S = 2.0


class CameraRefused(Exception):
    """The camera answered, and the answer rules the stream out until something changes (its reply, its
    settings or ours): retried with backoff, never in a tight loop. The message is fit for health."""


class AuthRefused(CameraRefused):
    """A refusal that concerns credentials: retrying fast could lock the camera's account."""


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before connect attempt ``attempt`` (1-based): 1, 2, 4 ... capped at 30, with jitter.

    Jitter spreads the reconnects of a cabinet's cameras after a shared network outage.
    """
    ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempt - 1))
    return ceiling * (rng or random).uniform(0.75, 1.0)


def camera_refused(exc: BaseException) -> bool:
    """Whether the camera itself answered no (back off), rather than being away (probe and reconnect)."""
    # PyAV's HTTPClientError (4xx) is not an HTTPError (it is for 5xx and others): both are needed.
    return isinstance(exc, CameraRefused | av.error.HTTPError | av.error.HTTPClientError)


def waiting_after(exc: BaseException) -> str:
    """The `waiting_for` text for the backoff that follows a refusal."""
    if isinstance(exc, AuthRefused | av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return WAITING_AFTER_AUTH_FAILURE
    return WAITING_AFTER_CAMERA_ERROR


def describe_error(exc: BaseException) -> str:
    """One line about a failure, fit for logs and health messages (FFmpeg errors can carry the URL)."""
    if isinstance(exc, CameraRefused):
        return str(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return "authentication failed (401 Unauthorized): check the user name and password"
    if isinstance(exc, av.error.HTTPForbiddenError):
        return "access forbidden (403)"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "stream not found (404): check the path"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | av.error.ExitError):
        return "timed out"
    if isinstance(exc, av.error.InvalidDataError):
        # FFmpeg's RTSP code also says this when a socket read times out before a full answer
        return "no valid answer or data from the camera (timed out or corrupt)"
    if isinstance(exc, av.error.FFmpegError):
        return f"{type(exc).__name__}: {exc.strerror or 'error'}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"  # strerror carries no address
    return f"{type(exc).__name__}: {exc}"


class RetryPolicy:
    """After each attempt: back off (a delay) or wait for the camera to accept connections (None)."""

    def __init__(self, short_session_s: float = 10.0) -> None:
        self.short_session_s = short_session_s
        self.refusals = 0  # answers of "no" in a row
        self.unanswered = 0  # failures in a row while the camera accepted TCP (or sessions that ended at once)

    def after_attempt(self, connected: bool, lasted_s: float, refused: bool) -> float | None:
        if connected:
            self.refusals = 0
            # A session that ends at once while the camera stays up counts as a failure, so a camera that
            # drops every session is retried with backoff, not in a loop.
            self.unanswered = 0 if lasted_s >= self.short_session_s else self.unanswered + 1
        if refused:
            self.refusals += 1
            return backoff_delay(self.refusals)
        return None

    def after_probe(self, connected: bool, probes_failed: int) -> float | None:
        """Once the camera accepts TCP: connect at once if it had been away, else back off."""
        if probes_failed:
            self.unanswered = 0  # it was away and is back: every second now is lost video
            return None
        if connected and not self.unanswered:
            return None  # a good session ended and the camera is still there (a stall, its own restart)
        if not connected:
            self.unanswered += 1  # it accepts TCP but did not answer RTSP (hung, or closing at once)
        return backoff_delay(self.unanswered)
