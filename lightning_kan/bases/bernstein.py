"""KABN's basis: Bernstein polynomials of ``sigmoid(x)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lightning_kan.bases.base import register_basis
from lightning_kan.bases.closed_form import ClosedFormBasis, chain_rule
from lightning_kan.bases.polynomial import _check_degree
from lightning_kan.native import NativeKernel

__all__ = ["BernsteinBasis"]


def bernstein(s: torch.Tensor, q: torch.Tensor, degree: int) -> torch.Tensor:
    """``C(n, k) s^k q^(n-k)`` for ``k = 0 .. n`` (``q = 1 - s``): ``(..., I) -> (..., I, n+1)``.

    Built from running powers (a loop over the degree), so ``s = 0`` or ``q = 0`` gives
    exact zeros and finite gradients (no ``0 ** 0`` or ``log``).
    """
    ones = torch.ones_like(s)
    rising, falling = [ones], [ones]
    for _ in range(degree):
        rising.append(rising[-1] * s)
        falling.append(falling[-1] * q)
    binomials = torch.tensor([math.comb(degree, k) for k in range(degree + 1)], dtype=s.dtype)
    return torch.stack(rising, -1) * torch.stack(falling[::-1], -1) * binomials.to(s.device)


@register_basis("bernstein")
class BernsteinBasis(ClosedFormBasis):
    """Bernstein polynomials ``B_{k,n}(s) = C(n, k) s^k (1 - s)^(n-k)`` of ``s = sigmoid(x)``
    (KABN); K = degree + 1.

    They are non-negative and sum to 1 at every input (a partition of unity on
    ``[0, 1]``); ``1 - s`` is computed as ``sigmoid(-x)``, exact for large ``x``.
    ``B'_{k,n} = n (B_{k-1,n-1} - B_{k,n-1})``, so both input derivatives are Bernstein
    polynomials of lower degree times ``s' = s (1 - s)``.
    """

    def __init__(self, in_features: int, degree: int = 7) -> None:
        super().__init__(in_features)
        self.degree = _check_degree(degree)
        self.num_functions = degree + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bernstein(torch.sigmoid(x), torch.sigmoid(-x), self.degree)

    def native_kernel(self) -> NativeKernel:
        n = self.degree
        binomials = [math.comb(n, k) for k in range(n + 1)] + [
            math.comb(n - 1, m) for m in range(n)
        ]
        return NativeKernel("bernstein", (n, *map(float, binomials)))

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        # on a contiguous (K, ..., I) temporary (chunk-sized: the layer passes row chunks),
        # copied into ``out`` once: the stride-K columns of ``out`` are slow to write
        s, q = torch.sigmoid(x), torch.sigmoid(-x)
        n = self.degree
        terms = s.new_empty(n + 1, *s.shape)
        terms[0].fill_(1.0)
        for k in range(1, n + 1):  # terms[k] = s^k
            torch.mul(terms[k - 1], s, out=terms[k])
        power = torch.ones_like(q)  # q^(n-k), from k = n down
        for k in range(n, -1, -1):
            terms[k].mul_(power).mul_(math.comb(n, k))
            if k:
                power.mul_(q)
        out.copy_(terms.movedim(0, -1))

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        """``sum_k g_k phi_k'(x) = n s q sum_m B_{m,n-1}(s) (g_{m+1} - g_m)`` (from ``B'_{k,n} =
        n (B_{k-1,n-1} - B_{k,n-1})``): one Bernstein evaluation of degree ``n - 1`` instead
        of the values and both derivative terms; differentiable (a double backward)."""
        s, q = torch.sigmoid(x), torch.sigmoid(-x)
        differences = grad_values[..., 1:] - grad_values[..., :-1]
        lower = bernstein(s, q, self.degree - 1)
        return self.degree * s * q * torch.linalg.vecdot(lower, differences)

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        s, q = torch.sigmoid(x), torch.sigmoid(-x)
        n = self.degree
        lower = bernstein(s, q, n - 1)  # (..., n)
        in_s = [bernstein(s, q, n), n * (F.pad(lower, (1, 0)) - F.pad(lower, (0, 1)))]
        if order == 2:
            if n >= 2:
                low2 = bernstein(s, q, n - 2)
                second = F.pad(low2, (2, 0)) - 2 * F.pad(low2, (1, 1)) + F.pad(low2, (0, 2))
                in_s.append(n * (n - 1) * second)
            else:
                in_s.append(torch.zeros_like(in_s[0]))
        slope = s * q  # sigmoid' ; sigmoid'' = s q (q - s)
        return chain_rule(tuple(in_s), slope, slope * (q - s) if order == 2 else None)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, degree={self.degree}"
