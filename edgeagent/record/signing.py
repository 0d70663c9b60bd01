"""The cabinet's Ed25519 signing key: made once in ``state_dir`` (0600), used to sign export manifests.

The public half is what an auditor checks an export against (``edgeagent verify --public-key``); the agent
serves it at ``GET /signing-key`` and retains it on MQTT. Everything here blocks on the file system.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

KEY_FILE = "signing-key.pem"
MAX_PEM_BYTES = 16 * 1024


class SigningKeyError(Exception):
    """A key file that cannot be read as an Ed25519 key."""


def load_or_create_key(state_dir: Path) -> Ed25519PrivateKey:
    """The key in ``state_dir/signing-key.pem``; made, written 0600 and renamed into place when absent,
    so a crash or a full disk never leaves half a key behind."""
    path = state_dir / KEY_FILE
    if path.exists():
        return _read_private(path)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # link() fails when another process made the key first: then that key wins and is read back.
        try:
            os.link(partial, path)
        except FileExistsError:
            return _read_private(path)
        _fsync_dir(state_dir)
    finally:
        partial.unlink(missing_ok=True)
    log.info("recording: made the export signing key %s (mode 0600), fingerprint %s", path,
             fingerprint(key.public_key()))
    return key


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_private(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()[: MAX_PEM_BYTES + 1]
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a readable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; SigningKeyError with a readable reason otherwise."""
    if len(data) > MAX_PEM_BYTES:
        raise SigningKeyError("the public key file is too large to be a key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise SigningKeyError(f"not a PEM public key ({first})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` of the raw public key, as ssh-keygen shows keys."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The signature as one line of base64 (what ``manifest.sig`` holds)."""
    return base64.b64encode(key.sign(message)) + b"\n"


def signature_bytes(text: bytes) -> bytes | None:
    """The 64 raw bytes of a ``manifest.sig``; None when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        return None
    return raw if len(raw) == 64 else None


def verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
