"""Loading a configuration file: the one check that ``check-config`` and ``run`` both apply.

Bounded YAML (:mod:`edgeagent.yamlfile`), the models (:mod:`edgeagent.config`), then every secret read and
every TLS file opened, each problem collected as one line naming the field. A file that passes here
starts; one that fails gives all its problems at once, within a second, never a traceback.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError

from edgeagent.config import Config, ConfigError
from edgeagent.secretfile import (
    SecretProblem,
    check_readable_file,
    read_secret_env,
    read_secret_file,
    weak_token_problem,
)
from edgeagent.urls import redact_text
from edgeagent.yamlfile import YamlProblems, load_yaml_file

MAX_PROBLEM_LINES = 50


@dataclass(frozen=True)
class CheckedConfig:
    """A configuration that can run, its secrets resolved, and what an operator should know about it."""

    config: Config
    warnings: tuple[str, ...]


def _location(loc: tuple[int | str, ...]) -> str:
    """The dotted field name; a key the file made up is shortened and shown escaped (no terminal tricks)."""
    parts = [str(part) if len(str(part)) <= 40 else str(part)[:37] + "..." for part in loc]
    parts = [part if part.isprintable() else repr(part)[1:-1] for part in parts]
    return ".".join(redact_text(part) for part in parts) or "(top level)"


def _short(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__}>"
    text = text if len(text) <= 200 else text[:200]
    text = redact_text(text)
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation_error(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not str(part).startswith("function-"))
        if item["type"] == "extra_forbidden":
            lines.append(f"{_location(loc)}: unknown key")
        elif item["type"] == "missing":
            lines.append(f"{_location(loc)}: required field is missing")
        else:
            message = redact_text(item["msg"].removeprefix("Value error, "))[:200]
            lines.append(f"{_location(loc)}: {message} (got {_short(item.get('input'))})")
    return lines


def _bounded(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_PROBLEM_LINES:
        return lines
    return [*lines[:MAX_PROBLEM_LINES], f"... and {len(lines) - MAX_PROBLEM_LINES} more problems"]


def parse_config(data: object) -> Config:
    """The models from YAML data; no file is read and no secret resolved."""
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): must be a mapping of sections (got {_short(data)})"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_bounded(format_validation_error(exc))) from None


def check_config(path: Path) -> CheckedConfig:
    """Everything ``run`` needs from the file, checked: YAML, models, secrets, TLS files, listen address."""
    try:
        data = load_yaml_file(path)
    except YamlProblems as exc:
        raise ConfigError(_bounded([f"{path}: {line}" for line in exc.lines])) from None
    config = parse_config(data)
    problems: list[str] = []
    warnings: list[str] = []
    _resolve_secrets(config, problems, warnings)
    _check_tls_files(config, problems, warnings)
    _check_exposure(config, warnings)
    if problems:
        raise ConfigError(_bounded(problems))
    return CheckedConfig(config, tuple(warnings))


def _secret(
    file: Path | None, env: str | None, field: str, problems: list[str], warnings: list[str]
) -> SecretStr | None:
    """The secret a section names, checked: a file as in :mod:`edgeagent.secretfile`, a variable set
    and not empty."""
    where = field if file is not None else field.replace("_file", "_env")
    try:
        if file is not None:
            found: list[str] = []
            secret = read_secret_file(file, found)
            warnings.extend(f"{field}: {line}" for line in found)
            return secret
        if env is not None:
            return read_secret_env(env)
    except SecretProblem as exc:
        problems.append(f"{where}: {exc}")
    return None


def resolve_secrets(config: Config) -> list[str]:
    """For a Config built in code rather than loaded: read its secrets into it; returns the warnings,
    raises ConfigError with every problem."""
    problems: list[str] = []
    warnings: list[str] = []
    _resolve_secrets(config, problems, warnings)
    if problems:
        raise ConfigError(_bounded(problems))
    return warnings


def _resolve_secrets(config: Config, problems: list[str], warnings: list[str]) -> None:
    """Read every secret once; the sections hold them from now on (private attributes, never dumped)."""
    if config.mqtt is not None:
        mqtt = config.mqtt
        mqtt._password = _secret(mqtt.password_file, mqtt.password_env, "mqtt.password_file", problems, warnings)
    http = config.http
    if http.token_file is not None:
        token = _secret(http.token_file, None, "http.token_file", problems, warnings)
        weakness = weak_token_problem(token) if token is not None else None
        if weakness:
            problems.append(f"http.token_file: {weakness}")
        http._token = token
    for name, camera in config.cameras.items():
        field = f"cameras.{name}.password_file"
        camera._password = _secret(camera.password_file, camera.password_env, field, problems, warnings)
    if config.offload is not None:
        offload = config.offload
        offload._access_key = _secret(offload.access_key_file, None, "offload.access_key_file", problems, warnings)
        offload._secret_key = _secret(offload.secret_key_file, None, "offload.secret_key_file", problems, warnings)
    for index, server in enumerate(config.webrtc.ice_servers):
        field = f"webrtc.ice_servers.{index}.credential_file"
        server._credential = _secret(server.credential_file, None, field, problems, warnings)
    if config.uplink is not None and config.uplink.token_file is not None:
        config.uplink._token = _secret(config.uplink.token_file, None, "uplink.token_file", problems, warnings)
    config._secrets_resolved = not problems


def _check_tls_files(config: Config, problems: list[str], warnings: list[str]) -> None:
    files: list[tuple[str, Path | None, bool]] = []
    if config.mqtt is not None and config.mqtt.tls is not None:
        tls = config.mqtt.tls
        files += [("mqtt.tls.ca_file", tls.ca_file, False), ("mqtt.tls.cert_file", tls.cert_file, False)]
        files.append(("mqtt.tls.key_file", tls.key_file, True))
    if config.http.tls is not None:
        files.append(("http.tls.cert_file", config.http.tls.cert_file, False))
        files.append(("http.tls.key_file", config.http.tls.key_file, True))
    before = len(problems)
    for field, file, private in files:
        if file is None:
            continue
        found: list[str] = []
        try:
            check_readable_file(file, private, found)
        except SecretProblem as exc:
            problems.append(f"{field}: {exc}")
        warnings.extend(f"{field}: {line}" for line in found)
    if len(problems) > before:
        return
    if config.mqtt is not None and config.mqtt.tls is not None:
        tls = config.mqtt.tls
        _load_tls("mqtt.tls", tls.cert_file, tls.key_file, tls.ca_file, problems)
    if config.http.tls is not None:
        _load_tls("http.tls", config.http.tls.cert_file, config.http.tls.key_file, None, problems)


def _load_tls(field: str, cert: Path | None, key: Path | None, ca: Path | None, problems: list[str]) -> None:
    """Load the files as the agent will, so a certificate that does not parse or a key that does not
    match it is found here, not at start. A key with a passphrase fails rather than prompt for one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
        if cert is not None and key is not None:
            context.load_cert_chain(str(cert), str(key), password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        problems.append(f"{field}: OpenSSL cannot load the certificate, key or CA file: {str(reason)[:120]}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_exposure(config: Config, warnings: list[str]) -> None:
    """Plain HTTP beyond this machine carries the bearer token in clear: allowed, said out loud."""
    if config.http.tls is None and not _is_loopback(config.http.host):
        warnings.append(
            f"http.listen: plain HTTP on {config.http.listen}: the bearer token crosses the network in clear; "
            "set http.tls (or listen on 127.0.0.1 behind a TLS proxy)"
        )
    mqtt = config.mqtt
    if mqtt is not None and mqtt.tls is None and mqtt.password is not None:
        for host in sorted({host for host, _ in mqtt.brokers if not _is_loopback(host)}):
            warnings.append(f"mqtt.tls: the broker password goes to {host} in clear; set mqtt.tls")
