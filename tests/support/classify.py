"""Which tests start real processes: the rule behind the ``real`` marker (see tests/conftest.py).

A test is ``real`` when its function, the fixtures it uses (their whole closure) or the functions of its
own module that these call refer to something that starts a process: the ``subprocess`` module (and
asyncio's subprocess functions), or one of the wrappers in tests/support (camera simulator, mosquitto,
the agent, Chromium, ``ManagedProcess``). The rule reads code, so a new test file needs no marker; a
test the rule misses still cannot pass silently as fast, because the fast run refuses to start a process
(``forbid_processes``).
"""

from __future__ import annotations

import asyncio
import subprocess
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


def starts_processes(func: Callable[..., Any], starters: tuple[Any, ...], _seen: set[int] | None = None) -> bool:
    """Whether ``func``, or a function of its own module it calls (followed transitively), refers to a
    process starter. Methods of classes are looked at through the class's functions."""
    seen = _seen if _seen is not None else set()
    func = getattr(func, "__func__", func)
    func = getattr(func, "__wrapped__", func)
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    module_globals: dict[str, Any] = getattr(func, "__globals__", {})
    own_module = module_globals.get("__name__")
    for name in _names(code):
        if name not in module_globals:
            continue
        value = module_globals[name]
        if _is_starter(value, starters):
            return True
        if getattr(value, "__module__", None) != own_module:
            continue
        if isinstance(value, types.FunctionType) and starts_processes(value, starters, seen):
            return True
        if isinstance(value, type):
            for member in vars(value).values():
                target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if isinstance(target, types.FunctionType) and starts_processes(target, starters, seen):
                    return True
    return False
