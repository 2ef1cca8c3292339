"""Batches from in-memory tensors with one gather per tensor, not one lookup per sample.

A plain ``DataLoader(TensorDataset(...))`` indexes the dataset once per sample and stacks
the results: for a batch of 100 small samples that is ~0.5 ms of Python on a laptop CPU,
a fifth of a small KAN's whole training step. :class:`TensorBatchDataset` answers the
DataLoader's batched request (``__getitems__``) with ``tensor[indices]`` for each tensor,
and :func:`batch_loader` pairs it with :func:`keep_batch`, which passes that ready batch
through. Any sampler works, so Lightning's ``DistributedSampler`` swap under DDP does too.
The data modules keep plain ``TensorDataset`` splits (safe in any DataLoader); only the
loaders :func:`batch_loader` builds hold the batched view.

:func:`evaluation_loader` shards validation/test data under DDP without repeating a
sample: Lightning's default ``DistributedSampler`` pads the shards to equal length with
repeated samples, so an epoch metric over "the whole split" would count some twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler, TensorDataset

__all__ = ["TensorBatchDataset", "batch_loader", "evaluation_loader", "keep_batch"]


class TensorBatchDataset(TensorDataset):
    """``TensorDataset`` whose batched fetch is ``tuple(t[indices] for t in tensors)``.

    ``dataset[i]`` still returns one sample, so it works wherever a ``TensorDataset``
    does; a DataLoader over it needs ``collate_fn=keep_batch`` (:func:`batch_loader` sets it).
    """

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor[index] for tensor in self.tensors)


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate function for :class:`TensorBatchDataset`: the batch is already stacked.

    A module-level function (not a lambda) so DataLoader workers can pickle it.
    """
    if not isinstance(batch, tuple):
        raise TypeError(
            f"keep_batch expects the tuple of batched tensors a TensorBatchDataset returns, "
            f"got {type(batch).__name__}; use torch's default collate_fn for other datasets"
        )
    return batch


def batch_loader(
    dataset: TensorDataset,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over ``dataset``'s tensors in ``sampler`` order (sequential if
    ``None``), each batch gathered at once; yields what a plain DataLoader would."""
    return DataLoader(
        TensorBatchDataset(*dataset.tensors),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=keep_batch,
    )


def evaluation_loader(
    dataset: TensorDataset, batch_size: int, num_workers: int = 0, split: str = "evaluation"
) -> DataLoader:
    """A sequential :func:`batch_loader` for validation, test or prediction.

    Under DDP (``torch.distributed`` initialised, more than one process) each process
    gets a disjoint shard, every sample in exactly one, so metrics synchronised across
    processes equal the single-process ones. The shards differ by at most one sample;
    DDP only syncs buffers on the first evaluation batch, so this cannot deadlock as
    long as every process has a sample.
    """
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world_size = torch.distributed.get_world_size()
        if world_size > 1:
            if len(dataset) < world_size:
                raise ValueError(
                    f"the {split} split has {len(dataset)} samples, fewer than the "
                    f"{world_size} processes: every process needs at least one; make the "
                    "split larger or use fewer devices"
                )
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=world_size, rank=torch.distributed.get_rank(), shuffle=False
            )
    return batch_loader(dataset, batch_size, sampler, num_workers)
