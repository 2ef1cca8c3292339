"""WavKAN's bases: Mexican hat, Morlet and derivative-of-Gaussian wavelets with trainable
scales and translations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from lightning_kan.bases.base import (
    _check_positive_int,
    _check_range,
    is_finite_number,
    register_basis,
)
from lightning_kan.bases.closed_form import ClosedFormBasis
from lightning_kan.bases.gaussian import EXPONENT_MAX, FLUSH, gaussian, gaussian_
from lightning_kan.native import NativeKernel

__all__ = ["MORLET_FREQUENCY", "WAVELETS", "WaveletBasis"]

Wavelet = Literal["mexican_hat", "morlet", "dog"]
WAVELETS = ("mexican_hat", "morlet", "dog")
#: WavKAN's Morlet central frequency omega_0
MORLET_FREQUENCY = 5.0
#: ``|t|`` is clamped here, far past where the Gaussian factor is flushed to zero
#: (``|t| > 9.4``, :mod:`~lightning_kan.bases.gaussian`), so the values are unchanged and
#: polynomials in ``t`` cannot overflow at any finite input
_T_MAX = 40.0
_MEXICAN_HAT_NORM = 2.0 / (math.sqrt(3.0) * math.pi**0.25)


def wavelet_derivatives(t: torch.Tensor, wavelet: str, order: int) -> list[torch.Tensor]:
    """``psi(t)`` and its first ``order`` derivatives in ``t`` (closed forms, ``g = e^(-t^2/2)``).

    * ``mexican_hat``: ``c (1 - t^2) g``, ``c (t^3 - 3t) g``, ``c (-t^4 + 6t^2 - 3) g``;
    * ``morlet``: ``cos(w t) g``, ``-(w sin(w t) + t cos(w t)) g``,
      ``((t^2 - 1 - w^2) cos(w t) + 2 w t sin(w t)) g``;
    * ``dog``: ``-t g``, ``(t^2 - 1) g``, ``(3t - t^3) g``.
    """
    t2 = t * t
    gauss = gaussian(0.5 * t2)
    if wavelet == "mexican_hat":
        c = _MEXICAN_HAT_NORM
        terms = [lambda: c * (1 - t2), lambda: c * t * (t2 - 3), lambda: c * ((6 - t2) * t2 - 3)]
    elif wavelet == "dog":
        terms = [lambda: -t, lambda: t2 - 1, lambda: t * (3 - t2)]
    else:
        w = MORLET_FREQUENCY
        cos, sin = torch.cos(w * t), torch.sin(w * t)
        terms = [
            lambda: cos,
            lambda: -(w * sin + t * cos),
            lambda: (t2 - 1 - w * w) * cos + 2 * w * t * sin,
        ]
    # only the orders asked for are computed (the backward needs psi' alone)
    return [term() * gauss for term in terms[: order + 1]]


@register_basis("wavelet")
class WaveletBasis(ClosedFormBasis):
    """``psi((x_i - t_ik) / s_ik)``, ``k = 0 .. num_wavelets - 1`` (WavKAN); K = num_wavelets.

    ``psi``: ``"mexican_hat"`` (the Ricker wavelet, ``2 / (sqrt(3) pi^(1/4)) (1 - t^2)
    e^(-t^2/2)``; WavKAN writes its negative, which the coefficients absorb), ``"morlet"``
    (``cos(5 t) e^(-t^2/2)``) or ``"dog"`` (derivative of Gaussian, ``-t e^(-t^2/2)``).

    WavKAN trains one scale and translation per edge ``(out, in)``. A basis has no
    output mode (the layer's coefficients ``(O, I, K)`` carry it), so here each input
    has ``K`` wavelets with their own trainable scale and translation ``(I, K)``, mixed
    per edge by the coefficients: edge ``(o, i)`` is ``sum_k C_oik psi((x_i - t_ik) / s_ik)``.
    ``num_wavelets=1`` with ``scale=1`` is WavKAN's edge with its scale and translation
    shared by the edges leaving input ``i``. The translations start evenly on
    ``grid_range`` (its midpoint for one wavelet) and the scales at ``scale`` (default:
    the spacing, or 1 for one wavelet). Scales are stored as ``log_scale``, so they stay
    positive. ``trainable=True`` trains both, as WavKAN does (the layer then uses plain
    autograd); the default keeps them fixed, so the layer fuses the expansion.
    """

    def __init__(
        self,
        in_features: int,
        wavelet: Wavelet = "mexican_hat",
        num_wavelets: int = 8,
        grid_range: Sequence[float] = (-2.0, 2.0),
        scale: float | None = None,
        trainable: bool = False,
    ) -> None:
        super().__init__(in_features)
        if wavelet not in WAVELETS:
            raise ValueError(
                f"wavelet must be one of {list(WAVELETS)}, got {wavelet!r} (WavKAN's "
                "'meyer' and 'shannon' are not provided)"
            )
        _check_positive_int("num_wavelets", num_wavelets)
        low, high = _check_range("grid_range", grid_range)
        if num_wavelets == 1:
            centers = torch.tensor([(low + high) / 2])
            default_scale = 1.0
        else:
            centers = torch.linspace(low, high, num_wavelets)
            default_scale = (high - low) / (num_wavelets - 1)
        scale = default_scale if scale is None else scale
        if not is_finite_number(scale) or not scale > 0:
            raise ValueError(
                f"scale must be a positive finite number (or None: the translations' "
                f"spacing), got {scale!r}"
            )
        self.wavelet = wavelet
        self.num_functions = num_wavelets
        translation = centers.expand(in_features, -1).clone()
        log_scale = torch.full((in_features, num_wavelets), math.log(scale))
        if trainable:
            self.translation, self.log_scale = nn.Parameter(translation), nn.Parameter(log_scale)
        else:
            self.register_buffer("translation", translation)
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> torch.Tensor:
        """The scales ``s (I, K)``."""
        return self.log_scale.exp()

    def _argument(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``t = (x - translation) / scale`` ``(..., I, K)``, clamped to ``+-40``, and
        ``1 / scale`` ``(I, K)``."""
        inverse = torch.exp(-self.log_scale.to(x.dtype))
        t = (x.unsqueeze(-1) - self.translation.to(x.dtype)) * inverse
        return t.clamp(-_T_MAX, _T_MAX), inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wavelet_derivatives(self._argument(x)[0], self.wavelet, 0)[0]

    def native_kernel(self) -> NativeKernel | None:
        if not self.is_parameter_free:  # trained scales and translations: plain autograd
            return None
        constants = (
            WAVELETS.index(self.wavelet), _T_MAX, MORLET_FREQUENCY, _MEXICAN_HAT_NORM,
            EXPONENT_MAX, FLUSH,
        )  # fmt: skip
        inverse = torch.exp(-self.log_scale.float())
        table = torch.stack([self.translation.t(), inverse.t()])  # (2, K, I): inputs innermost
        return NativeKernel("wavelet", constants, table.flatten())

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """``psi(t)`` in place on ``t`` written into ``out``: one ``(..., I, K)`` temporary
        (the Gaussian) instead of one per operation of :meth:`forward`."""
        t = torch.sub(x.unsqueeze(-1), self.translation.to(x.dtype), out=out)
        t.mul_(torch.exp(-self.log_scale.to(x.dtype))).clamp_(-_T_MAX, _T_MAX)
        gauss = gaussian_(torch.mul(t, t).mul_(0.5))
        if self.wavelet == "mexican_hat":  # c (1 - t^2) g
            t.square_().neg_().add_(1.0).mul_(gauss).mul_(_MEXICAN_HAT_NORM)
        elif self.wavelet == "dog":  # -t g
            t.mul_(gauss).neg_()
        else:  # morlet: cos(w t) g
            t.mul_(MORLET_FREQUENCY).cos_().mul_(gauss)

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        t, inverse = self._argument(x)
        in_t = wavelet_derivatives(t, self.wavelet, order)
        # chain rule with dt/dx = 1 / scale per (i, k): scale each derivative directly
        return tuple(term * inverse**m for m, term in enumerate(in_t))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, wavelet={self.wavelet!r}, "
            f"num_wavelets={self.num_functions}, trainable={not self.is_parameter_free}"
        )
