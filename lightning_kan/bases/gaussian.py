"""The Gaussian factor ``e^{-a}`` of the RBF and wavelet families, flushed to zero when tiny.

A basis value under about ``2^-64``, times a weight or an output gradient under about
``2^-62``, is a subnormal number, and x86 multiplies subnormals 10-60x slower: in the
exp itself and in the layer's GEMMs (the RBF layer's weight-gradient GEMM ran 1.8x slower
at ``512 x 64 -> 64``, K = 23, with Gaussian tails down to 1e-38 in its basis matrix). So
factors below :data:`FLUSH` are set to zero, a change of at most 5.4e-20: below float32's
resolution of any sum with a value near 1, and of float64's. ``a`` is clamped at
:data:`EXPONENT_MAX` first (``e^-45 < FLUSH``, so the clamp changes nothing after the
flush), which keeps the exp itself normal. The C kernels (``native/_kernels.c``) get both
constants from the bases and apply them the same way.
"""

from __future__ import annotations

import torch

__all__ = ["EXPONENT_MAX", "FLUSH", "gaussian", "gaussian_"]

FLUSH = 2.0**-64
EXPONENT_MAX = 45.0


def gaussian(exponent: torch.Tensor) -> torch.Tensor:
    """``e^{-a}`` for ``a = exponent >= 0``, zero where it is below :data:`FLUSH`
    (differentiable; the slope is zero there too)."""
    value = torch.exp(-exponent.clamp(max=EXPONENT_MAX))
    return torch.where(value < FLUSH, torch.zeros_like(value), value)


def gaussian_(exponent: torch.Tensor) -> torch.Tensor:
    """:func:`gaussian` in place on ``exponent`` (no autograd); returns it."""
    exponent.clamp_(max=EXPONENT_MAX).neg_().exp_()
    return torch.nn.functional.threshold_(exponent, FLUSH, 0.0)
