"""glibc's malloc tuned for PyTorch on the CPU (`tune_malloc`), applied by the `nafft` command at start.

A NAFNet forward or training step allocates and frees hundreds of activation-sized buffers. glibc's malloc returns
large freed blocks to the kernel at once (blocks above its mmap threshold, and the heap top above its trim
threshold), so the next allocation of the same size faults every page in again, zero-filled; on virtual machines
that costs a large share of the convolution time. `tune_malloc` raises both thresholds so that freed blocks up to
32 MiB stay in the heap for reuse (`benchmarks/bench_malloc.py` measures the effect side by side; docs/benchmarks.md
quotes it). Set `NAFFT_MALLOPT=0` to leave the allocator alone. Under another allocator (jemalloc or tcmalloc
preloaded) the call changes nothing that is used.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for this setting on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1


def tune_malloc(env: Mapping[str, str] | None = None) -> bool:
    """Keep freed blocks up to 32 MiB in glibc's heap; True when applied, False when opted out or not glibc."""
    env = os.environ if env is None else env
    if env.get("NAFFT_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
