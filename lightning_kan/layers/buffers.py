"""Reused CPU feature buffers: a layer's ``(N, I*K + I)`` expansion without page faults.

CPU PyTorch has no caching allocator, and glibc gives a freed block above its mmap
threshold (32 MiB at most) straight back to the kernel, so a fresh feature buffer is
page-faulted anew on every training step: at 4096 x 256 inputs, K = 8 (38 MB), that cost
29 ms of a 53 ms expansion, more than the C kernel itself (``benchmarks/kan_linear.py``).
:func:`feature_buffer` keeps each basis' last few buffers and hands one out again only
when nothing else holds its storage: autograd's saved tensor, a view or a user's
reference keep it busy, and a busy buffer is never reused. What it costs: between steps
the process keeps the buffers a step needs anyway (as CUDA's caching allocator does);
:func:`release_feature_buffers` frees them, ``LIGHTNING_KAN_REUSE_BUFFERS=0`` turns reuse off.
"""

from __future__ import annotations

import math
import os
import threading
from weakref import WeakKeyDictionary

import torch
from torch import nn

__all__ = ["feature_buffer", "release_feature_buffers"]

#: buffers kept per basis (a basis shared by layers, or a last smaller batch, needs more
#: than one)
MAX_BUFFERS_PER_BASIS = 4
#: smaller buffers come from malloc's free lists already
MIN_BYTES = 1 << 20

# ``torch._C._storage_Use_Count``: how many tensors and storages share a storage (private,
# so looked up once; without it nothing is reused)
_use_count = getattr(torch._C, "_storage_Use_Count", None)
_enabled = os.environ.get("LIGHTNING_KAN_REUSE_BUFFERS", "1") != "0" and _use_count is not None
#: per owner, its kept tensors with their storages: the pair alone holds a free buffer's
#: storage (use count 2); every tensor handed out is a ``detach()`` of a kept one (a new
#: tensor on the same storage, 0.4 us, where building one on the storage took 1.5 us)
_pools: WeakKeyDictionary[nn.Module, list[tuple[torch.Tensor, torch.UntypedStorage]]]
_pools = WeakKeyDictionary()
_FREE_USE_COUNT = 2
_lock = threading.Lock()


def feature_buffer(owner: nn.Module, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device: on the CPU,
    and from 1 MiB up, one of ``owner``'s earlier buffers of that shape when nothing uses
    it any more."""
    nbytes = math.prod(shape) * like.element_size()
    if not _enabled or like.device.type != "cpu" or nbytes < MIN_BYTES:
        return like.new_empty(shape)
    with _lock:  # a free buffer is taken (its count raised) before another thread looks
        pool = _pools.get(owner)
        if pool is None:
            pool = _pools[owner] = []
        for kept, storage in pool:
            if (
                kept.dtype == like.dtype
                and kept.shape == shape
                and _use_count(storage._cdata) == _FREE_USE_COUNT
            ):
                return kept.detach()
        kept = like.new_empty(shape)
        pool.append((kept, kept.untyped_storage()))
        del pool[:-MAX_BUFFERS_PER_BASIS]
        return kept.detach()


def release_feature_buffers() -> None:
    """Drop every kept buffer (those still in use live on until their last user is gone)."""
    with _lock:
        _pools.clear()
