"""``MLP``: the baseline every KAN result is compared with, same width conventions as KAN."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lightning_kan.layers.base import check_input_tensor
from lightning_kan.layers.jet import Jet
from lightning_kan.nets.kan import resolve_widths
from lightning_kan.utils import count_parameters

__all__ = ["MLP"]

_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``Linear -> activation`` blocks over ``widths`` (input first), a linear output.

    ``in_features``/``out_features`` behave as in :class:`~lightning_kan.nets.KAN`: when
    given, ``widths`` lists the hidden widths only (the CLI links them from the data).
    Shapes: ``(..., widths[0]) -> (..., widths[-1])``.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str = "silu",
        in_features: int | None = None,
        out_features: int | None = None,
    ) -> None:
        super().__init__()
        widths = resolve_widths(widths, in_features, out_features)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(fan_in, fan_out))
            if index < len(widths) - 2:
                layers.append(_ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)
        self.widths = widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_tensor(x, type(self).__name__)
        return self.layers(x)

    def forward_jet(self, jet: Jet, propagate: Callable[[nn.Module, Jet], Jet]) -> Jet:
        """:meth:`forward` on a :class:`~lightning_kan.layers.jet.Jet` (value, input
        gradient, second derivatives), through the linear layers and activations."""
        check_input_tensor(jet.value, type(self).__name__)
        return propagate(self.layers, jet)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return count_parameters(self, trainable_only)
