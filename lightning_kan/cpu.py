"""CPU-side process settings that decide KAN training speed on the CPU.

CPU PyTorch has no caching allocator: it takes memory from glibc's ``malloc``, which
hands every block above its mmap threshold (at most 32 MiB by default) back to the
kernel when freed, so a large tensor allocated every step (a KAN layer's basis matrix)
is page-faulted afresh every step. On the development VM that costs as much as the
GEMM itself at batch 4096 x 256 inputs. And on a machine without an NVIDIA driver,
``import lightning`` makes every optimizer step retry loading the NVML library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["reuse_large_allocations", "skip_failing_nvml_probe"]

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
_NVML_LIBRARY = "libnvidia-ml.so.1"  # the name torch.cuda loads

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


def skip_failing_nvml_probe() -> bool:
    """Stop GPU checks from retrying an NVML library that is not installed.

    ``import lightning`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that looking for a
    GPU does not initialise CUDA before a fork). A CUDA build of torch then answers
    ``torch.cuda.is_available()``, which ``torch.optim`` calls on every ``step()``, by
    loading NVML first; without an NVIDIA driver that load fails every time and torch
    falls back to the CUDA runtime's device count. On the development VM that is 0.2 ms
    per Adam step, about 9% of the quick-start KAN's step. Where the library cannot be
    loaded the NVML answer never comes, so turning the check off gives the same answers
    without the failed load; where it can, nothing changes. Returns True if it turned
    the check off. ``lightning_kan fit`` calls it; scripts may too.
    """
    if os.environ.get(_NVML_CHECK) != "1":
        return False
    try:
        ctypes.CDLL(_NVML_LIBRARY)
    except OSError:
        os.environ[_NVML_CHECK] = "0"
        return True
    return False
