"""What a camera asks for before it gets the password: one unauthenticated DESCRIBE, read with bounds.

FFmpeg's RTSP client sends credentials only after a 401, in the scheme the challenge names, and prefers
Digest when any WWW-Authenticate header offers it (libavformat/httpauth.c, ff_http_auth_handle_header).
Offered only Basic, it sends ``user:password`` in clear over plain rtsp://, to whoever answers at the
camera's address. It has no option to refuse Basic, so the source asks first and decides:

- 401 with Digest offered: FFmpeg gets the password and answers with Digest.
- 401 with Basic only: refused unless the camera's config says ``allow_basic_auth: true``.
- 200 (no authentication at all): FFmpeg gets the URL without the password, so nothing can be sent.
- any other answer: the camera refused the stream (backoff, as for FFmpeg's own errors).

rtsps:// cameras need no such check: FFmpeg's one connection goes through the agent's TLS relay
(tls_relay.py), verified before FFmpeg starts, so Basic is as safe there as Digest and FFmpeg gets the
password at once.

Remaining risk for plain rtsp://, honestly: this check and FFmpeg's session are two connections. An active
impostor that tells them apart (by order or timing; the request imitates FFmpeg's, so not by content) can
offer Digest here and Basic to FFmpeg, and get the password. A passive one, or one that always offers Basic,
cannot. A Digest answer is not the password but can be attacked offline with guesses, so weak passwords stay
weak. rtsps:// with a checked certificate is the better answer; this closes the easy, common attack.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import av

from edgeagent.camera.failures import AuthRefused, CameraRefused
from edgeagent.camera.reachability import rtsp_address
from edgeagent.config import CameraSection

MAX_ANSWER_BYTES = 16384  # the head of a DESCRIBE answer; a camera's is a few hundred bytes
# What FFmpeg's own DESCRIBE says, so the two requests look alike.
USER_AGENT = "Lavf{}.{}.{}".format(*av.library_versions["libavformat"])
REFUSALS = {403: "access forbidden (403)", 404: "stream not found (404): check the path"}

BASIC_REFUSED = (
    "camera offered only Basic auth over plain RTSP; refusing to send the password "
    "(set allow_basic_auth: true to allow)"
)


@dataclass(frozen=True, slots=True)
class Challenge:
    status: int
    schemes: frozenset[str]  # lower-case scheme names of the WWW-Authenticate headers


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def parse_answer(head: bytes) -> Challenge:
    """The status and offered schemes of an RTSP answer's head; ``CameraRefused`` if it is not RTSP."""
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("RTSP/") or not fields[1].isdigit():
        raise CameraRefused("the camera's answer to DESCRIBE is not RTSP")
    schemes = set()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "www-authenticate" and value.strip():
            schemes.add(value.strip().split(None, 1)[0].lower())
    return Challenge(int(fields[1]), frozenset(schemes))


def ask(section: CameraSection, timeout_s: float) -> Challenge:
    """DESCRIBE without credentials, over plain RTSP; every step bounded by ``timeout_s`` in total, the
    answer by size.

    Network failures (refused, timed out, unreachable) propagate as ``OSError``: the camera is away.
    """
    deadline = time.monotonic() + timeout_s
    plain = without_userinfo(section.url)
    request = (
        f"DESCRIBE {plain} RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 1\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
    )
    with socket.create_connection(rtsp_address(section.url), timeout_s) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete answer to DESCRIBE")
            if len(head) >= MAX_ANSWER_BYTES:
                raise CameraRefused("the camera's answer to DESCRIBE is too long")
            sock.settimeout(remaining)
            chunk = sock.recv(MAX_ANSWER_BYTES - len(head))
            if not chunk:
                raise ConnectionResetError("the camera closed the connection before answering DESCRIBE")
            head += chunk
    return parse_answer(head.partition(b"\r\n\r\n")[0])


def password_may_be_sent(challenge: Challenge, allow_basic: bool) -> bool:
    """Whether FFmpeg may be given the password for this camera's answer; raises for a refusal."""
    if challenge.status == 200:
        return False  # no authentication asked: nothing to send
    if challenge.status == 401:
        if "digest" in challenge.schemes:
            return True
        if "basic" in challenge.schemes and allow_basic:
            return True
        if "basic" in challenge.schemes:
            raise AuthRefused(BASIC_REFUSED)
        raise AuthRefused("camera asked for authentication in no scheme the agent supports (Digest)")
    raise CameraRefused(REFUSALS.get(challenge.status, f"the camera answered DESCRIBE with {challenge.status}"))


def url_for_ffmpeg(section: CameraSection, url_with_password: str, has_password: bool) -> str:
    """The URL to open: with the password only where it cannot be sent in clear. For rtsps:// cameras
    ``url_with_password`` is the TLS relay's, whose camera connection is already verified: no check."""
    if urlsplit(section.url).scheme == "rtsps":
        return url_with_password
    if not has_password:
        return section.url  # nothing to protect
    answer = ask(section, section.open_timeout_s)
    return url_with_password if password_may_be_sent(answer, section.allow_basic_auth) else section.url
