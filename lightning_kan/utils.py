"""Small helpers shared by nets, tasks and benchmarks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["count_parameters", "optimizer_config"]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalars in ``module``'s parameters (only ``requires_grad`` ones by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def optimizer_config(
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    monitor: str = "val/loss",
) -> Any:
    """What ``configure_optimizers`` returns: the optimizer, with its scheduler if any.

    The scheduler steps once per epoch; ``monitor`` feeds ``ReduceLROnPlateau``.
    """
    if scheduler is None:
        return optimizer
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "interval": "epoch"},
    }
