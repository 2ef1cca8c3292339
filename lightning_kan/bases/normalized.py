"""A basis evaluated on LayerNorm-ed inputs: FastKAN's spline branch."""

from __future__ import annotations

import torch
from torch import nn

from lightning_kan.bases.base import Basis

__all__ = ["InputNormBasis"]


class InputNormBasis(Basis):
    """``phi(LayerNorm(x))``: the wrapped family on the LayerNorm of the layer's input.

    FastKAN normalises the input of every layer's spline branch (the first layer's
    included) while its base branch ``b(x)`` sees the raw input; wrapping the basis
    gives exactly that without a second input path through the layer. The LayerNorm
    ``(I,)`` is trained with the layer; since it mixes a sample's features, the edge
    functions are not elementwise. ``KAN(norm="fastkan")`` builds one per layer.
    """

    elementwise = False

    def __init__(self, basis: Basis, eps: float = 1e-5) -> None:
        if basis.in_features is None:
            raise ValueError(
                f"InputNormBasis needs a basis built for a known in_features (the LayerNorm's "
                f"width), got {type(basis).__name__} with in_features=None"
            )
        super().__init__(basis.in_features)
        self.basis = basis
        self.norm = nn.LayerNorm(basis.in_features, eps=eps)
        self.num_functions = basis.num_functions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basis(self.norm(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_functions={self.num_functions}"
