"""Secrets from files and the environment, read once at configuration load, with an operator's checks.

A secret file must be a small regular file (a FIFO once hung the agent, ``/dev/zero`` used up its
memory), readable by the agent and by nobody else on the machine: a world-readable or world-writable
secret file is refused, a group-readable one is accepted with a warning (a shared group can be
deliberate). The same checks apply to TLS private keys; certificates need only be regular files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import SecretStr

from edgeagent.yamlfile import read_small_file

MAX_SECRET_BYTES = 64 * 1024
MAX_TLS_FILE_BYTES = 1024 * 1024  # a certificate chain or a CA bundle
MIN_TOKEN_CHARS = 16
MIN_TOKEN_DISTINCT_CHARS = 8


class SecretProblem(Exception):
    """A secret that cannot be used; the message names the file or variable, never the value."""


def secret_path(file: Path) -> Path:
    """A relative name is looked up in $CREDENTIALS_DIRECTORY when systemd set one."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not file.is_absolute() and credentials:
        return Path(credentials) / file
    return file


def _shown(path: Path) -> str:
    text = str(path)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _permission_problem(path: Path, mode: int, warnings: list[str] | None) -> None:
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise SecretProblem(
            f"{_shown(path)} is readable or writable by every user (mode {stat.S_IMODE(mode):04o}): chmod 0600 it"
        )
    if mode & stat.S_IRGRP and warnings is not None:
        warnings.append(f"{_shown(path)} is readable by its group (mode {stat.S_IMODE(mode):04o}); 0600 is safer")


def read_secret_file(file: Path, warnings: list[str] | None = None) -> SecretStr:
    """The secret in ``file``: its text without the final line break. Group-readable files add a line
    to ``warnings``."""
    path = secret_path(file)
    try:
        data, mode = read_small_file(path, MAX_SECRET_BYTES)
    except OSError as exc:
        raise SecretProblem(f"cannot read secret file {_shown(path)}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the name
        raise SecretProblem(f"cannot read secret file {_shown(path)}: {exc}") from None
    _permission_problem(path, mode, warnings)
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretProblem(f"secret file {_shown(path)} is not UTF-8 text") from None
    return SecretStr(_checked_value(value, f"secret file {_shown(path)}"))


def read_secret_env(name: str, allow_empty: bool = False) -> SecretStr:
    try:
        value = os.environ[name]
    except (KeyError, ValueError):
        raise SecretProblem(f"environment variable {name[:60]!r} is not set") from None
    if allow_empty and not value:
        return SecretStr(value)
    return SecretStr(_checked_value(value, f"environment variable {name[:60]!r}"))


def _checked_value(value: str, where: str) -> str:
    if not value:
        raise SecretProblem(f"{where} is empty")
    if "\n" in value or "\x00" in value:
        raise SecretProblem(f"{where} holds more than one line or a NUL character")
    return value


def weak_token_problem(token: SecretStr) -> str | None:
    """Why a bearer token is too easy to guess, or None. Says how long it is, never what it is."""
    value = token.get_secret_value()
    if len(value) < MIN_TOKEN_CHARS:
        return f"the token must be at least {MIN_TOKEN_CHARS} characters (it has {len(value)})"
    if len(set(value)) < MIN_TOKEN_DISTINCT_CHARS:
        return (
            f"the token is too easy to guess (only {len(set(value))} different characters, at least "
            f"{MIN_TOKEN_DISTINCT_CHARS} wanted): make one with `head -c 32 /dev/urandom | base64`"
        )
    return None


def check_readable_file(file: Path, private: bool, warnings: list[str] | None = None) -> None:
    """A TLS file that the agent will hand to OpenSSL: a regular file it can open; a private key also
    with the permissions of a secret. It is opened, not read: OpenSSL reads it."""
    try:
        mode, size = _regular_file_mode(file)
        if size > MAX_TLS_FILE_BYTES:
            raise OSError(0, f"larger than {MAX_TLS_FILE_BYTES // 1024} kB")
    except OSError as exc:
        raise SecretProblem(f"cannot read {_shown(file)}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SecretProblem(f"cannot read {_shown(file)}: {exc}") from None
    if private:
        _permission_problem(file, mode, warnings)


def _regular_file_mode(path: Path) -> tuple[int, int]:
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(0, "not a regular file")
    return info.st_mode, info.st_size
