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

from lightning_kan.bases.base import _check_positive_int, _check_range, register_basis
from lightning_kan.bases.closed_form import ClosedFormBasis
from lightning_kan.bases.gaussian import (
    EXPONENT_MAX,
    FLUSH,
    even_spacing,
    gaussian,
    gaussian_,
    gaussian_windows,
)
from lightning_kan.native import NativeKernel

__all__ = ["GaussianRBFBasis", "RSWAFBasis"]


class _CenteredBasis(ClosedFormBasis):
    """Shared set-up: ``num_centers`` centres ``(K,)`` evenly on ``grid_range`` and a width
    ``h`` (``width``; default: the centre spacing).

    Subclasses give the profile ``f(z)`` of the scaled distance ``z = (x - u_k) / h``
    twice: :meth:`_profile` (differentiable, with its derivatives) and
    :meth:`_profile_` (in place on the layer's buffer, for :meth:`expand_into`).
    """

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

    def _inverse_width(self) -> float | torch.Tensor:
        """``1 / h``: a float, or a trained scalar (RSWAF's ``inv_denominator``)."""
        return 1.0 / self.width

    def _scaled_distance(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(-1) - self.centers.to(x.dtype)) * self._inverse_width()

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """``z`` written into ``out``, then the profile in place: no ``(..., I, K)``
        temporaries (the generic path would allocate one per operation)."""
        torch.sub(x.unsqueeze(-1), self.centers.to(x.dtype), out=out)
        self._profile_(out.mul_(self._inverse_width()))

    def _distance_slope(self, x: torch.Tensor) -> torch.Tensor:
        """``dz/dx (I or 1, K)`` of the affine :meth:`_scaled_distance` ``z``, read from ``z``
        itself (so it follows whatever scale the family trains), differentiable in it."""
        unit = x.new_ones(x.shape[-1:])
        return self._scaled_distance(unit) - self._scaled_distance(torch.zeros_like(unit))

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``(phi, phi'[, phi''])``, each ``(..., I, K)``, in closed form from the profile
        ``f(z)`` and its derivatives (:meth:`_profile`) and the chain rule through ``z``."""
        slope = self._distance_slope(x)
        profile = self._profile(self._scaled_distance(x), order)
        if order == 1:
            return profile[0], profile[1] * slope
        return profile[0], profile[1] * slope, profile[2] * slope * slope

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_centers={self.num_functions}, "
            f"width={self.width:.4g}"
        )


@register_basis("rbf")
class GaussianRBFBasis(_CenteredBasis):
    """FastKAN's Gaussian RBF ``exp(-((x - u_i) / h)^2)``; 8 centres on [-2, 2] by default."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian(self._scaled_distance(x).square())

    def native_kernel(self) -> NativeKernel:
        """The C kernel, with :mod:`~lightning_kan.bases.gaussian`'s clamp and flush; by
        windows where the centres allow (:func:`~lightning_kan.bases.gaussian.gaussian_windows`)."""
        inverse_width = 1.0 / self.width
        windows = gaussian_windows(self.centers, inverse_width)
        if windows is None:
            params = (inverse_width, EXPONENT_MAX, FLUSH, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            return NativeKernel("rbf", params, self.centers)
        table, layout = windows
        return NativeKernel("rbf", (inverse_width, EXPONENT_MAX, FLUSH, 1.0, *layout), table)

    @staticmethod
    def _profile(z: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``e^{-z^2}``, ``-2 z e^{-z^2}`` and, for ``order`` 2, ``(4 z^2 - 2) e^{-z^2}``,
        with far centres' tails flushed to zero (:mod:`~lightning_kan.bases.gaussian`:
        subnormal tails made the layer 61x the floor at 512 x 64 -> 64, K = 23)."""
        value = gaussian(z.square())
        first = -2 * z * value
        return (value, first) if order == 1 else (value, first, (4 * z.square() - 2) * value)

    @staticmethod
    def _profile_(z: torch.Tensor) -> None:
        gaussian_(z.square_())


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

    def _inverse_width(self) -> float | torch.Tensor:
        if "inv_denominator" not in self._parameters:
            return super()._inverse_width()
        return self.inv_denominator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(self._scaled_distance(x)).square()

    def native_kernel(self) -> NativeKernel | None:
        if "inv_denominator" in self._parameters:  # a trained width: plain autograd
            return None
        # the kernel evaluates sech^2 z = 4 e^{-2|z|} / (1 + e^{-2|z|})^2, no tanh; with
        # shared exponentials where the centres allow (_shared_exponentials)
        inverse_width = 1.0 / self.width
        shared = _shared_exponentials(self.centers, inverse_width)
        if shared is None:
            params = (inverse_width, EXPONENT_MAX, FLUSH, 0.0, 0.0, 0.0, 0.0)
            return NativeKernel("rswaf", params, self.centers)
        table, bounds = shared
        return NativeKernel("rswaf", (inverse_width, EXPONENT_MAX, FLUSH, 1.0, *bounds), table)

    @staticmethod
    def _profile(z: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``1 - T^2``, ``-2 T (1 - T^2)`` and, for ``order`` 2, ``-2 (1 - T^2)(1 - 3 T^2)``
        with ``T = tanh z``."""
        t = torch.tanh(z)
        value = 1.0 - t.square()
        first = -2 * t * value
        return (value, first) if order == 1 else (value, first, -2 * value * (1 - 3 * t.square()))

    @staticmethod
    def _profile_(z: torch.Tensor) -> None:
        z.tanh_().square_().neg_().add_(1.0)


#: the fewest centres for :func:`_shared_exponentials`: the kernel's expansion at 512 x 64,
#: two threads, was 5% slower with it at K = 8, even at 10 and 13-24% faster at 12-16
#: (30% at 23); its per-input lookups and exps outweigh the exps saved below that
_SHARED_MIN_FUNCTIONS = 12
#: the most ``2 w |u_n|`` may be for :func:`_shared_exponentials`: ``e^{+-40}`` and the
#: per-input factors (up to ``e^{46}``) multiply within float32's range
_SHARED_EXPONENT_MAX = 40.0
#: inputs this far past the outer centres, in units of ``1 / (2 w)``, give ``e^{-2|z|}``
#: under ``FLUSH`` (``e^{-44.4}``) for every centre; the kernel clamps there
_CLAMP_EXPONENT = 46.0


def _shared_exponentials(
    centers: torch.Tensor, inverse_width: float
) -> tuple[torch.Tensor, tuple[float, float, float]] | None:
    """The RSWAF kernel's shared-exponential table, or ``None`` (one exp per value).

    ``e^{-2w|x - u_n|}`` is ``min(e^{-f} F_j E_n, e^{f} E_j F_n)`` with ``f = 2w (x - u_j)``,
    ``E_n = e^{2w u_n}`` and ``F_n = e^{-2w u_n}``: two exps per input instead of K (the
    exp is most of the kernel's work). Needs evenly spaced centres (the kernel finds the
    nearest one ``j`` from the spacing) with ``2 w |u_n| <= 40``, and at least
    :data:`_SHARED_MIN_FUNCTIONS` of them. Returns the float32
    table ``[u (K), E (K), F (K)]`` (from the centres in float64) and ``(lo, hi, 1 /
    spacing)``: the kernel clamps ``x`` to ``[lo, hi]``, past which every value is
    flushed.
    """
    u = centers.detach().double().cpu()
    if u.numel() < _SHARED_MIN_FUNCTIONS:
        return None
    spacing = even_spacing(u)
    if spacing is None or 2.0 * inverse_width * float(u.abs().max()) > _SHARED_EXPONENT_MAX:
        return None
    rising = torch.exp(2.0 * inverse_width * u)
    table = torch.cat([u, rising, 1.0 / rising]).to(torch.float32)
    margin = _CLAMP_EXPONENT / (2.0 * inverse_width)
    return table, (float(u[0]) - margin, float(u[-1]) + margin, 1.0 / spacing)
