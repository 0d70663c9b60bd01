"""The ``mqtt:`` and ``http:`` sections of the configuration (read by the publishers)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from edgeagent.config_base import ENV_PATTERN, TOPIC_PATTERN, Strict
from edgeagent.urls import check_host_name, split_host_port

# A refresh republishes every retained state: more often than this would be a flood on a large fleet.
REFRESH_MIN_S = 5
REFRESH_MAX_S = 86400
HOSTS_TEXT = "or: a broker cluster, [a.example:8883, b.example:8883]; the agent stays on one while it works"


class TlsSection(Strict):
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) to check the broker's", examples=["/etc/edgeagent/ca.pem"]
    )
    cert_file: Path | None = Field(
        default=None, description="client certificate, with key_file", examples=["/etc/edgeagent/client.pem"]
    )
    key_file: Path | None = Field(
        default=None, description="its private key (not readable by others)", examples=["/etc/edgeagent/client.key"]
    )
    insecure_skip_verify: bool = Field(default=False, description="accept any broker certificate (tests only)")

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSection(Strict):
    host: str | None = Field(None, max_length=253, description="the broker (or hosts)", examples=["broker.example"])
    port: int = Field(default=8883, ge=1, le=65535, description="the broker's port (and the default of hosts)")
    hosts: list[str] | None = Field(None, min_length=1, max_length=16, description=HOSTS_TEXT)
    username: str | None = Field(default=None, max_length=256, description="user at the broker", examples=["edge17"])
    password_file: Path | None = Field(default=None, description="file holding the broker password", examples=["mqtt"])
    password_env: str | None = Field(default=None, pattern=ENV_PATTERN, description="or: a variable holding it")
    tls: TlsSection | None = Field(default=None, description="optional; omit for a plain connection (tests, the demo)")
    topic_prefix: str = Field(default="edgeagent", pattern=TOPIC_PATTERN, description="first level of every topic")
    keepalive_s: int = Field(
        default=10, ge=2, le=3600, description="the broker sends the last will about 1.5 x this after the agent hangs"
    )
    client_id: str | None = Field(default=None, max_length=128, description="default edgeagent-<agent.id>")
    refresh_s: int = Field(
        default=300,
        ge=0,
        le=REFRESH_MAX_S,
        description=(
            "publish every retained state again this often while connected (and once 10 s after a failover), "
            "for a broker cluster that lost one; 0: only on connect"
        ),
    )
    snapshot_retain: bool = Field(
        default=True,
        description="retain snapshots (late subscribers get the last one); false: live only, qos 0 (e.g. on NATS)",
    )
    spread: bool = Field(
        default=False,
        description=(
            "with hosts: start at the broker a hash of agent.id picks (the same one every time), so a fleet "
            "spreads over the cluster's nodes; false: the first listed is preferred"
        ),
    )
    _password: SecretStr | None = PrivateAttr(None)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host_name(value)

    @field_validator("refresh_s")
    @classmethod
    def _refresh(cls, value: int) -> int:
        if 0 < value < REFRESH_MIN_S:
            raise ValueError(f"must be 0 (only on connect) or {REFRESH_MIN_S} to {REFRESH_MAX_S} s")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MqttSection:
        if (self.host is None) == (self.hosts is None):
            raise ValueError("give host (with port) or hosts, not both" if self.host else "host (or hosts) is required")
        for entry in self.hosts or []:
            split_host_port(entry, self.port)  # a ValueError names the bad one
        return self

    @property
    def brokers(self) -> list[tuple[str, int]]:
        """Every broker as (host, port), in the order they are tried."""
        return [split_host_port(entry, self.port) for entry in self.hosts or [f"[{self.host}]"]]

    @property
    def password(self) -> SecretStr | None:
        """The broker password, read from password_file or password_env at load."""
        return self._password


class HttpTls(Strict):
    cert_file: Path = Field(description="server certificate (chain)", examples=["/etc/edgeagent/http.pem"])
    key_file: Path = Field(
        description="its private key (not readable by other users)", examples=["/etc/edgeagent/http.key"]
    )


class HttpSection(Strict):
    listen: str = Field(
        default="127.0.0.1:8080", description="HOST:PORT; plain HTTP beyond loopback gets a warning: set tls"
    )
    token_file: Path | None = Field(
        default=None,
        description=(
            "bearer token (>= 16 characters, >= 8 different ones); without it a random token is made once and "
            "stored 0600 as <state_dir>/http-token (its path is logged, never it)"
        ),
        examples=["http-token"],
    )
    tls: HttpTls | None = Field(default=None, description="optional: serve HTTPS")
    _token: SecretStr | None = PrivateAttr(None)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        check_host_name(host)
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def token(self) -> SecretStr | None:
        """The token read from token_file at load; None when the agent makes its own."""
        return self._token
