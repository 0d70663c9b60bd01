"""Uploads to S3-compatible storage with aiobotocore: path-style, SigV4, multipart for big files, every
call bounded by a timeout, and the object checked after upload.

The SHA-256 goes with every request (``x-amz-checksum-sha256`` of the body or of each part: the server
refuses a body that does not match) and as the object's metadata ``sha256`` (hex, whole file). After
upload a HEAD with checksum mode compares the size, the metadata and the server's own checksum: the
file's SHA-256 for one PUT, and for multipart the composite ``sha256(part digests)-N`` that SeaweedFS and
AWS return. A server that keeps no checksum gets the object read back and hashed instead.
File reads and hashing run in threads; the pacer spends the cap's tokens before each request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from edgeagent.offload.errors import CredentialsRefused, LocalFileAltered, UploadError
from edgeagent.offload.pacer import TokenBucket
from edgeagent.offload.settings import OffloadSection

log = logging.getLogger(__name__)

T = TypeVar("T")
CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
READ_BACK_CHUNK = 1024 * 1024
CLOSE_S = 3.0  # closing the client (its connections) within this, or it is left behind


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _read_part(path: Path, offset: int, size: int) -> tuple[bytes, bytes]:
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read(size)
    return data, hashlib.sha256(data).digest()


def explain(exc: BaseException, section: OffloadSection) -> UploadError:
    """One clear line for health and the log."""
    if isinstance(exc, UploadError):
        return exc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "?"))
        message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
        if code in CREDENTIAL_ERRORS:
            return CredentialsRefused(f"{section.endpoint} refused the credentials ({code}): check "
                                      "offload.access_key_file and offload.secret_key_file")  # fmt: skip
        if code == "NoSuchBucket":
            return UploadError(f"bucket {section.bucket!r} does not exist at {section.endpoint}")
        return UploadError(f"{section.endpoint} answered {code}: {message}")
    if isinstance(exc, TimeoutError):
        return UploadError(f"{section.endpoint} did not answer within {section.timeout_s:g} s")
    if isinstance(exc, BotoCoreError | OSError):
        return UploadError(f"cannot reach {section.endpoint}: {type(exc).__name__}: {str(exc)[:200]}")
    return UploadError(f"upload failed: {type(exc).__name__}: {str(exc)[:200]}")


def _warm_caches(session: Any) -> None:
    """Load what making an S3 client reads from disk into the session's caches (botocore caches each)."""
    loader = session.get_component("data_loader")
    for kind in ("service-2", "endpoint-rule-set-1"):
        loader.load_service_model("s3", kind, api_version=None)  # the exact call botocore makes: same key
    for name in ("_retry", "sdk-default-configuration", "partitions", "endpoints"):
        loader.load_data(name)
    session._get_internal_component("endpoint_resolver")
    session.get_scoped_config()


