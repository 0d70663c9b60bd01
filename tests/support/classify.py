"""Which tests start real processes: the rule behind the ``real`` marker (see tests/conftest.py).

A test is ``real`` when its function, the fixtures it uses (their whole closure), or the project's functions
and classes these refer to (tests/, edgeagent/, benchmarks/, followed transitively) refer to something that
starts a process: the ``subprocess`` module (and asyncio's subprocess functions), or one of the wrappers in
tests/support (camera simulator, mosquitto, the agent, Chromium, ``ManagedProcess``). The rule reads code,
so a new test file needs no marker; a test the rule misses still cannot pass silently as fast, because a
test without the marker is refused a process (``forbid_processes`` in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

_STARTER_MODULES = ("subprocess", "asyncio.subprocess", "multiprocessing")


def _is_starter(value: Any, starters: tuple[Any, ...]) -> bool:
    if value is subprocess or value is asyncio.subprocess:
        return True
    if value is asyncio.create_subprocess_exec or value is asyncio.create_subprocess_shell:
        return True
    if any(value is starter for starter in starters):
        return True
    if isinstance(value, type) and any(isinstance(s, type) and issubclass(value, s) for s in starters):
        return True
    return (getattr(value, "__module__", None) or "").startswith(_STARTER_MODULES)


def _names(code: types.CodeType) -> Iterator[str]:
    """Global names a code object (and the functions, lambdas and comprehensions inside it) refers to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


# The project's own code, which the rule follows; third-party code is not followed (a library that starts
# a process is named in the starters instead, as Chromium's driver is).
OWN_PACKAGES = ("tests", "edgeagent", "benchmarks", "conftest", "test_")


def _ours(value: Any) -> bool:
    module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return isinstance(module, str) and module.startswith(OWN_PACKAGES)


def starts_processes(func: Callable[..., Any], starters: tuple[Any, ...], _seen: set[int] | None = None) -> bool:
    """Whether ``func``, or a function or class of the project it refers to (followed transitively, through
    the project's modules too), refers to a process starter."""
    seen = _seen if _seen is not None else set()
    func = getattr(func, "__func__", func)
    func = getattr(func, "__wrapped__", func)
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    module_globals: dict[str, Any] = getattr(func, "__globals__", {})
    names = set(_names(code))
    for name in names:
        if name in module_globals:
            value = module_globals[name]
        elif name in sys.modules:  # a function-local ``from tests.support.x import y`` names the module
            value = sys.modules[name]
        else:
            continue
        if isinstance(value, types.ModuleType) and _ours(value):
            # ``packets.packet(...)``: the attributes of a project module that the code names
            candidates = [getattr(value, attr) for attr in names if hasattr(value, attr)]
        else:
            candidates = [value]
        for candidate in candidates:
            if _is_starter(candidate, starters):
                return True
            if _ours(candidate) and _follow(candidate, starters, seen):
                return True
    return False


def _follow(value: Any, starters: tuple[Any, ...], seen: set[int]) -> bool:
    value = getattr(value, "__wrapped__", value)  # functools.cache and friends
    if isinstance(value, types.FunctionType):
        return starts_processes(value, starters, seen)
    if isinstance(value, type):
        if id(value) in seen:
            return False
        seen.add(id(value))
        for klass in value.__mro__:
            if not _ours(klass):
                continue
            for member in vars(klass).values():
                target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if isinstance(target, types.FunctionType) and starts_processes(target, starters, seen):
                    return True
    return False
