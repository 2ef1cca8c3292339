"""B-spline basis (pykan / efficient-kan) evaluated locally, one knot interval per input.

Each input value lies in one knot interval, where only ``order + 1`` B-splines are
non-zero. We find that interval and evaluate those ``order + 1`` values (a tensor
``(..., I, order+1)``), then scatter them into the dense ``(..., I, K)`` output. The
dense Cox-de Boor recursion (efficient-kan) builds ``order + 1`` full ``(..., I, K')``
intermediates instead; on a 2-core CPU that alone costs several GEMMs' worth of
memory traffic (see ``benchmarks/``).

Two evaluation paths:

* uniform knots (the default, and after :meth:`BSplineBasis.set_uniform_grid`): the local
  values are fixed polynomials of the position ``u`` in the interval, evaluated as
  ``[1, u, .., u^p] @ M`` with a ``(p+1, p+1)`` matrix computed once;
* non-uniform knots (after a quantile grid update): de Boor's triangular scheme on the
  gathered knots (The NURBS Book, algorithm A2.2).

Out-of-grid inputs: the spline is extended as a constant outside ``grid_range`` (the
value at the nearest end, zero derivative), so any finite input gives finite outputs
and gradients, and refining a grid keeps the function everywhere, not only inside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import torch

from lightning_kan.bases.base import Basis, _check_positive_int, _check_range, register_basis
from lightning_kan.native import NativeKernel

__all__ = ["MAX_SPLINE_ORDER", "BSplineBasis"]

MAX_SPLINE_ORDER = 7


@register_basis("bspline")
class BSplineBasis(Basis):
    """B-splines of order ``spline_order`` on ``grid_size`` intervals per input feature.

    Every feature has its own knot vector (``grid``, shape ``(I, G + 2k + 1)``): ``G``
    intervals on ``grid_range`` extended by ``k`` knots on each side, so
    ``K = G + k`` functions per input. The grid starts uniform; ``lightning_kan.layers``
    moves it with ``update_grid``/``refine_grid``.

    Args:
        in_features: number of input features ``I`` (each gets its own knots).
        grid_size: number of intervals ``G`` on ``grid_range`` (>= 1).
        spline_order: polynomial degree ``k`` (0..7; 3 is cubic).
        grid_range: ``(low, high)`` of the initial uniform grid.
    """

    def __init__(
        self,
        in_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
    ) -> None:
        super().__init__(in_features)
        _check_positive_int("grid_size", grid_size)
        if (
            isinstance(spline_order, bool)
            or not isinstance(spline_order, int)
            or not 0 <= spline_order <= MAX_SPLINE_ORDER
        ):
            raise ValueError(
                f"spline_order must be an integer in [0, {MAX_SPLINE_ORDER}], got {spline_order!r}"
            )
        low, high = _check_range("grid_range", grid_range)
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.num_functions = grid_size + spline_order
        self.register_buffer("grid", torch.empty(in_features, grid_size + 2 * spline_order + 1))
        self.set_uniform_grid(torch.tensor([low]).expand(in_features), torch.tensor([high]))

    # ----------------------------------------------------------------- grid handling
    @property
    def is_uniform(self) -> bool:
        """Whether every feature's knots are equally spaced (enables the fast path)."""
        return self._is_uniform

    def set_uniform_grid(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Put ``G`` equal intervals on ``[low_i, high_i]`` for every feature ``i``."""
        steps = torch.arange(-self.spline_order, self.grid_size + self.spline_order + 1)
        low64, high64 = low.double().cpu(), high.double().cpu()
        width = (high64 - low64) / self.grid_size
        knots = low64.reshape(-1, 1) + steps.double() * width.reshape(-1, 1)
        self.set_knots(knots.expand(self.in_features, -1), uniform=True)

    def set_knots(self, knots: torch.Tensor, uniform: bool = False) -> None:
        """Replace the knot vectors (shape ``(I, G + 2k + 1)``, strictly increasing)."""
        expected = (self.in_features, self.grid_size + 2 * self.spline_order + 1)
        if tuple(knots.shape) != expected:
            raise ValueError(f"knots must have shape {expected}, got {tuple(knots.shape)}")
        if not bool(torch.isfinite(knots).all()) or bool((knots.diff(dim=-1) <= 0).any()):
            raise ValueError(
                "knots must be finite and strictly increasing along each feature; "
                "with grid updates use grid_eps > 0 so repeated sample values cannot "
                "collapse intervals"
            )
        self.grid.copy_(knots)
        self._is_uniform = uniform

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        spacing = self.grid.double().diff(dim=-1)
        self._is_uniform = bool(
            torch.allclose(spacing, spacing[:, :1].expand_as(spacing), rtol=1e-5, atol=0)
        )

    @property
    def grid_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` per feature: the range on which the spline is not constant."""
        k, g = self.spline_order, self.grid_size
        return self.grid[:, k], self.grid[:, k + g]

    # ------------------------------------------------------------ local evaluation
    def _locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interval index ``j`` in ``[0, G)`` (long) and the position in it.

        Uniform grids return ``u = t - j`` in ``[0, 1]`` (``t``: ``x`` in units of the
        spacing); non-uniform grids return ``x`` clamped into the grid. Either way the
        input is clamped first, which makes the spline constant outside the grid.
        """
        k, grid_size = self.spline_order, self.grid_size
        low = self.grid[:, k]
        if self._is_uniform:
            t = torch.clamp((x - low) / self._uniform_spacing(), 0, grid_size)
            # NaN inputs must give NaN outputs, not an invalid index: sanitise the index only
            j = t.detach().floor().nan_to_num_(0.0).clamp_(max=grid_size - 1)
            return j.long(), t - j
        x = torch.maximum(torch.minimum(x, self.grid[:, k + grid_size]), low)
        interior = self.grid[:, k + 1 : k + grid_size]
        return (x.detach().unsqueeze(-1) >= interior).sum(-1), x

    def _uniform_spacing(self) -> torch.Tensor:
        """Knot spacing ``(I,)`` taken from the grid's ends, so ``x = high`` maps to ``t = G``
        exactly and the constant extension joins the spline without a float32 step."""
        low, high = self.grid_bounds
        return (high - low) / self.grid_size

    def _local_knots(self, j: torch.Tensor) -> torch.Tensor:
        """Knots ``t_{j+1} .. t_{j+2k}`` of every input's interval, ``(..., I, 2k)``."""
        k = self.spline_order
        offsets = torch.arange(1, 2 * k + 1, device=j.device)
        index = j.unsqueeze(-1) + offsets
        return self.grid.expand(*j.shape, -1).gather(-1, index)

    def _local_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of the first non-zero basis and the ``k + 1`` non-zero values."""
        j, position = self._locate(x)
        k = self.spline_order
        if self._is_uniform:
            return j, _horner(_local_table(k, x), position)
        return j, torch.stack(_de_boor(position, self._local_knots(j), k, k), dim=-1)

    def _local_derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of the first non-zero basis and the ``k + 1`` values of ``d phi / dx``."""
        j, position = self._locate(x)
        return j, self._local_slopes(x, j, position, 1)

    def _local_slopes(
        self, x: torch.Tensor, j: torch.Tensor, position: torch.Tensor, order: int
    ) -> torch.Tensor:
        """The ``k + 1`` non-zero values of ``d^order phi / dx^order`` (``order`` 1 or 2) in
        interval ``j`` at ``position`` (from :meth:`_locate`); zero outside the grid, where
        the spline is constant."""
        k = self.spline_order
        low, high = self.grid_bounds
        inside = ((x >= low) & (x <= high)).to(x.dtype).unsqueeze(-1)
        if k < order:
            return torch.zeros(*x.shape, k + 1, dtype=x.dtype, device=x.device)
        if self._is_uniform:
            spacing = self._uniform_spacing().unsqueeze(-1)  # (I, 1)
            table = _local_table(k, x, derivative=order)
            return _horner(table, position) / spacing**order * inside
        derivs = _de_boor_derivatives(position, self._local_knots(j), k, order)
        return torch.stack(derivs, dim=-1) * inside

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``(phi, phi'[, phi''])``, each ``(..., I, K)``, in closed form: the ``k + 1``
        local values of each order (:meth:`_leading_locals`) scattered into the dense
        layout. Both live on a leading slot / basis axis, ``(k + 1, ..., I)`` and ``(K,
        ..., I)``, returned as ``(..., I, K)`` views: every operation then runs over whole
        contiguous ``(..., I)`` planes, where a trailing axis of ``k + 1`` numbers costs a
        loop per input (several times the time on CPU, the backward's included)."""
        j, position = self._locate(x)
        slots = torch.arange(self.spline_order + 1, device=j.device)
        index = j + slots.view(-1, *[1] * j.dim())  # (k + 1, ..., I)
        # the dense planes in x's memory order (a transposed input stays transposed);
        # not views, so the in-place scatter's backward is a gather, not a copy of them
        layout = (0, *(1 + dim for dim in sorted(range(x.dim()), key=x.stride, reverse=True)))
        shape = (self.num_functions, *x.shape)
        return tuple(
            torch.empty_permuted(shape, layout, dtype=x.dtype, device=x.device)
            .zero_()
            .scatter_(0, index, local)
            .movedim(0, -1)
            for local in self._leading_locals(x, j, position, order)
        )

    def _leading_locals(
        self, x: torch.Tensor, j: torch.Tensor, position: torch.Tensor, order: int
    ) -> list[torch.Tensor]:
        """The ``k + 1`` non-zero values of ``phi`` and of its derivatives up to ``order``
        in interval ``j`` at ``position`` (from :meth:`_locate`), each ``(k + 1, ..., I)``;
        the derivatives are zero outside the grid, where the spline is constant."""
        k = self.spline_order
        low, high = self.grid_bounds
        inside = ((x >= low) & (x <= high)).to(x.dtype)
        if self._is_uniform:
            spacing = self._uniform_spacing()
            value, *slopes = _UniformLocals.apply(position, k, order)
            return [value] + [s * (inside / spacing**n) for n, s in enumerate(slopes, start=1)]
        knots = self._local_knots(j)
        locals_ = [torch.stack(_de_boor(position, knots, k, k))]
        for n in range(1, order + 1):
            if n > k:
                locals_.append(x.new_zeros(k + 1, *x.shape))
                continue
            locals_.append(torch.stack(_de_boor_derivatives(position, knots, k, n)) * inside)
        return locals_

    def _positions(self, j: torch.Tensor) -> torch.Tensor:
        return j.unsqueeze(-1) + torch.arange(self.spline_order + 1, device=j.device)

    # --------------------------------------------------------------- Basis protocol
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.spline_order
        if not self._is_uniform or k == 0:
            j, values = self._local_values(x)
            out = x.new_zeros(*x.shape, self.num_functions, dtype=values.dtype)
            return out.scatter(-1, self._positions(j), values)
        # Uniform knots: every basis is the same symmetric cardinal B-spline, shifted.
        # Evaluated densely with truncated powers of the distance to its centre,
        #   N(d) = sum_{i < (k+1)/2} (-1)^i C(k+1, i) / k! * ((k+1)/2 - i - |d|)_+^k,
        # i.e. branch-free, vectorisable elementwise operations that torch.compile fuses
        # into one kernel writing every output once (KANLinear(compiled=True)).
        # In eager mode expand_into is the fast path; this is the reference.
        low = self.grid[:, k]
        t = torch.clamp((x - low) / self._uniform_spacing(), 0, self.grid_size)
        centres = torch.arange(self.num_functions, dtype=t.dtype, device=t.device) - (k - 1) / 2
        distance = (t.unsqueeze(-1) - centres).abs()
        out = torch.zeros_like(distance)
        for offset, coefficient in _truncated_power_terms(k):
            out = out + coefficient * torch.relu(offset - distance) ** k
        return out

    def native_kernel(self) -> NativeKernel | None:
        """Uniform knots only (a non-uniform grid keeps de Boor's scheme in torch): the C
        kernel evaluates the local polynomials of :meth:`expand_into` (the AVX2 and
        AVX-512 builds, and order 1 everywhere) or :meth:`forward`'s branch-free
        truncated powers (the baseline build, orders >= 2)."""
        if not self._is_uniform or self.spline_order == 0:  # order 0: steps, left to torch
            return None
        k = self.spline_order
        table = torch.cat(
            [self.grid[:, k], self._uniform_spacing(), self.grid[:, k + self.grid_size]]
        )
        flat = [value for row in _LOCAL_POLYNOMIALS[k] for value in row]
        offsets, coefficients = zip(*_truncated_power_terms(k), strict=True)
        terms = (len(offsets), *offsets, *coefficients)
        return NativeKernel("bspline", (k, self.grid_size, *flat, *terms), table)

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        out.zero_()  # uninitialised on entry; the local values are scattered into zeros
        if not self._is_uniform:
            j, values = self._local_values(x)
            out.scatter_(-1, self._positions(j), values)
            return
        # Uniform fast path: one contiguous (..., I) polynomial per local slot, written
        # straight into the output; no (..., I, k+1) temporaries, so peak memory stays
        # near the output itself.
        j, u = self._locate(x)
        index = j.unsqueeze(-1)
        poly = _LOCAL_POLYNOMIALS[self.spline_order]
        for slot in range(self.spline_order + 1):
            if slot:
                index.add_(1)
            out.scatter_(-1, index, _horner_scalar([row[slot] for row in poly], u).unsqueeze(-1))

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        k = self.spline_order
        if torch.is_grad_enabled() or not self._is_uniform or k == 0:
            # double backward (must stay differentiable) or non-uniform knots
            j, derivs = self._local_derivatives(x)
            return (grad_values.gather(-1, self._positions(j)) * derivs).sum(-1)
        # Uniform fast path, slot by slot like expand_into: no (..., I, k+1) temporaries.
        j, u = self._locate(x)
        low, high = self.grid_bounds
        scale = ((x >= low) & (x <= high)).to(u.dtype) / self._uniform_spacing()
        slopes = _LOCAL_SLOPES[k]
        index = j.unsqueeze(-1)
        result = torch.zeros_like(u)
        for slot in range(k + 1):
            if slot:
                index.add_(1)
            local_grad = grad_values.gather(-1, index).squeeze(-1)
            result.addcmul_(local_grad, _horner_scalar([row[slot] for row in slopes], u))
        return result.mul_(scale)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, grid_size={self.grid_size}, "
            f"spline_order={self.spline_order}, uniform={self._is_uniform}"
        )


def _horner(coefficients: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Evaluate ``sum_e coefficients[e, m] * u^e`` for every ``m``: ``(..., M)``.

    One fused multiply-add per degree (``torch.addcmul``), differentiable in ``u``.
    """
    u = u.unsqueeze(-1)
    result = coefficients[-1].expand(*u.shape[:-1], coefficients.shape[-1])
    for row in coefficients[:-1].flip(0):
        result = torch.addcmul(row, result, u)
    return result


def _de_boor_derivatives(
    position: torch.Tensor, knots: torch.Tensor, k: int, order: int
) -> list[torch.Tensor]:
    """The ``k + 1`` local values of ``d^order B^k / dx^order`` (``1 <= order <= k``) on a
    non-uniform grid: ``B^{k-order}`` by de Boor, then ``d/dx B^p = p (B^{p-1}_i / (t_{i+p}
    - t_i) - B^{p-1}_{i+1} / (t_{i+p+1} - t_{i+1}))`` raises the degree while
    differentiating, ``order`` times."""
    derivs = _de_boor(position, knots, k, k - order)
    for degree in range(k - order + 1, k + 1):
        derivs = _raise_degree(derivs, knots, degree, k)
    return derivs


class _UniformLocals(torch.autograd.Function):
    """The ``k + 1`` local values of ``phi`` and of its ``u``-derivatives up to ``order``
    on a uniform grid, each ``(k + 1, ...)``: the polynomial tables by Horner's scheme.

    Why by hand: the ``u``-derivative of table ``n`` is table ``n + 1``, so the backward
    is one product per order with the next order's values (computed already, but for
    the last), where autograd would differentiate every multiply-add of each Horner
    scheme. Differentiable (a double backward)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, spline_order: int, order: int) -> tuple[torch.Tensor, ...]:
        values = tuple(_local_polynomial(spline_order, u, n) for n in range(order + 1))
        ctx.save_for_backward(u, *values)
        ctx.spline_order = spline_order
        return values

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        u, *values = ctx.saved_tensors
        slopes = [*values[1:], _local_polynomial(ctx.spline_order, u, len(values))]
        grad_u = sum((g * s).sum(0) for g, s in zip(grads, slopes, strict=True))
        return grad_u, None, None


def _local_polynomial(spline_order: int, u: torch.Tensor, derivative: int) -> torch.Tensor:
    """Table ``derivative`` of :data:`_TABLES` at ``u``, ``(k + 1, ...)`` (zero past the
    spline's degree)."""
    if derivative > spline_order:
        return u.new_zeros(spline_order + 1, *u.shape)
    return _horner_leading(_local_table(spline_order, u, derivative), u)


def _horner_leading(coefficients: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`_horner` with the ``M`` results on a leading axis, ``(M, ...)``: each
    multiply-add broadcasts a column of coefficients over whole planes of ``u``."""
    shape = (-1,) + (1,) * u.dim()
    result = coefficients[-1].view(shape).expand(-1, *u.shape)
    for row in coefficients[:-1].flip(0):
        result = torch.addcmul(row.view(shape), result, u)
    return result


@cache
def _truncated_power_terms(order: int) -> tuple[tuple[float, float], ...]:
    """``(offset, coefficient)`` pairs of the symmetric cardinal B-spline of ``order``:
    ``N(d) = sum coefficient * (offset - |d|)_+^order``."""
    half = (order + 1) / 2
    return tuple(
        (half - i, (-1) ** i * math.comb(order + 1, i) / math.factorial(order))
        for i in range(order + 1)
        if i < half
    )


def _horner_scalar(coefficients: list[float], u: torch.Tensor) -> torch.Tensor:
    """``sum_e coefficients[e] * u^e`` with in-place updates of one buffer (no autograd)."""
    result = torch.full_like(u, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        result.mul_(u).add_(coefficient)
    return result


def _powers(u: torch.Tensor, degree: int) -> torch.Tensor:
    """``[1, u, u^2, .., u^degree]`` stacked on a new last axis."""
    terms = [torch.ones_like(u)]
    for _ in range(degree):
        terms.append(terms[-1] * u)
    return torch.stack(terms, dim=-1)


def _de_boor(x: torch.Tensor, knots: torch.Tensor, order: int, degree: int) -> list[torch.Tensor]:
    """Non-zero B-splines of ``degree`` (<= order) at ``x`` by de Boor's triangle.

    ``x`` lies in the knot interval ``[t_J, t_{J+1})`` and ``knots[..., q]`` holds the
    window ``t_{J-order+1+q}``, ``q = 0 .. 2*order-1``. Returns ``degree + 1`` tensors:
    ``B^{degree}_{J-degree} .. B^{degree}_J``.
    """
    values = [torch.ones_like(x)]
    for r in range(1, degree + 1):
        left = [x - knots[..., order - s] for s in range(1, r + 1)]  # x - t_{j+1-s}
        right = [knots[..., order + s - 1] - x for s in range(1, r + 1)]  # t_{j+s} - x
        saved = torch.zeros_like(x)
        new_values = []
        for s in range(r):
            temp = values[s] / (right[s] + left[r - s - 1])
            new_values.append(saved + right[s] * temp)
            saved = left[r - s - 1] * temp
        new_values.append(saved)
        values = new_values
    return values


def _raise_degree(
    derivs: list[torch.Tensor], knots: torch.Tensor, degree: int, order: int
) -> list[torch.Tensor]:
    """Derivatives of ``B^{degree}_{J-degree} .. B^{degree}_J`` (``degree + 1`` tensors)
    from the same-order-lower derivatives of ``B^{degree-1}_{J-degree+1} .. B^{degree-1}_J``
    (``degree`` tensors): ``X^p_i = p (X^{p-1}_i / (t_{i+p} - t_i) - X^{p-1}_{i+1} /
    (t_{i+p+1} - t_{i+1}))``. ``knots[..., q] = t_{J-order+1+q}`` as in :func:`_de_boor`."""
    scaled = [
        degree * derivs[q] / (knots[..., order + q] - knots[..., order - degree + q])
        for q in range(degree)
    ]
    zero = torch.zeros_like(scaled[0])
    return [
        (scaled[m - 1] if m > 0 else zero) - (scaled[m] if m < degree else zero)
        for m in range(degree + 1)
    ]


def _uniform_local_polynomial(order: int) -> list[list[float]]:
    """``M`` with ``[B_{j-k}(u), .., B_j(u)] = [1, u, .., u^k] @ M`` on unit-spaced knots.

    Computed in float64 by evaluating de Boor's scheme at ``k + 1`` points and solving
    the Vandermonde system (exact to round-off: the values are polynomials of degree
    ``k`` in ``u``).
    """
    u = (torch.arange(order + 1, dtype=torch.float64) + 0.5) / (order + 1)
    knots = torch.arange(-order + 1, order + 1, dtype=torch.float64).expand(order + 1, -1)
    values = torch.stack(_de_boor(u, knots, order, order), dim=-1)
    return torch.linalg.solve(_powers(u, order), values).tolist()


# Python floats built at import, for every order: a table computed lazily on a first
# call under torch.export or a fake-tensor mode would cache symbolic numbers for good.
#: ``M`` of :func:`_uniform_local_polynomial` per order (rows: powers of u; columns: slots)
_LOCAL_POLYNOMIALS = tuple(_uniform_local_polynomial(k) for k in range(MAX_SPLINE_ORDER + 1))
#: ``d M / du``: row ``e - 1`` is ``e * M[e]`` (the coefficients of the derivative)
_LOCAL_SLOPES = tuple(
    [[e * value for value in row] for e, row in enumerate(poly[1:], start=1)]
    for poly in _LOCAL_POLYNOMIALS
)
#: ``d^2 M / du^2``: row ``e - 2`` is ``e (e - 1) M[e]`` (empty below order 2)
_LOCAL_CURVATURES = tuple(
    [[e * (e - 1) * value for value in row] for e, row in enumerate(poly[2:], start=2)]
    for poly in _LOCAL_POLYNOMIALS
)
#: ``d^3 M / du^3`` (the gradient of the curvatures, :class:`_UniformLocals`)
_LOCAL_THIRDS = tuple(
    [[e * (e - 1) * (e - 2) * value for value in row] for e, row in enumerate(poly[3:], start=3)]
    for poly in _LOCAL_POLYNOMIALS
)
_TABLES = (_LOCAL_POLYNOMIALS, _LOCAL_SLOPES, _LOCAL_CURVATURES, _LOCAL_THIRDS)
_TABLE_TENSORS: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}


def _local_table(order: int, like: torch.Tensor, derivative: int = 0) -> torch.Tensor:
    """``_LOCAL_POLYNOMIALS[order]`` (``derivative`` 0), ``_LOCAL_SLOPES`` (1),
    ``_LOCAL_CURVATURES`` (2) or ``_LOCAL_THIRDS`` (3) with ``like``'s dtype and device.

    Kept per dtype and device so the forward copies it once, but never when built under a
    tracer or a ``torch.func`` transform: a fake, functional or wrapped tensor must not
    outlive its trace.
    """
    key = (order, int(derivative), like.dtype, like.device)
    tensor = _TABLE_TENSORS.get(key)
    if tensor is None:
        table = _TABLES[int(derivative)][order]
        tensor = torch.tensor(table, dtype=like.dtype, device=like.device)
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(tensor)
        if type(tensor) is torch.Tensor and not wrapped and not torch.compiler.is_compiling():
            _TABLE_TENSORS[key] = tensor
    return tensor
