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

For evenly spaced centres the C kernel can evaluate the factors of an input by a window
around its nearest centre (:func:`gaussian_windows`): two exps and a few products per
input instead of one exp per value.
"""

from __future__ import annotations

import math

import torch

__all__ = ["EXPONENT_MAX", "FLUSH", "even_spacing", "gaussian", "gaussian_", "gaussian_windows"]

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


def even_spacing(u: torch.Tensor) -> float | None:
    """The spacing of centres ``u (K,)`` (float64) that are evenly spaced (each within
    ``1e-3`` spacings of its place), else ``None``: the kernels that find an input's
    nearest centre from the spacing need it."""
    count = u.numel()
    if count < 2 or not torch.isfinite(u).all():
        return None
    spacing = float(u[-1] - u[0]) / (count - 1)
    steps = u[0] + spacing * torch.arange(count, dtype=torch.float64)
    if not spacing > 0 or float((u - steps).abs().max()) > 1e-3 * spacing:
        return None
    return spacing


#: ``|z|`` past which ``e^{-z^2}`` is under ``FLUSH`` (6.66)
_FLUSH_DISTANCE = math.sqrt(-math.log(FLUSH))
#: inputs this far past the outer centres, in units of ``1 / w``, give ``e^{-z^2}`` under
#: ``FLUSH`` for every centre (``z^2 > 46``); the window kernel clamps there
_WINDOW_CLAMP = 46.0
#: the most ``a = w (u_1 - u_0)`` may be for :func:`gaussian_windows`: the ratios
#: ``e^{+-2 a z_j}`` stay within float32's range at the clamped inputs (``|z_j| <= 6.8``)
_WINDOW_STEP_MAX = 4.0
#: the most values a window holds (the kernel's ``MAX_WINDOW`` less one)
_WINDOW_MAX = 31
#: the fewest functions a window must leave out for :func:`gaussian_windows`: its
#: per-input exps and stores cost about as much as this many values of the direct formula
_WINDOW_MIN_SAVED = 4


def gaussian_windows(
    centers: torch.Tensor, inverse_width: float
) -> tuple[torch.Tensor, tuple[float, ...]] | None:
    """The RBF kernel's table and constants for its values ``e^{-z_n^2}``, ``z_n = w (x -
    u_n)``, by windows, or ``None`` (one exp per value).

    With evenly spaced centres, ``z_n = w (x - u_n)`` falls by ``a = w (u_1 - u_0)`` per
    centre, so ``e^{-z^2}`` at the centres around the nearest one ``u_j`` follows from
    ``e^{-z_j^2}`` and the ratios ``e^{+-2 a z_j - a^2} T_s``, ``T_s = e^{-2 a^2 s}``; and
    past ``M = floor(6.66 / a - 1/2) + 1`` centres from ``u_j`` every value is under the
    flush. The kernel then evaluates ``2M + 1`` values per input with two exps and a
    division, where the direct formula takes K exps. Needs ``a <= 4`` and a window at least
    :data:`_WINDOW_MIN_SAVED` functions short of K. Returns the float32 table
    ``[u (K), T (M), corrections]`` (from the centres in float64, see
    :func:`_lattice_corrections`) and ``(lo, hi, 1 / spacing, a, M)``:
    the kernel clamps ``x`` to ``[lo, hi]``, past which every value is flushed.
    """
    u = centers.detach().double().cpu()
    spacing = even_spacing(u)
    if spacing is None:
        return None
    step = inverse_width * spacing
    if not step <= _WINDOW_STEP_MAX:
        return None
    half = math.floor(_FLUSH_DISTANCE / step - 0.5) + 1
    if 2 * half + 1 > min(_WINDOW_MAX, u.numel() - _WINDOW_MIN_SAVED):
        return None
    ratios = torch.exp(-2.0 * step**2 * torch.arange(half, dtype=torch.float64))
    table = torch.cat([u, ratios, _lattice_corrections(u, spacing, inverse_width, half)])
    margin = math.sqrt(_WINDOW_CLAMP) / inverse_width
    bounds = (float(u[0]) - margin, float(u[-1]) + margin)
    return table.to(torch.float32), (*bounds, 1.0 / spacing, step, float(half))


def _lattice_corrections(
    u: torch.Tensor, spacing: float, inverse_width: float, half: int
) -> torch.Tensor:
    """The window kernel's first-order corrections from its lattice ``u_0 + n h`` to the
    stored centres ``u (K,)``: ``2 D`` with ``D = w (e_n - e_j)``, ``e`` the centres'
    offsets from the lattice, in rows of ``16 * tiles`` per nearest centre ``j`` (entry
    ``t`` for column ``n = j - M + t``, 0 past the columns), flattened. The kernel
    multiplies each value ``e^{-z_n^2}`` of the lattice by ``1 + 2 D z_n``, which is
    ``e^{-z^2}`` at the stored centre to first order in ``D`` (about 1e-6)."""
    count = u.numel()
    width = 16 * math.ceil((2 * half + 1) / 16)
    offsets = u - (u[0] + spacing * torch.arange(count, dtype=torch.float64))
    j = torch.arange(count).unsqueeze(1)
    n = j - half + torch.arange(width)
    inside = (n >= 0) & (n < count)
    gap = inverse_width * (offsets[n.clamp(0, count - 1)] - offsets[j])
    return (2.0 * torch.where(inside, gap, torch.zeros_like(gap))).flatten()
