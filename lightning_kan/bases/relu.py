"""ReLU-KAN's basis: squared products of two shifted ReLUs, normalised to peak 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightning_kan.bases.base import _check_positive_int, _check_range, register_basis
from lightning_kan.bases.closed_form import ClosedFormBasis
from lightning_kan.native import NativeKernel

__all__ = ["ReLUKANBasis"]


@register_basis("relukan")
class ReLUKANBasis(ClosedFormBasis):
    """ReLU-KAN (Qiu et al. 2024): ``phi_i = (r relu(x - a_i) relu(b_i - x))^2``.

    With ``h = (high - low) / grid_size`` and ``k = order``: ``a_i = low + (i - k) h``,
    ``b_i = a_i + (k + 1) h`` (``i = 0 .. G + k - 1``, so K = grid_size + order) and
    ``r = 4 / ((k + 1) h)^2``, which makes each bump peak at 1 in the middle of its
    support ``[a_i, b_i]`` (a bell like a B-spline of order ``k``, but C^1 only).
    ``trainable=True`` trains the phases ``a``, ``b`` ``(I, K)`` (ReLU-KAN's ``train_ab``);
    ``r`` stays fixed. Zero outside ``[a_i, b_i]``, so any finite input is finite.
    """

    def __init__(
        self,
        in_features: int,
        grid_size: int = 5,
        order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        trainable: bool = False,
    ) -> None:
        super().__init__(in_features)
        _check_positive_int("grid_size", grid_size)
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be an integer >= 0, got {order!r}")
        low, high = _check_range("grid_range", grid_range)
        self.grid_size, self.order = grid_size, order
        self.num_functions = grid_size + order
        step = (high - low) / grid_size
        self.scale = 4.0 / ((order + 1) * step) ** 2  # ReLU-KAN's r
        lows = low + step * torch.arange(-order, grid_size, dtype=torch.float64)
        lows = lows.to(torch.get_default_dtype()).expand(in_features, -1).clone()
        highs = lows + (order + 1) * step
        if trainable:
            self.low, self.high = nn.Parameter(lows), nn.Parameter(highs)
        else:
            self.register_buffer("low", lows)
            self.register_buffer("high", highs)

    def _ramps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``relu(x - a)`` and ``relu(b - x)``: ``(..., I, K)`` each."""
        x = x.unsqueeze(-1)
        return torch.relu(x - self.low.to(x.dtype)), torch.relu(self.high.to(x.dtype) - x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rising, falling = self._ramps(x)
        return (rising * falling * self.scale).square()

    def native_kernel(self) -> NativeKernel | None:
        if not self.is_parameter_free:  # trained phases: plain autograd
            return None
        phases = torch.stack([self.low.t(), self.high.t()])  # (2, K, I): inputs innermost
        return NativeKernel("relu", (self.scale,), phases.flatten())

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        x = x.unsqueeze(-1)
        torch.sub(x, self.low.to(x.dtype), out=out).relu_()
        out.mul_((self.high.to(x.dtype) - x).relu_()).mul_(self.scale).square_()

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        # phi = r^2 u^2 v^2 with u = relu(x - a), v = relu(b - x); u' = [x > a],
        # v' = -[x < b] (autograd's relu'(0) = 0), u'' = v'' = 0
        rising, falling = self._ramps(x)
        x = x.unsqueeze(-1)
        d_rising = (x > self.low.to(x.dtype)).to(x.dtype)
        d_falling = -(x < self.high.to(x.dtype)).to(x.dtype)
        product = rising * falling
        slope = d_rising * falling + rising * d_falling
        r2 = self.scale**2
        result = [r2 * product.square(), 2 * r2 * product * slope]
        if order == 2:
            result.append(2 * r2 * (slope.square() + 2 * product * d_rising * d_falling))
        return tuple(result)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, grid_size={self.grid_size}, order={self.order}, "
            f"trainable={not self.is_parameter_free}"
        )
