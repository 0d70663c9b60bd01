"""Whether the device at an rtsps:// camera's address is the camera its configuration names.

Every rtsps:// certificate is verified, on the one connection that carries the session (the agent's own TLS
relay, tls_relay.py; FFmpeg never opens TLS itself, since libavformat's rtsp.c passes no ca_file or verify
option to its TLS layer and would accept any certificate):

- ``tls_fingerprint_sha256`` set: the leaf certificate's SHA-256 must match; no CA or host name is checked,
  so a camera's self-signed certificate can be pinned.
- otherwise: the chain must lead to ``tls_ca_file`` (the system's CAs when unset) and the certificate must
  name the URL's host (an IP address in its SAN for a camera addressed by IP).

A failure is ``CertificateRefused``: the camera "said no" (backoff, never a tight loop), and nothing, not
even an RTSP request, was sent to the device.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl

from edgeagent.camera.failures import CameraRefused
from edgeagent.config import CameraSection


class CertificateRefused(CameraRefused):
    """The device at the camera's address is not the camera its configuration names."""


def context(section: CameraSection) -> ssl.SSLContext:
    """The client context for this camera; ``CertificateRefused`` if its CA file cannot be used."""
    if section.tls_fingerprint_sha256 is not None:
        pinned = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        pinned.check_hostname = False
        pinned.verify_mode = ssl.CERT_NONE  # the pin (checked by ``check_pin``) is the whole check
        return pinned
    try:
        return ssl.create_default_context(cafile=None if section.tls_ca_file is None else str(section.tls_ca_file))
    except (OSError, ssl.SSLError) as exc:  # not "the camera is away": the configuration is wrong
        raise CertificateRefused(f"tls_ca_file cannot be used ({exc.strerror or exc})") from None


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def check_pin(section: CameraSection, der: bytes | None) -> None:
    """After the handshake: the leaf certificate (DER) against the pin, if one is configured."""
    pinned = section.tls_fingerprint_sha256
    if pinned is None:
        return
    pinned = pinned.replace(":", "").lower()  # as `openssl x509 -fingerprint -sha256` prints it, or bare
    if not hmac.compare_digest(fingerprint(der or b""), pinned):
        raise CertificateRefused(
            "the camera's TLS certificate does not match tls_fingerprint_sha256; refusing to connect"
        )


def refusal(exc: ssl.SSLError, section: CameraSection) -> CertificateRefused:
    """The health message for a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if section.tls_ca_file is not None:
            against = "tls_ca_file"
        else:
            against = "the system's CAs (set tls_ca_file, or pin tls_fingerprint_sha256)"
        return CertificateRefused(f"the camera's TLS certificate failed verification with {against}: "
                                  f"{exc.verify_message}")
    return CertificateRefused(f"TLS handshake with the camera failed ({exc.reason or 'error'})")
