"""CPU-side memory behaviour that decides KAN training speed on the CPU.

CPU PyTorch has no caching allocator: it takes memory from glibc's ``malloc``, which
hands every block above its mmap threshold (at most 32 MiB by default) back to the
kernel when freed, so a large tensor allocated every step (a KAN layer's basis matrix)
is page-faulted afresh every step. On the development VM that costs as much as the
GEMM itself at batch 4096 x 256 inputs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["reuse_large_allocations"]

# glibc malloc.h parameter numbers
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def reuse_large_allocations(mmap_threshold: int = 1 << 30, keep: int = 1 << 32) -> bool:
    """Let glibc keep freed large blocks for reuse instead of unmapping them.

    Process-wide and opt-in: raises the mmap threshold to ``mmap_threshold`` bytes and
    stops returning up to ``keep`` bytes of freed heap to the kernel, so a tensor of the
    same size next step reuses already-mapped pages. The process then holds on to its
    peak memory. Equivalent to starting Python with ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set. Returns False (and changes nothing) where the C
    library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = (1 << 31) - 1
    settings = (
        (_M_MMAP_THRESHOLD, min(mmap_threshold, limit)),
        (_M_TRIM_THRESHOLD, min(keep, limit)),
        (_M_TOP_PAD, min(64 << 20, limit)),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