class S3Uploader:
    """``async with S3Uploader(section, pacer) as up: await up.upload(path, key, size, sha256)``."""

    def __init__(self, section: OffloadSection, pacer: TokenBucket) -> None:
        if section.access_key is None or section.secret_key is None:
            raise ValueError("the offload keys were not read (load the configuration with edgeagent.configfile)")
        self.section = section
        self.pacer = pacer
        self.sent = 0  # body bytes the server accepted, all uploads
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> S3Uploader:
        section = self.section
        assert section.access_key is not None and section.secret_key is not None
        config = AioConfig(
            s3={"addressing_style": "path"}, signature_version="s3v4", connect_timeout=min(10.0, section.timeout_s),
            read_timeout=section.timeout_s, retries={"total_max_attempts": 1},  # the queue retries, with backoff
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
            max_pool_connections=2,
        )  # fmt: skip
        session = get_session()
        arguments = {
            "service_name": "s3", "endpoint_url": section.endpoint, "region_name": section.region, "config": config,
            "aws_access_key_id": section.access_key.get_secret_value(),
            "aws_secret_access_key": section.secret_key.get_secret_value(),
        }  # fmt: skip
        # Making a client reads botocore's JSON models from disk: a first one is made (synchronous, thrown
        # away) in a thread, and the one kept is made from the session's caches, without touching the disk.
        await asyncio.to_thread(_warm_caches, session)
        self._client = await self._stack.enter_async_context(session.create_client(**arguments))
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.wait_for(self._stack.aclose(), CLOSE_S)
        except TimeoutError:
            log.warning("offload: closing the S3 client took over %.0f s; left behind", CLOSE_S)

    async def _call(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self.section.timeout_s)

    async def upload(self, path: Path, key: str, size: int, sha256: str) -> None:
        """Upload and verify; raises UploadError (CredentialsRefused, LocalFileAltered)."""
        try:
            if size <= self.section.part_bytes:
                expected = await self._put(path, key, size, sha256)
            else:
                expected = await self._multipart(path, key, size, sha256)
            await self._verify(key, size, sha256, expected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise explain(exc, self.section) from None

    async def _put(self, path: Path, key: str, size: int, sha256: str) -> str:
        data, digest = await asyncio.to_thread(_read_part, path, 0, size)
        if len(data) != size or digest.hex() != sha256:
            raise LocalFileAltered(f"{path.name} changed on disk since it was queued (size or SHA-256): not uploaded")
        await self.pacer.take(size)
        await self._call(self._client.put_object(Bucket=self.section.bucket, Key=key, Body=data,
                                                 ChecksumSHA256=_b64(digest), Metadata={"sha256": sha256}))  # fmt: skip
        self.sent += size
        return _b64(digest)

    async def _multipart(self, path: Path, key: str, size: int, sha256: str) -> str:
        bucket, part_bytes = self.section.bucket, self.section.part_bytes
        created = await self._call(self._client.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", Metadata={"sha256": sha256}))  # fmt: skip
        upload_id = created["UploadId"]
        try:
            whole = hashlib.sha256()
            digests: list[bytes] = []
            parts: list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, size, part_bytes), start=1):
                data, digest = await asyncio.to_thread(_read_part, path, offset, min(part_bytes, size - offset))
                await asyncio.to_thread(whole.update, data)
                await self.pacer.take(len(data))
                answer = await self._call(self._client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                    ChecksumSHA256=_b64(digest)))  # fmt: skip
                self.sent += len(data)
                digests.append(digest)
                parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)})
            if whole.hexdigest() != sha256:
                raise LocalFileAltered(f"{path.name} changed on disk since it was queued (SHA-256): not uploaded")
            await self._call(self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}))  # fmt: skip
        except BaseException:
            await self._abort(key, upload_id)
            raise
        return f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-{len(digests)}"

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await asyncio.shield(self._call(self._client.abort_multipart_upload(
                Bucket=self.section.bucket, Key=key, UploadId=upload_id)))  # fmt: skip
        except (Exception, asyncio.CancelledError):
            pass  # the server's lifecycle rule for incomplete uploads cleans up after us

    async def _verify(self, key: str, size: int, sha256: str, expected_checksum: str) -> None:
        head = await self._call(self._client.head_object(Bucket=self.section.bucket, Key=key, ChecksumMode="ENABLED"))
        if head.get("ContentLength") != size:
            raise UploadError(f"{key}: stored size {head.get('ContentLength')} is not {size}")
        if head.get("Metadata", {}).get("sha256") != sha256:
            raise UploadError(f"{key}: the stored object lost its sha256 metadata")
        checksum = head.get("ChecksumSHA256")
        if checksum is not None:
            if checksum != expected_checksum:
                raise UploadError(f"{key}: the server's SHA-256 {checksum} is not the file's {expected_checksum}")
            return
        if await self._read_back_sha256(key) != sha256:  # a server that keeps no checksum
            raise UploadError(f"{key}: the object read back does not have the file's SHA-256")

    async def _read_back_sha256(self, key: str) -> str:
        answer = await self._call(self._client.get_object(Bucket=self.section.bucket, Key=key))
        digest = hashlib.sha256()
        async with answer["Body"] as body:
            while chunk := await self._call(body.read(READ_BACK_CHUNK)):
                digest.update(chunk)
        return digest.hexdigest()
