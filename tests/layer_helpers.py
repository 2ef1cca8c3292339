"""Layers for the kernel-path tests: built from a fixed seed, with coefficients of the
size a trained layer has (``N(0, 1)``, not the small initial noise)."""

from __future__ import annotations

import torch

from lightning_kan import KANLinear


def trained_layer(in_features: int, out_features: int, **kwargs) -> KANLinear:
    """``KANLinear(in_features, out_features, **kwargs)`` with ``weight ~ N(0, 1)``."""
    torch.manual_seed(0)
    layer = KANLinear(in_features, out_features, **kwargs)
    with torch.no_grad():
        layer.weight.normal_()
    return layer
