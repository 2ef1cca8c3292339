"""Small helpers shared by nets, tasks and benchmarks."""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalars in ``module``'s parameters (only ``requires_grad`` ones by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
