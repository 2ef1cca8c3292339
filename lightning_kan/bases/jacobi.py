"""KAJN's basis: Jacobi polynomials ``P_n^(alpha, beta)`` of ``tanh(x)``."""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

from lightning_kan.bases.base import is_finite_number, register_basis
from lightning_kan.bases.closed_form import ClosedFormBasis, chain_rule
from lightning_kan.bases.polynomial import _check_degree, _squash, three_term_kernel
from lightning_kan.native import NativeKernel

__all__ = ["JacobiBasis"]

Step = tuple[float, float, float]


@cache
def jacobi_steps(degree: int, alpha: float, beta: float) -> tuple[float, float, list[Step]]:
    """``P_1 = c1 s + c0`` and, for ``n = 2 .. degree``, ``(A_n, B_n, C_n)`` with
    ``P_n = (A_n s + B_n) P_{n-1} - C_n P_{n-2}`` (the standard three-term recurrence;
    Python floats, so export and ``module.float()`` see constants)."""
    a, b = alpha, beta
    steps = []
    for n in range(2, degree + 1):
        total = 2 * n + a + b
        denominator = 2 * n * (n + a + b) * (total - 2)
        steps.append(
            (
                (total - 1) * total * (total - 2) / denominator,
                (total - 1) * (a * a - b * b) / denominator,
                2 * (n + a - 1) * (n + b - 1) * total / denominator,
            )
        )
    return (a + b + 2) / 2, (a - b) / 2, steps


def jacobi(s: torch.Tensor, degree: int, alpha: float, beta: float) -> torch.Tensor:
    """``P_0 .. P_degree`` of ``s``: ``(..., I) -> (..., I, degree + 1)`` (a loop over degree)."""
    c1, c0, steps = jacobi_steps(degree, alpha, beta)
    terms = [torch.ones_like(s)]
    if degree >= 1:
        terms.append(c1 * s + c0)
    for a_n, b_n, c_n in steps:
        terms.append((a_n * s + b_n) * terms[-1] - c_n * terms[-2])
    return torch.stack(terms, -1)


@register_basis("jacobi")
class JacobiBasis(ClosedFormBasis):
    """Jacobi polynomials ``P_n^(alpha, beta)(tanh x)``, ``n = 0 .. degree`` (KAJN); K = degree + 1.

    Orthogonal on ``[-1, 1]`` for the weight ``(1 - s)^alpha (1 + s)^beta`` (needs
    ``alpha, beta > -1``); ``alpha = beta = 0`` is Legendre, ``-1/2`` Chebyshev (up to a
    scale per degree). ``d/ds P_n^(a,b) = (n + a + b + 1) / 2 P_{n-1}^(a+1,b+1)``, so
    both input derivatives are Jacobi polynomials of shifted parameters.
    """

    def __init__(
        self, in_features: int, degree: int = 7, alpha: float = 1.0, beta: float = 1.0
    ) -> None:
        super().__init__(in_features)
        self.degree = _check_degree(degree)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not is_finite_number(value) or not value > -1:
                raise ValueError(
                    f"{name} must be a finite number > -1 (the Jacobi weight (1 - s)^alpha "
                    f"(1 + s)^beta must be integrable), got {value!r}; KAJN uses 1.0"
                )
        self.alpha, self.beta = float(alpha), float(beta)
        self.num_functions = degree + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return jacobi(_squash(x, "tanh"), self.degree, self.alpha, self.beta)

    def native_kernel(self) -> NativeKernel:
        c1, c0, steps = jacobi_steps(self.degree, self.alpha, self.beta)
        return three_term_kernel(c1, c0, steps, [1.0] * self.num_functions)

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        # on a contiguous (K, ..., I) temporary (chunk-sized: the layer passes row chunks),
        # copied into ``out`` once: the stride-K columns of ``out`` are slow to write
        s = _squash(x, "tanh")
        c1, c0, steps = jacobi_steps(self.degree, self.alpha, self.beta)
        terms = s.new_empty(self.num_functions, *s.shape)
        terms[0].fill_(1.0)
        torch.mul(s, c1, out=terms[1]).add_(c0)
        for n, (a_n, b_n, c_n) in enumerate(steps, start=2):
            following = terms[n]
            torch.mul(s, a_n, out=following).add_(b_n).mul_(terms[n - 1])
            following.sub_(terms[n - 2], alpha=c_n)
        out.copy_(terms.movedim(0, -1))

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        s = _squash(x, "tanh")
        a, b, n = self.alpha, self.beta, self.degree
        degrees = torch.arange(n + 1, dtype=s.dtype, device=s.device)
        in_s = [jacobi(s, n, a, b)]
        for m in range(1, order + 1):  # d^m/ds^m P_n = prod_j (n+a+b+j)/2 P_{n-m}^(a+m,b+m)
            if n >= m:
                shifted = F.pad(jacobi(s, n - m, a + m, b + m), (m, 0))
            else:
                shifted = torch.zeros_like(in_s[0])
            factor = torch.ones_like(degrees)
            for j in range(1, m + 1):
                factor = factor * (degrees + a + b + j) / 2
            in_s.append(shifted * factor)
        slope = 1 - s * s  # tanh' ; tanh'' = -2 s (1 - s^2)
        return chain_rule(tuple(in_s), slope, -2 * s * slope if order == 2 else None)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, degree={self.degree}, alpha={self.alpha}, "
            f"beta={self.beta}"
        )
