"""Radial bases on fixed centres: Gaussian RBF (FastKAN) and RSWAF (FasterKAN).

Both place ``num_centers`` centres ``u_i`` uniformly on ``grid_range`` with width
``h`` (default: the centre spacing) and are parameter-free, so layers can evaluate
them without storing autograd intermediates. FastKAN pairs the RBF with a LayerNorm on
each layer's input so activations stay on the grid: use ``KAN(..., norm="layer")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightning_kan.bases.base import Basis, _check_positive_int, _check_range, register_basis

__all__ = ["GaussianRBFBasis", "RSWAFBasis"]


class _CenteredBasis(Basis):
    """Shared set-up: ``num_centers`` centres ``(K,)`` evenly on ``grid_range`` and a width
    ``h`` (``width``; default: the centre spacing)."""

    def __init__(
        self,
        in_features: int,
        num_centers: int = 8,
        grid_range: Sequence[float] = (-2.0, 2.0),
        width: float | None = None,
    ) -> None:
        super().__init__(in_features)
        _check_positive_int("num_centers", num_centers)
        low, high = _check_range("grid_range", grid_range)
        if num_centers == 1 and width is None:
            raise ValueError("num_centers=1 needs an explicit width (there is no spacing)")
        spacing = (high - low) / max(num_centers - 1, 1)
        width = spacing if width is None else float(width)
        if not width > 0:
            raise ValueError(f"width must be positive, got {width!r}")
        self.num_functions = num_centers
        self.width = width
        self.register_buffer("centers", torch.linspace(low, high, num_centers))

    def _scaled_distance(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(-1) - self.centers.to(x.dtype)) / self.width

    def _distance_slope(self, x: torch.Tensor) -> torch.Tensor:
        """``dz/dx (I or 1, K)`` of the affine :meth:`_scaled_distance` ``z``, read from ``z``
        itself (so it follows whatever scale the family trains), differentiable in it."""
        unit = x.new_ones(x.shape[-1:])
        return self._scaled_distance(unit) - self._scaled_distance(torch.zeros_like(unit))

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``(phi, phi'[, phi''])``, each ``(..., I, K)``, in closed form from the profile
        ``f(z)`` and its derivatives (:meth:`_profile`) and the chain rule through ``z``."""
        slope = self._distance_slope(x)
        value, first, second = self._profile(self._scaled_distance(x))
        if order == 1:
            return value, first * slope
        return value, first * slope, second * slope * slope

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_centers={self.num_functions}, "
            f"width={self.width:.4g}"
        )


@register_basis("rbf")
class GaussianRBFBasis(_CenteredBasis):
    """FastKAN's Gaussian RBF ``exp(-((x - u_i) / h)^2)``; 8 centres on [-2, 2] by default."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self._scaled_distance(x).square())

    @staticmethod
    def _profile(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``e^{-z^2}``, ``-2 z e^{-z^2}``, ``(4 z^2 - 2) e^{-z^2}``."""
        value = torch.exp(-z.square())
        return value, -2 * z * value, (4 * z.square() - 2) * value


@register_basis("rswaf")
class RSWAFBasis(_CenteredBasis):
    """FasterKAN's reflectional switch ``1 - tanh((x - u_i) / h)^2``; 8 centres on [-2, 2].

    Unlike the reference implementation, ``h`` is applied inside the forward.
    ``trainable_width=True`` trains ``inv_denominator = 1 / h`` (one scalar per layer,
    FasterKAN's ``inv_denominator``), started at ``1 / width``.
    """

    def __init__(
        self,
        in_features: int,
        num_centers: int = 8,
        grid_range: Sequence[float] = (-2.0, 2.0),
        width: float | None = None,
        trainable_width: bool = False,
    ) -> None:
        super().__init__(in_features, num_centers, grid_range, width)
        if trainable_width:  # FasterKAN's trained inverse width, a scalar started at 1 / h
            self.inv_denominator = nn.Parameter(torch.tensor(1.0 / self.width))

    def _scaled_distance(self, x: torch.Tensor) -> torch.Tensor:
        if "inv_denominator" not in self._parameters:
            return super()._scaled_distance(x)
        return (x.unsqueeze(-1) - self.centers.to(x.dtype)) * self.inv_denominator.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(self._scaled_distance(x)).square()

    @staticmethod
    def _profile(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``1 - T^2``, ``-2 T (1 - T^2)``, ``-2 (1 - T^2)(1 - 3 T^2)`` with ``T = tanh z``."""
        t = torch.tanh(z)
        value = 1.0 - t.square()
        return value, -2 * t * value, -2 * value * (1 - 3 * t.square())
