"""glibc's mmap threshold stays fixed in the agent: a large buffer freed does not move the next one to the heap."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

LIBC, VERSION = platform.libc_ver()
pytestmark = pytest.mark.skipif(
    LIBC != "glibc" or tuple(map(int, VERSION.split("."))) < (2, 33), reason="glibc's allocator, mallinfo2 (2.33)"
)

# Frees a 4 MB block (glibc then raises a sliding threshold to 4 MB), then asks for 1 MB and says whether that
# came from its own mapping (hblkhd, the bytes in mmapped blocks, grew) or from the heap.
PROBE = """
import ctypes, sys
from edgeagent.allocator import fix_mmap_threshold
fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else False

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print(fixed, libc.mallinfo2().hblkhd - before >= 1 << 20)
libc.free(block)
"""


def probe(mode: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=30, env=env
    ).stdout.strip()


def test_the_threshold_slides_by_default_and_is_fixed_by_the_agent() -> None:
    assert probe("default") == "False False"  # the trap: the 1 MB block came from the heap
    assert probe("fix") == "True True"


@pytest.mark.parametrize(
    "setting", [("MALLOC_MMAP_THRESHOLD_", "2097152"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=2097152")]
)
def test_an_operators_own_setting_is_left_alone(setting: tuple[str, str]) -> None:
    import os

    env = {**os.environ, setting[0]: setting[1]}
    assert probe("fix", env) == "False False"  # 1 MB is under the operator's 2 MB threshold: heap
