"""FourierKAN's basis: ``cos(k x)`` and ``sin(k x)`` for ``k = 1 .. grid_size``."""

from __future__ import annotations

import torch

from lightning_kan.bases.base import _check_positive_int, register_basis
from lightning_kan.bases.closed_form import ClosedFormBasis
from lightning_kan.native import NativeKernel

__all__ = ["FourierBasis"]


@register_basis("fourierkan")
class FourierBasis(ClosedFormBasis):
    """Fourier features of the raw input (FourierKAN); K = 2 * grid_size.

    ``phi = [cos(x), cos(2x), .., cos(g x), sin(x), .., sin(g x)]`` (the cosines first,
    as FourierKAN's ``fouriercoeffs[0]``), ``g = grid_size``. Bounded at every finite
    input, with no squashing: each edge function is ``2 pi``-periodic in its input.
    Registered as ``fourierkan`` (``fourier`` is left to the README's user example).
    """

    def __init__(self, in_features: int, grid_size: int = 5) -> None:
        super().__init__(in_features)
        _check_positive_int("grid_size", grid_size)
        self.grid_size = grid_size
        self.num_functions = 2 * grid_size
        self.register_buffer("frequencies", torch.arange(1.0, grid_size + 1.0), persistent=False)

    def _angles(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.frequencies.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = self._angles(x)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)

    def native_kernel(self) -> NativeKernel:
        """The C kernel: one ``sincos`` per input, the harmonics by angle addition (the
        exact ``cos(k x)`` of the float32 ``x``; the eager path first rounds ``k x``)."""
        return NativeKernel("fourier", (self.grid_size,))

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        # cos/sin into contiguous temporaries (chunk-sized: the layer passes row chunks),
        # then copied: written straight into the strided halves of ``out`` they run
        # without vectorisation, about 9x slower on CPU
        angles = self._angles(x)
        out[..., : self.grid_size] = angles.cos()
        out[..., self.grid_size :] = angles.sin_()

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        angles = self._angles(x)
        cos, sin = angles.cos(), angles.sin()
        k = self.frequencies.to(x.dtype)
        result = [torch.cat([cos, sin], -1), torch.cat([-k * sin, k * cos], -1)]
        if order == 2:
            result.append(torch.cat([k, k], -1).square().neg() * result[0])
        return tuple(result)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, grid_size={self.grid_size}"
