"""Training inputs for callbacks that look at the data (grid updates, plots)."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["require_datamodule", "training_inputs"]


def require_datamodule(trainer: L.Trainer, caller: str) -> None:
    """Raise unless the trainer has a datamodule (checked at setup, before any training)."""
    if trainer.datamodule is None:
        raise ValueError(
            f"{caller} reads training inputs from the trainer's datamodule, and this fit has "
            "none (it got dataloaders); pass a LightningDataModule: "
            "trainer.fit(model, datamodule=...)"
        )


def training_inputs(trainer: L.Trainer, num_samples: int, caller: str) -> torch.Tensor:
    """The first ``num_samples`` inputs of the datamodule's training loader (rank 0's,
    broadcast so every process sees the same ones): ``(num_samples, D)`` or fewer.

    A batch is ``(inputs, ...)``, a bare inputs tensor, or a PDE collocation dict whose
    ``"interior"`` points are the inputs. Every process must call this (a collective).
    """
    require_datamodule(trainer, caller)
    batches, count = [], 0
    for batch in trainer.datamodule.train_dataloader():
        inputs = _batch_inputs(batch, caller)
        batches.append(inputs)
        count += inputs.shape[0]
        if count >= num_samples:
            break
    return trainer.strategy.broadcast(torch.cat(batches)[:num_samples], src=0)


def _batch_inputs(batch: object, caller: str) -> torch.Tensor:
    """The network inputs of one training batch."""
    if isinstance(batch, list | tuple):
        batch = batch[0]
    elif isinstance(batch, dict):
        if "interior" not in batch:
            raise ValueError(
                f"{caller} reads training inputs from dict batches under the key 'interior' "
                f"(PDEDataModule's collocation points); this batch has keys {sorted(batch)}"
            )
        batch = batch["interior"]
    if not isinstance(batch, torch.Tensor):
        raise TypeError(
            f"{caller} expects training batches of tensors (inputs, targets), got "
            f"{type(batch).__name__}"
        )
    return batch
