"""Orthogonal-polynomial bases: Chebyshev (ChebyKAN), Legendre (KALN), Gram (KAGN).

Polynomials live on ``[-1, 1]``, so each family first squashes its input there. The
default, ``tanh``, is elementwise: an edge function of ``x_i`` depends on ``x_i`` only.
``normalization="minmax"`` (opt-in) is KALN's min-max rescaling done per sample over the
feature axis (the original rescaled over the whole batch, which makes a sample's output
depend on its batch): it feeds each edge the *position of* ``x_i`` *within its sample's
range*, so edges then depend on the other inputs too. Every family is
evaluated by its three-term recurrence, which has no singularity at ``|x| -> 1``
(unlike ``cos(n * acos(x))``, whose gradient is NaN there).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lightning_kan.bases.base import Basis, register_basis
from lightning_kan.native import NativeKernel

__all__ = ["MAX_DEGREE", "ChebyshevBasis", "GramBasis", "LegendreBasis"]

MAX_DEGREE = 32
Normalization = Literal["tanh", "minmax"]
_NORMALIZATIONS = ("tanh", "minmax")  # index = the recorded ``normalization_code``
#: ``minmax`` divides by ``max(max_j x_j - min_j x_j, MINMAX_MIN_RANGE)``: samples whose
#: features (nearly) coincide get a bounded map (slope <= 2 / MINMAX_MIN_RANGE) instead
#: of a 0/0 with an exploding gradient.
MINMAX_MIN_RANGE = 1e-2


def _check_degree(degree: object) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be an integer in [1, {MAX_DEGREE}], got {degree!r}")
    return degree


def _squash(x: torch.Tensor, normalization: str) -> torch.Tensor:
    """Map ``x (..., I)`` into ``[-1, 1]``: elementwise tanh, or per-sample min-max
    ``2 (x_i - min_j x_j) / max(range, MINMAX_MIN_RANGE) - 1`` over the feature axis."""
    if normalization == "tanh":
        return torch.tanh(x)
    low = x.amin(dim=-1, keepdim=True)
    span = (x.amax(dim=-1, keepdim=True) - low).clamp_min(MINMAX_MIN_RANGE)
    return 2.0 * (x - low) / span - 1.0


def _check_normalization(normalization: str, in_features: int) -> str:
    if normalization not in ("tanh", "minmax"):
        raise ValueError(
            f"normalization must be 'tanh' or 'minmax', got {normalization!r} ('tanh': "
            "elementwise, the default; 'minmax': per sample over the features)"
        )
    if normalization == "minmax" and in_features < 2:
        raise ValueError(
            f"normalization='minmax' rescales each sample over its {in_features} feature(s), "
            "which maps every input to -1; it needs in_features >= 2 (use "
            "normalization='tanh' for a single input)"
        )
    return normalization


class _ThreeTermBasis(Basis):
    """Polynomials ``p_0 .. p_d`` of the squashed input ``s`` from a three-term recurrence.

    ``p_0 = 1``, ``p_1 = s``, ``p_{n+1} = a_n s p_n - b_n p_{n-1}``, then optionally each
    ``p_n`` times ``scale_n``. Subclasses give the coefficients; this class evaluates
    them differentiably (``forward``) and into the layer's buffer (``expand_into``: one
    chunk-sized temporary, two passes per degree).
    """

    #: the default of state dicts saved before bases recorded their normalization
    unrecorded_normalization = "tanh"

    def __init__(self, in_features: int, degree: int, normalization: str | None) -> None:
        super().__init__(in_features)
        self.degree = _check_degree(degree)
        self.normalization_given = normalization is not None  # None: the default, "tanh"
        self.normalization = _check_normalization(normalization or "tanh", in_features)
        self._record_normalization()
        self.num_functions = degree + 1

    # The normalization is part of the function a state dict holds: it is saved with
    # the weights (as an integer buffer: state dicts stay all-tensor for the code that
    # relies on it) and checked on load, so weights never run under another squashing.
    def _record_normalization(self) -> None:
        code = _NORMALIZATIONS.index(self.normalization)
        self.register_buffer("normalization_code", torch.tensor(code, dtype=torch.int8))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "normalization_code"
        if key not in state_dict:  # saved before the normalization was recorded
            old = self.unrecorded_normalization
            if self.normalization != old and not self.normalization_given:
                raise ValueError(
                    f"{type(self).__name__} at {prefix or 'the top'!r}: the state dict "
                    "does not record its normalization (saved by an older lightning_kan), "
                    f"and the default then was {old!r}, not today's "
                    f"{self.normalization!r}. Build the model with "
                    f"basis_kwargs={{'normalization': {old!r}}} to load it as it was trained "
                    "(or pass normalization='tanh' explicitly if it was trained with tanh)."
                )
            state_dict[key] = self.normalization_code.clone()
        recorded = _NORMALIZATIONS[int(state_dict[key])]
        if recorded != self.normalization:
            raise ValueError(
                f"{type(self).__name__} at {prefix or 'the top'!r}: the state dict was saved "
                f"with normalization={recorded!r} but this basis uses "
                f"normalization={self.normalization!r}; the weights would compute another "
                f"function. Build the model with normalization={recorded!r} (basis_kwargs)."
            )
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _coefficients(self) -> tuple[list[tuple[float, float]], list[float] | None]:
        """``[(a_n, b_n) for n = 1 .. degree-1]`` and the per-degree scales (or None)."""
        raise NotImplementedError

    def _terms(self, s: torch.Tensor) -> list[torch.Tensor]:
        steps, scale = self._coefficients()
        terms = [torch.ones_like(s), s]
        for a, b in steps:
            terms.append(a * s * terms[-1] - b * terms[-2])
        if scale is not None:
            terms = [term * factor for term, factor in zip(terms, scale, strict=True)]
        return terms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self._terms(_squash(x, self.normalization)), dim=-1)

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        """``sum_n g_n p_n'(s) ds/dx`` in closed form for ``tanh`` (``ds/dx = 1 - s^2``).

        ``p'_{n+1} = a_n (p_n + s p'_n) - b_n p'_{n-1}`` runs beside the recurrence, so
        a double backward (physics-informed losses) differentiates a short chain of
        elementwise operations instead of autograd's graph of the forward. ``minmax``
        couples the features of a sample and uses the generic autograd path.
        """
        if self.normalization != "tanh":
            return super().input_grad(x, grad_values)
        s = torch.tanh(x)
        steps, scale = self._coefficients()
        grads = grad_values.unbind(-1)
        if scale is not None:
            grads = [grad * factor for grad, factor in zip(grads, scale, strict=True)]
        value, previous = s, torch.ones_like(s)  # p_1, p_0
        slope, previous_slope = 1.0, 0.0  # p_1', p_0': constants, not materialised
        grad_s = grads[1]
        for n, (a, b) in enumerate(steps, start=2):
            a_s = s if a == 1.0 else a * s
            next_value = torch.sub(a_s * value, previous, alpha=b)
            a_value = value if a == 1.0 else a * value
            if isinstance(slope, float):  # p_2' = a_1 (p_1 + s)
                next_slope = a_value + a_s
            elif isinstance(previous_slope, float):  # p_3' = a_2 (p_2 + s p_2') - b_2
                next_slope = torch.addcmul(a_value, a_s, slope) - b * previous_slope
            else:
                next_slope = torch.addcmul(a_value, a_s, slope).sub_(previous_slope, alpha=b)
            value, previous = next_value, value
            slope, previous_slope = next_slope, slope
            grad_s = torch.addcmul(grad_s, grads[n], slope)
        return grad_s * (1 - s * s)

    @property
    def elementwise(self) -> bool:
        """``tanh`` maps each input on its own; ``minmax`` couples a sample's features."""
        return self.normalization == "tanh"

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``(phi, phi'[, phi''])`` in ``x``, each ``(..., I, K)``, in closed form (``tanh``).

        One pass of the recurrence carries the derivatives in ``s`` along (``p'_{n+1} =
        a_n (p_n + s p'_n) - b_n p'_{n-1}``, ``p''_{n+1} = a_n (2 p'_n + s p''_n) - b_n
        p''_{n-1}``), then the chain rule through ``s = tanh x`` (``s' = 1 - s^2``,
        ``s'' = -2 s s'``): elementwise operations only. (A ``K x K`` derivative matrix
        applied by GEMM is as exact, but a GEMM this thin is slow in MKL, about 80x when
        its backward sees both operands transposed.) The terms are computed on ``x``'s
        axes in memory order and stacked on a leading ``K`` axis, so each result is laid
        out ``(K, ...)`` like ``x``: a transposed input gives transposed planes, no
        strided copy.
        """
        perm = sorted(range(x.dim()), key=x.stride, reverse=True)
        s = torch.tanh(x.permute(perm))
        steps, scale = self._coefficients()
        one, zero = torch.ones_like(s), torch.zeros_like(s)
        terms = [[one, s], [zero, one], [zero, zero]][: order + 1]  # p, p', p'' (n = 0, 1)
        for a, b in steps:  # fused multiply-adds: autograd records 8 operations a degree
            (p0, p1), (d0, d1) = terms[0][-2:], terms[1][-2:]
            terms[0].append(torch.addcmul(p0 * -b, s, p1, value=a))
            if order == 2:
                c0, c1 = terms[2][-2:]
                terms[2].append(torch.addcmul(torch.add(c0 * -b, d1, alpha=2 * a), s, c1, value=a))
            terms[1].append(torch.addcmul(torch.add(d0 * -b, p1, alpha=a), s, d1, value=a))
        if scale is not None:
            terms = [[t * factor for t, factor in zip(ts, scale, strict=True)] for ts in terms]
        phi, dphi_ds, *curvature = (torch.stack(ts) for ts in terms)  # (K, ...) each
        ds = 1 - s * s
        results = [phi, dphi_ds * ds]
        if curvature:
            results.append(curvature[0] * (ds * ds) + dphi_ds * (-2 * s * ds))
        axes = [1 + perm.index(dim) for dim in range(x.dim())] + [0]  # back to (..., I, K)
        return tuple(t.permute(axes) for t in results)

    def native_kernel(self) -> NativeKernel | None:
        """The C recurrence of ``tanh x`` (``minmax`` couples features: no kernel)."""
        if self.normalization != "tanh" or not self.is_parameter_free:
            return None
        steps, scale = self._coefficients()
        scale = scale if scale is not None else [1.0] * self.num_functions
        return three_term_kernel(1.0, 0.0, [(a, 0.0, b) for a, b in steps], scale)

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        # The recurrence runs on a contiguous (K, ..., I) temporary (the layer passes row
        # chunks, so it is chunk-sized and stays in cache), two passes per degree, and is
        # copied into ``out`` once: written column by column into ``out``'s stride-K
        # columns it was a third slower on CPU.
        s = _squash(x, self.normalization)
        steps, scale = self._coefficients()
        terms = s.new_empty(self.num_functions, *s.shape)
        terms[0].fill_(1.0)
        terms[1].copy_(s)
        for n, (a, b) in enumerate(steps, start=1):
            torch.mul(terms[n - 1], -b, out=terms[n + 1]).addcmul_(s, terms[n], value=a)
        if scale is not None:
            factors = torch.tensor(scale, dtype=out.dtype, device=out.device)
            terms.mul_(factors.view(-1, *[1] * s.dim()))
        out.copy_(terms.movedim(0, -1))

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

    def _coefficients(self) -> tuple[list[tuple[float, float]], None]:
        return [(2.0, 1.0)] * (self.degree - 1), None


@register_basis("legendre")
class LegendreBasis(_ThreeTermBasis):
    """Legendre polynomials ``P_n(s)`` (KALN); K = degree + 1.

    ``(n + 1) P_{n+1} = (2n + 1) s P_n - n P_{n-1}``. ``s = tanh(x)`` by default, as for
    Chebyshev and Gram, so every edge function depends on its own input only.
    ``normalization="minmax"`` is KALN's min-max rescaling done per sample over the
    feature axis (needs ``in_features >= 2``): edge ``i`` then sees where ``x_i`` lies
    between its sample's smallest and largest feature, a function of all the inputs.
    """

    unrecorded_normalization = "minmax"  # the default before it became "tanh"

    def __init__(
        self, in_features: int, degree: int = 7, normalization: Normalization | None = None
    ):
        super().__init__(in_features, degree, normalization)

    def _coefficients(self) -> tuple[list[tuple[float, float]], None]:
        return [((2 * n + 1) / (n + 1), n / (n + 1)) for n in range(1, self.degree)], None


@register_basis("gram")
class GramBasis(_ThreeTermBasis):
    """Discrete Gram polynomials (KAGN), orthogonal on ``num_points`` equispaced points.

    Monic recurrence on ``[-1, 1]``: ``p_{n+1} = s p_n - beta_n p_{n-1}`` with
    ``beta_n = n^2 (N^2 - n^2) / ((4n^2 - 1)(N - 1)^2)`` (N = ``num_points``; as N grows
    these tend to the monic Legendre polynomials). Each ``p_n`` is divided by its RMS on
    the N points so all K functions have unit scale. K = degree + 1; needs
    ``num_points > degree``. ``trainable_beta=True`` makes ``beta_n`` a trained
    parameter ``beta (degree - 1,)`` started at these values (KAGN trains its recurrence
    coefficients; the scales stay those of the initial polynomials).
    """

    def __init__(
        self,
        in_features: int,
        degree: int = 7,
        num_points: int = 32,
        normalization: Normalization = "tanh",
        trainable_beta: bool = False,
    ):
        super().__init__(in_features, degree, normalization)
        if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points <= degree:
            raise ValueError(
                f"num_points must be an integer > degree ({degree}), got {num_points!r}"
            )
        self.num_points = num_points
        # Python floats fixed at construction: dynamo/export read them as constants
        self._gram = _gram_coefficients(degree, num_points)
        if trainable_beta:
            self.beta = nn.Parameter(torch.tensor([beta for _, beta in self._gram[0]]))

    def _coefficients(self) -> tuple[list[tuple[float, Any]], list[float]]:
        if "beta" in self._parameters:  # trained: 0-d tensors (the layer then uses autograd)
            return [(1.0, beta) for beta in self.beta.unbind()], self._gram[1]
        return self._gram

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if "beta" in self._parameters:  # tensor coefficients: the plain forward
            out.copy_(self(x))
        else:
            super().expand_into(x, out)

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        if "beta" in self._parameters:  # tensor coefficients: autograd through the forward
            return Basis.input_grad(self, x, grad_values)
        return super().input_grad(x, grad_values)


def three_term_kernel(
    c1: float, c0: float, steps: list[tuple[float, float, float]], scale: list[float]
) -> NativeKernel:
    """The C kernel of ``p_0 = 1``, ``p_1 = c1 s + c0``, ``p_n = (A_n s + B_n) p_{n-1} - C_n
    p_{n-2}`` (``steps``: ``(A_n, B_n, C_n)``), value ``n`` times ``scale[n]``, ``s = tanh x``."""
    flat = [float(v) for step in steps for v in step]
    return NativeKernel("three_term", (c1, c0, *flat, *map(float, scale)))


@cache
def _gram_coefficients(
    degree: int, num_points: int
) -> tuple[list[tuple[float, float]], list[float]]:
    """Recurrence steps ``(1, beta_n)`` and the scales ``1 / RMS(p_n)`` on the N points,
    computed in float64 with NumPy, never torch: a first call under ``torch.export`` or
    a fake-tensor mode would otherwise cache symbolic numbers for every later call.
    Python floats, so ``module.float()`` cannot round them."""
    betas = [
        n**2 * (num_points**2 - n**2) / ((4 * n**2 - 1) * (num_points - 1) ** 2)
        for n in range(1, degree)
    ]
    points = np.linspace(-1.0, 1.0, num_points)
    terms = [np.ones_like(points), points]
    for beta in betas:
        terms.append(points * terms[-1] - beta * terms[-2])
    rms = np.sqrt(np.mean(np.square(np.stack(terms, axis=-1)), axis=0))
    return [(1.0, beta) for beta in betas], (1.0 / rms).tolist()
