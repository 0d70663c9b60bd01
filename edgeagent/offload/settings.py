"""The ``offload:`` section: where recordings go in object storage, what goes, and how fast.

Exports and the segments of locked ranges always go; ``segments: true`` sends every segment. The keys
are read from files when the configuration is loaded (``edgeagent.configfile``), never from the YAML.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

MIB = 1024 * 1024
MIN_PART_MB = 5  # S3's smallest part (all but the last)


class OffloadSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(description="the S3 endpoint URL", examples=["https://s3.example:8333"])
    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$",
        description="the bucket (must exist)",
        examples=["cabinet-recordings"],
    )
    region: str = Field(default="us-east-1", max_length=64, description="the SigV4 signing region")
    access_key_file: Path = Field(description="file holding the access key id", examples=["s3-access-key"])
    secret_key_file: Path = Field(description="file holding the secret key", examples=["s3-secret-key"])
    prefix: str = Field(
        default="", max_length=200, pattern=r"^[A-Za-z0-9_./-]*$",
        description="key prefix before <agent>/<camera>/<day>/<file>",
    )  # fmt: skip
    segments: bool = Field(default=False, description="every segment too (exports and locked ranges always go)")
    max_kbps: float | None = Field(
        default=None, gt=0, description="upload cap in kbit/s, so live view keeps its share of the uplink"
    )
    part_mb: int = Field(
        default=8, ge=MIN_PART_MB, le=512, description="multipart part size in MiB; smaller files go in one PUT"
    )
    timeout_s: float = Field(default=60, gt=0, le=3600, description="longest wait for any one S3 call")
    retry_initial_s: float = Field(default=2, gt=0, le=3600, description="first wait after a failed upload")
    retry_max_s: float = Field(default=300, gt=0, le=86400, description="longest wait between retries (doubling)")
    scan_s: float = Field(default=5, gt=0, le=3600, description="how often new segments are queued")
    export_spool_max_mb: int = Field(
        default=1024, ge=0, le=1024 * 1024,
        description="most MiB of HTTP exports kept on the recording disk until uploaded (never below "
        "recording.min_free); an export beyond it downloads but is not uploaded; 0 keeps none",
    )  # fmt: skip
    _access_key: SecretStr | None = PrivateAttr(None)
    _secret_key: SecretStr | None = PrivateAttr(None)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials (use access_key_file and secret_key_file)")
        return value

    @model_validator(mode="after")
    def _retry(self) -> OffloadSection:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must not be shorter than retry_initial_s")
        return self

    @property
    def part_bytes(self) -> int:
        return self.part_mb * MIB

    @property
    def export_spool_bytes(self) -> int:
        return self.export_spool_max_mb * MIB

    @property
    def access_key(self) -> SecretStr | None:
        return self._access_key

    @property
    def secret_key(self) -> SecretStr | None:
        return self._secret_key

    def with_keys(self, access_key: SecretStr, secret_key: SecretStr) -> OffloadSection:
        """For sections built in code: the same section holding the keys."""
        section = self.model_copy()
        section._access_key, section._secret_key = access_key, secret_key
        return section
