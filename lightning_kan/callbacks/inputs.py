"""Training inputs for callbacks that look at the data (grid updates, plots)."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["training_inputs"]


def training_inputs(trainer: L.Trainer, num_samples: int, caller: str) -> torch.Tensor:
    """The first ``num_samples`` inputs of the datamodule's training loader (rank 0's,
    broadcast so every process sees the same ones)."""
    if trainer.datamodule is None:
        raise ValueError(f"{caller} reads training inputs from the trainer's datamodule")
    batches, count = [], 0
    for batch in trainer.datamodule.train_dataloader():
        inputs = batch[0] if isinstance(batch, list | tuple) else batch
        batches.append(inputs)
        count += inputs.shape[0]
        if count >= num_samples:
            break
    return trainer.strategy.broadcast(torch.cat(batches)[:num_samples], src=0)
