"""Small helpers shared by nets, tasks and benchmarks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["close_process_group", "count_parameters", "optimizer_config"]


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


def close_process_group() -> None:
    """Wait for every DDP process, then destroy the process group: call it once after the
    last ``Trainer`` call of a multi-process script (``lightning_kan fit`` does).

    Lightning leaves the group to the interpreter's exit, and gloo then aborts a process
    ("terminate called without an active exception", exit status -6 after a complete
    fit) when its peer has already closed the connection; tearing it down together,
    while all processes are alive, avoids that race. Without a group: nothing."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
