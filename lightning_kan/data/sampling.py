"""``EpochShuffleSampler``: a shuffle that depends only on (seed, epoch).

A plain ``shuffle=True`` DataLoader draws its order from a generator whose state moves
on every epoch and is not saved in checkpoints, so a run resumed from a checkpoint sees
different batches than the uninterrupted run. Lightning calls ``set_epoch`` on the
sampler at every epoch (as for ``DistributedSampler``, which replaces this one under
DDP), so with this sampler a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Indices ``0..length-1`` in the order ``torch.randperm`` gives for ``seed + epoch``."""

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length
