"""Every secret the agent needs, read in one place when the agent is built.

Secrets come from files or environment variables only (``config.read_secret``), never from the YAML and
never into a log line. When the configuration resolves secrets at load, only this function changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from edgeagent.config import Config, read_secret


@dataclass(frozen=True, slots=True)
class Credentials:
    camera_passwords: dict[str, SecretStr | None]
    mqtt_password: SecretStr | None
    http_token: SecretStr | None  # from http.token_file; None: the agent makes one in state_dir


def read_credentials(config: Config) -> Credentials:
    cameras = {
        name: read_secret(section.password_file, section.password_env, f"cameras.{name}.password_file")
        for name, section in config.cameras.items()
    }
    mqtt = config.mqtt
    mqtt_password = read_secret(mqtt.password_file, mqtt.password_env, "mqtt.password_file") if mqtt else None
    token_file = config.http.token_file
    http_token = read_secret(token_file, None, "http.token_file") if token_file is not None else None
    return Credentials(cameras, mqtt_password, http_token)
