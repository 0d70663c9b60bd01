"""The C allocator's settings for a long-running agent: a fixed mmap threshold (glibc only).

glibc serves allocations above its mmap threshold with their own mappings and unmaps them when freed, but each
such free raises the threshold (up to 32 MB), and from then on buffers of that size come from the heap, which
only shrinks from its top. The agent's large buffers (a snapshot decoder's picture pool, FFmpeg's probe and
packet buffers when cameras reconnect) are freed often: with the sliding threshold the first camera restart
left RSS 26-32 MB higher for good (benchmarks/FINDINGS.md, "glibc's dynamic mmap threshold"). Fixing the
threshold at 128 kB, glibc's own default, turns the sliding off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024
ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"  # the operator's own choice wins (glibc reads it at start)
TUNABLE = "glibc.malloc.mmap_threshold"  # ... and so does the same in GLIBC_TUNABLES


def operator_set() -> bool:
    return ENVIRONMENT in os.environ or TUNABLE in os.environ.get("GLIBC_TUNABLES", "")


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold; False (and nothing changed) off glibc or where the operator set it."""
    if operator_set() or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError) as exc:
        log.debug("allocator: mallopt not available: %s", exc)
        return False
