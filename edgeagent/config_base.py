"""What every configuration section shares: strict models, the error that names a field, name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TOPIC_PATTERN = r"^[A-Za-z0-9_/-]+$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ConfigError(Exception):
    """A configuration that cannot run: each line of ``lines`` names one field and its value."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:  # a path with one fails deep inside the agent
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not hold a NUL character")
        return value
