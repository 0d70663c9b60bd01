"""Every secret the agent needs, read in one place when the agent is built.

Secrets come from files or environment variables only, never from the YAML and never into a log line.
They are read when the configuration file is loaded (``edgeagent.configfile``) and held by its sections.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from edgeagent.config import Config
from edgeagent.configfile import resolve_secrets


@dataclass(frozen=True, slots=True)
class Credentials:
    camera_passwords: dict[str, SecretStr | None]
    mqtt_password: SecretStr | None
    http_token: SecretStr | None  # from http.token_file; None: the agent makes one in state_dir


def read_credentials(config: Config) -> Credentials:
    if not config.secrets_resolved:  # built in code (tests), not loaded from a file
        resolve_secrets(config)
    cameras = {name: section.password for name, section in config.cameras.items()}
    mqtt_password = config.mqtt.password if config.mqtt else None
    return Credentials(cameras, mqtt_password, config.http.token)
