"""What an upload can fail with, apart from the S3 client (so that the offloader, and an agent that does not
offload, need not import aiobotocore: 21 MB of RSS)."""

from __future__ import annotations


class UploadError(Exception):
    """An upload that did not land; the message is safe to show (no key, no secret)."""


class CredentialsRefused(UploadError):
    pass


class LocalFileAltered(UploadError):
    """The file no longer has the SHA-256 it was queued with: it is not uploaded as if it were."""
