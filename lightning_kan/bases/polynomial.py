"""Orthogonal-polynomial bases: Chebyshev (ChebyKAN), Legendre (KALN), Gram (KAGN).

Polynomials live on ``[-1, 1]``, so each family first squashes its input there:
``tanh`` (elementwise), or a per-sample min-max rescaling over the feature axis
(KALN's normalisation done per sample: the original normalised over the whole batch,
which makes a sample's output depend on the rest of its batch). Every family is
evaluated by its three-term recurrence, which has no singularity at ``|x| -> 1``
(unlike ``cos(n * acos(x))``, whose gradient is NaN there).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import torch

from lightning_kan.bases.base import Basis, register_basis

__all__ = ["MAX_DEGREE", "ChebyshevBasis", "GramBasis", "LegendreBasis"]

MAX_DEGREE = 32
Normalization = Literal["tanh", "minmax"]
_MINMAX_EPS = 1e-6


def _check_degree(degree: object) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be an integer in [1, {MAX_DEGREE}], got {degree!r}")
    return degree


def _squash(x: torch.Tensor, normalization: str) -> torch.Tensor:
    """Map ``x (..., I)`` into ``[-1, 1]``: elementwise tanh or per-sample min-max."""
    if normalization == "tanh":
        return torch.tanh(x)
    low = x.amin(dim=-1, keepdim=True)
    high = x.amax(dim=-1, keepdim=True)
    return 2.0 * (x - low) / (high - low + _MINMAX_EPS) - 1.0


def _check_normalization(normalization: str, in_features: int) -> str:
    if normalization not in ("tanh", "minmax"):
        raise ValueError(f"normalization must be 'tanh' or 'minmax', got {normalization!r}")
    if normalization == "minmax" and in_features < 2:
        raise ValueError(
            f"normalization='minmax' rescales each sample over its {in_features} feature(s); "
            "it needs in_features >= 2 (use normalization='tanh' for a single input)"
        )
    return normalization


class _ThreeTermBasis(Basis):
    """Polynomials ``p_0 .. p_d`` of the squashed input from a three-term recurrence."""

    def __init__(self, in_features: int, degree: int, normalization: str) -> None:
        super().__init__(in_features)
        self.degree = _check_degree(degree)
        self.normalization = _check_normalization(normalization, in_features)
        self.num_functions = degree + 1

    def _recurrence(self, s: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self._recurrence(_squash(x, self.normalization)), dim=-1)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, degree={self.degree}, "
            f"normalization={self.normalization!r}"
        )


@register_basis("chebyshev")
class ChebyshevBasis(_ThreeTermBasis):
    """Chebyshev polynomials ``T_n(tanh x)``, ``n = 0..degree`` (ChebyKAN); K = degree + 1.

    ``T_0 = 1``, ``T_1 = s``, ``T_{n+1} = 2 s T_n - T_{n-1}``.
    """

    def __init__(self, in_features: int, degree: int = 7, normalization: Normalization = "tanh"):
        super().__init__(in_features, degree, normalization)

    def _recurrence(self, s: torch.Tensor) -> list[torch.Tensor]:
        terms = [torch.ones_like(s), s]
        for _ in range(2, self.degree + 1):
            terms.append(2.0 * s * terms[-1] - terms[-2])
        return terms


@register_basis("legendre")
class LegendreBasis(_ThreeTermBasis):
    """Legendre polynomials ``P_n`` (KALN); K = degree + 1.

    ``(n + 1) P_{n+1} = (2n + 1) s P_n - n P_{n-1}``. The default normalisation is
    KALN's min-max rescaling, done per sample over the feature axis.
    """

    def __init__(self, in_features: int, degree: int = 7, normalization: Normalization = "minmax"):
        super().__init__(in_features, degree, normalization)

    def _recurrence(self, s: torch.Tensor) -> list[torch.Tensor]:
        terms = [torch.ones_like(s), s]
        for n in range(1, self.degree):
            terms.append(((2 * n + 1) * s * terms[-1] - n * terms[-2]) / (n + 1))
        return terms


@register_basis("gram")
class GramBasis(_ThreeTermBasis):
    """Discrete Gram polynomials (KAGN), orthogonal on ``num_points`` equispaced points.

    Monic recurrence on ``[-1, 1]``: ``p_{n+1} = s p_n - beta_n p_{n-1}`` with
    ``beta_n = n^2 (N^2 - n^2) / ((4n^2 - 1)(N - 1)^2)`` (N = ``num_points``; as N grows
    these tend to the monic Legendre polynomials). Each ``p_n`` is divided by its RMS on
    the N points so all K functions have unit scale. K = degree + 1; needs
    ``num_points > degree``.
    """

    def __init__(
        self,
        in_features: int,
        degree: int = 7,
        num_points: int = 32,
        normalization: Normalization = "tanh",
    ):
        super().__init__(in_features, degree, normalization)
        if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points <= degree:
            raise ValueError(
                f"num_points must be an integer > degree ({degree}), got {num_points!r}"
            )
        self.num_points = num_points

    def _recurrence(self, s: torch.Tensor) -> list[torch.Tensor]:
        beta, scale = _gram_constants(self.degree, self.num_points, s.dtype, s.device)
        return [term * scale[n] for n, term in enumerate(_monic_gram(s, beta))]


@cache
def _gram_constants(
    degree: int, num_points: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Recurrence coefficients ``beta_n`` and ``1 / RMS(p_n)`` on the N points.

    Computed in float64 and cached per dtype and device (buffers would be rounded by
    ``module.float()`` and lose the orthogonality the family is chosen for).
    """
    n = torch.arange(1, degree, dtype=torch.float64)
    beta = n**2 * (num_points**2 - n**2) / ((4 * n**2 - 1) * (num_points - 1) ** 2)
    points = torch.linspace(-1.0, 1.0, num_points, dtype=torch.float64)
    rms = torch.stack(_monic_gram(points, beta), dim=-1).pow(2).mean(0).sqrt()
    return beta.to(dtype=dtype, device=device), (1.0 / rms).to(dtype=dtype, device=device)


def _monic_gram(s: torch.Tensor, beta: torch.Tensor) -> list[torch.Tensor]:
    """Monic Gram polynomials ``p_0 .. p_{len(beta)+1}`` at ``s``."""
    terms = [torch.ones_like(s), s]
    for n in range(1, beta.shape[0] + 1):
        terms.append(s * terms[-1] - beta[n - 1] * terms[-2])
    return terms
