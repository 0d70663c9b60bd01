"""YAML read with bounds: small regular files, no anchors or aliases, no duplicate keys, bounded depth.

A 401-byte alias bomb once took the loader 57 s and all the memory; an agent configuration needs none of
YAML's sharing features, so they are refused, before anything is built from the document.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32  # nested mappings and lists; a configuration uses 5
# Scalars, mappings and lists: 32 cameras with masks take about 3,000; this many parse in about 0.3 s,
# where a 1 MB file of one-character list items (250,000) took 2 s and masks 5 s to be refused.
MAX_EVENTS = 50_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlProblems(Exception):
    """The document cannot be used; ``lines`` says why, one problem a line, without the path."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def read_small_file(path: Path, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of a regular file and its mode; OSError for anything else (a FIFO, a
    device, a directory, a bigger file).

    Opened without blocking, so a FIFO cannot hang the caller, and checked on the open descriptor, so
    the file checked is the file read.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(0, "not a regular file")
        data = b""
        while len(data) <= limit and (chunk := os.read(descriptor, limit + 1 - len(data))):
            data += chunk
        if len(data) > limit:
            raise OSError(0, f"larger than {limit // 1024} kB" if limit >= 1024 else f"larger than {limit} bytes")
        return data, mode
    finally:
        os.close(descriptor)


def _mark(node_or_event: Any) -> str:
    mark = getattr(node_or_event, "start_mark", None)
    return f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""


def _check_events(text: str) -> None:
    """Refuse anchors, aliases and deep nesting, from the event stream (nothing is built yet)."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_Loader)):
        if count > MAX_EVENTS:
            raise YamlProblems([f"{_mark(event)}more than {MAX_EVENTS} values, lists and mappings"])
        if isinstance(event, yaml.AliasEvent):
            raise YamlProblems([f"{_mark(event)}aliases (*{event.anchor}) are not allowed"])
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlProblems([f"{_mark(event)}anchors (&{anchor}) are not allowed"])
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblems([f"{_mark(event)}nested more than {MAX_DEPTH} levels deep"])
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


class _UniqueKeyLoader(_Loader):  # type: ignore[misc, valid-type]
    """Safe loading that notes every key given twice in a mapping (YAML would keep the last silently)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
                if first is None:
                    seen[key] = key_node.start_mark.line + 1
                    continue
            except TypeError:  # an unhashable key: the constructor below says so
                continue
            shown = repr(key) if len(repr(key)) <= 60 else repr(key)[:57] + "..."
            self.problems.append(f"{_mark(key_node)}duplicate key {shown} (first on line {first})")
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> object:
    """The document of ``text``; YamlProblems for invalid YAML and for everything refused above."""
    try:
        _check_events(text)
        loader = _UniqueKeyLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise YamlProblems([_yaml_error_line(exc)]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer of 5000 digits
        raise YamlProblems([f"a value cannot be read: {str(exc)[:100]}"]) from None
    if loader.problems:
        raise YamlProblems(loader.problems)
    return data


def _yaml_error_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None)
    if not problem:
        problem = str(exc).splitlines()[0] if str(exc) else "not valid YAML"
    return f"{where}{problem[:120]}"


def load_yaml_file(path: Path) -> object:
    """A configuration file: regular, at most MAX_FILE_BYTES, UTF-8, one YAML document."""
    try:
        raw, _ = read_small_file(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise YamlProblems([f"cannot read: {exc.strerror or exc}"]) from None
    except ValueError as exc:  # a NUL in the path
        raise YamlProblems([f"cannot read: {exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblems([f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"]) from None
    return load_yaml_text(text)
