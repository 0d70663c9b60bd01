"""The configuration documents itself: the README's reference and the JSON schema, from the models.

``edgeagent config-doc`` writes the YAML reference between the markers in README.md (``--check`` says
whether it is current; a test runs that); ``edgeagent config-schema`` prints the JSON schema for editors.
"""

from __future__ import annotations

import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edgeagent.config import Config

START_MARKER = "<!-- config-reference:start -->"
END_MARKER = "<!-- config-reference:end -->"
COMMENT_COLUMN = 30
WIDTH = 110
README = Path(__file__).resolve().parent.parent / "README.md"


def schema_json() -> str:
    return json.dumps(Config.model_json_schema(), indent=2)


def _models_in(annotation: Any) -> tuple[str, type[BaseModel] | None]:
    """How a field holds a section: ("model" | "optional" | "dict" | "list" | "value", the model)."""
    origin = typing.get_origin(annotation)
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if origin in (types.UnionType, typing.Union) and len(args) == 1:
        kind, model = _models_in(args[0])
        return ("optional", model) if kind == "model" else ("value", None)
    if origin is dict and len(args) == 2:
        kind, model = _models_in(args[1])
        return ("dict", model) if kind == "model" else ("value", None)
    if origin is list and args:
        kind, model = _models_in(args[0])
        return ("list", model) if kind == "model" else ("value", None)
    return "value", None


def _flow(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _line(lines: list[str], indent: int, text: str, comment: str | None, prefix: str = "") -> None:
    head = f"{' ' * indent}{prefix}{text}"
    if not comment:
        lines.append(head)
        return
    column = max(COMMENT_COLUMN, len(head) + 1) if len(head) < COMMENT_COLUMN + 20 else len(head) + 1
    wrapped = textwrap.wrap(comment, max(40, WIDTH - column - 2))
    lines.append(f"{head.ljust(column)}# {wrapped[0]}")
    lines.extend(f"{' ' * column}# {rest}" for rest in wrapped[1:])


def _value(field: FieldInfo) -> Any:
    if field.examples:
        return field.examples[0]
    if field.is_required():
        return "<required>"
    return field.get_default(call_default_factory=True)


def _example_key(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    key = extra.get("x-example-key") if isinstance(extra, dict) else None
    return str(key) if key else "name"


def _section(model: type[BaseModel], indent: int, lines: list[str], prefix: str = "", top: bool = False) -> None:
    for number, (name, field) in enumerate(model.model_fields.items()):
        if top and number:
            lines.append("")
        lead = prefix if number == 0 else " " * len(prefix)
        inner_indent = indent + len(lead) + 2
        kind, inner = _models_in(field.annotation)
        if inner is not None and kind in ("model", "optional") and not field.examples:
            _line(lines, indent, f"{name}:", field.description, lead)
            _section(inner, inner_indent, lines)
        elif inner is not None and kind == "dict":
            _line(lines, indent, f"{name}:", field.description, lead)
            _line(lines, inner_indent, f"{_example_key(field)}:", None)
            _section(inner, inner_indent + 2, lines)
        elif inner is not None and kind == "list" and not field.examples:
            _line(lines, indent, f"{name}: {_flow(_value(field))}", field.description, lead)
            example: list[str] = []
            _section(inner, 0, example, prefix="- ")
            lines.extend(f"{' ' * (indent + len(lead))}# {row}" for row in example)
        else:
            _line(lines, indent, f"{name}: {_flow(_value(field))}", field.description, lead)


def reference_yaml() -> str:
    """Every field of the configuration with its default (or an example) and its description."""
    lines: list[str] = []
    _section(Config, 0, lines, top=True)
    return "\n".join(lines) + "\n"


def readme_block() -> str:
    return f"{START_MARKER}\n```yaml\n{reference_yaml()}```\n{END_MARKER}"


def update_readme(path: Path = README, check: bool = False) -> bool:
    """Write the reference between the markers; True when the file already held it. With ``check``,
    only compare. A README without the markers is an error (ValueError)."""
    text = path.read_text()
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no {START_MARKER!r} ... {END_MARKER!r} markers")
    current = text[start : end + len(END_MARKER)]
    block = readme_block()
    if current == block:
        return True
    if not check:
        path.write_text(text[:start] + block + text[end + len(END_MARKER) :])
    return False
