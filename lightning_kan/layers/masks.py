"""Edge masks: cut single edges of a dense ``KANLinear`` so they stay exactly zero.

An :class:`EdgeMask` is a ``torch.nn.utils.parametrize`` parametrisation ``w -> w * mask``
of the layer's ``weight (O, I, K)`` and ``base_weight (O, I)``. The parameters keep their
identity (``parametrizations.weight.original`` is the same ``Parameter``), so an
optimizer and a DDP wrapper built before the mask keep working, and a cut edge gets a
zero gradient. The mask is a buffer, so it travels in the ``state_dict``
(``parametrizations.weight.0.mask``), and :func:`restore_edge_masks` re-installs masks
on a fresh layer before such a state dict is loaded. Pruning, the ``Prune`` callback
and symbolic edges (``fix_symbolic``) all cut edges through :func:`set_edge_mask`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["EdgeMask", "edge_mask", "restore_edge_masks", "set_edge_mask"]


class EdgeMask(nn.Module):
    """Parametrisation ``w -> w * mask``; ``mask (O, I)`` is 1 on kept and 0 on cut edges
    and broadcasts over the ``trailing`` basis/kernel modes of ``weight (O, I, K)``."""

    def __init__(self, mask: torch.Tensor, trailing: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask.reshape(*mask.shape, *([1] * trailing)).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)


def _masks(layer: nn.Module, name: str) -> list[EdgeMask]:
    if not parametrize.is_parametrized(layer, name):
        return []
    return [p for p in getattr(layer.parametrizations, name) if isinstance(p, EdgeMask)]


def edge_mask(layer: nn.Module) -> torch.Tensor:
    """The layer's kept edges ``(O, I)`` (bool): its :class:`EdgeMask`, or all ``True``."""
    masks = _masks(layer, "weight")
    if masks:
        return masks[0].mask.reshape(layer.out_features, layer.in_features) != 0
    return torch.ones(
        layer.out_features, layer.in_features, dtype=torch.bool, device=layer.weight.device
    )


def set_edge_mask(layer: nn.Module, keep: torch.Tensor, install: bool = False) -> None:
    """Keep exactly the edges ``keep (O, I)`` (bool) of a dense layer, cut the others.

    Updates the masks in place when the layer has them (parameters, optimizer state and
    DDP hooks are untouched), else registers an :class:`EdgeMask` on ``weight`` and
    ``base_weight``. An all-``True`` ``keep`` on an unmasked layer changes nothing unless
    ``install``: the ``Prune`` callback installs its masks before the optimizer is built,
    so the parameter order (optimizer state is saved by position) is the same on resume.
    """
    expected = (layer.out_features, layer.in_features)
    if tuple(keep.shape) != expected or keep.dtype != torch.bool:
        raise ValueError(
            f"set_edge_mask: keep must be a bool tensor of shape {expected} (out_features, "
            f"in_features) of the layer, got {keep.dtype} {tuple(keep.shape)}"
        )
    keep = keep.to(layer.weight.device)
    for name, trailing in (("weight", layer.weight.dim() - 2), ("base_weight", 0)):
        if getattr(layer, name, None) is None:
            continue
        masks = _masks(layer, name)
        if masks:
            masks[0].mask.copy_(keep.reshape(masks[0].mask.shape).to(masks[0].mask.dtype))
        elif install or not bool(keep.all()):
            parametrize.register_parametrization(layer, name, EdgeMask(keep, trailing))


def restore_edge_masks(layer: nn.Module, state_dict: dict, prefix: str) -> None:
    """Before ``layer`` loads ``state_dict``: install an (all-kept) :class:`EdgeMask` on
    each tensor the state dict holds a mask for, so the saved mask loads into it."""
    for name, trailing in (("weight", layer.weight.dim() - 2), ("base_weight", 0)):
        key = f"{prefix}parametrizations.{name}.0.mask"
        if key in state_dict and not _masks(layer, name) and getattr(layer, name) is not None:
            keep = torch.ones(layer.out_features, layer.in_features, dtype=torch.bool)
            parametrize.register_parametrization(layer, name, EdgeMask(keep, trailing))
