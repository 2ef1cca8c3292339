"""Forward-mode "jets": a network's value, input gradient and needed second derivatives
in one forward pass, for physics-informed losses.

A :class:`Jet` of a field ``u (N, C)`` over inputs ``x (N, d)`` holds ``u``, its gradient
rows ``du/dx_a`` and the second derivatives ``d2u/dx_a dx_b`` a problem asks for (a
pair ``(a, b)``, diagonal or mixed, or a sum of pairs such as the Laplacian in one row),
all as ``(N, rows, C)`` tensors. KAN edges are univariate, so a ``KANLinear`` layer maps
a jet exactly with the same coefficients as its forward, a GEMM for the values and one
for all the gradient and second-derivative rows together::

    grad y_o = sum_i phi'_oi(x_i) grad x_i
    d2 y_o   = sum_i phi''_oi(x_i) dx_i^a dx_i^b + phi'_oi(x_i) d2 x_i

(``phi_oi``: the edge function, base branch included). ``nn.Linear`` is the same GEMM
without the basis, elementwise activations use the chain rule, and nets or output
transforms that combine such pieces provide a ``forward_jet(jet, propagate)`` hook
(``KAN``, ``MLP``, ``pde.HardDirichlet``). Anything else is refused with a
:class:`JetUnsupported` error naming the module (:func:`jet_gaps` lists them up front):
a ``LayerNorm`` or a batch-statistics ``BatchNorm`` couples features or samples,
symbolic edges and min-max bases are not univariate in the derivative sense here.

Memory: the input jet's gradient is the identity and its second derivatives are zero;
both are kept implicit (``None``), so the first layer never builds an ``(N, d, d)`` tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.layers.activations import ELEMENTWISE_MODULES, elementwise_derivatives
from lightning_kan.layers.kan_linear import KANLinear

__all__ = [
    "Jet",
    "JetUnsupported",
    "jet_forward",
    "jet_gaps",
    "propagate",
    "refusal_message",
    "register_jet_rule",
    "supports_jet",
]

#: the second derivatives a jet carries: each entry the sum of ``d2u/dx_a dx_b`` over its
#: pairs ``(a, b)`` (one pair, or several: ``((0, 0), (1, 1))`` is a 2-D Laplacian)
Entries = tuple[tuple[tuple[int, int], ...], ...]


class JetUnsupported(TypeError, ValueError):
    """A module (or an option of it) that a jet cannot pass through exactly."""


@dataclass(frozen=True)
class Jet:
    """``u (N, C)`` with ``du/dx_a`` (``grad_rows (N, d, C)``) and, for each of the ``m``
    :data:`Entries`, the sum of ``d2u/dx_a dx_b`` over its pairs (``second_rows (N, m, C)``).

    ``grad_rows=None`` is the identity (the jet of the input itself, ``C == d``) and
    ``second_rows=None`` is zero; :attr:`grad` and :attr:`second` give the ``(N, C, d)``
    and ``(N, C, m)`` views.
    """

    value: torch.Tensor
    grad_rows: torch.Tensor | None
    second_rows: torch.Tensor | None
    entries: Entries

    @classmethod
    def input(cls, x: torch.Tensor, second: Sequence[Sequence[int]] = ()) -> Jet:
        """The jet of ``x (N, d)`` itself, asking for the second derivatives ``second``:
        each item a pair ``(a, b)`` of input columns, or a list of pairs whose second
        derivatives it sums (``[(0, 0), (1, 1)]``: the Laplacian, one row)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            raise ValueError(
                f"jet_forward: x must be a floating-point tensor of points (N, d), got "
                f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}; reshape the "
                "collocation points to one row per point"
            )
        return cls(x, None, None, _check_entries(second, x.shape[1]))

    @property
    def dim(self) -> int:
        """``d``, the number of input coordinates."""
        return self.value.shape[1] if self.grad_rows is None else self.grad_rows.shape[1]

    def gradient_rows(self) -> torch.Tensor:
        """``(N, d, C)`` gradient rows, the identity materialised (broadcast, no copy)."""
        if self.grad_rows is not None:
            return self.grad_rows
        eye = torch.eye(self.dim, dtype=self.value.dtype, device=self.value.device)
        return eye.expand(self.value.shape[0], -1, -1)

    @property
    def grad(self) -> torch.Tensor:
        """``du_c/dx_a`` as ``(N, C, d)``."""
        return self.gradient_rows().transpose(1, 2)

    @property
    def second(self) -> torch.Tensor:
        """Each of the :attr:`entries` as ``(N, C, m)``."""
        if self.second_rows is not None:
            return self.second_rows.transpose(1, 2)
        return self.value.new_zeros(*self.value.shape, len(self.entries))

    def d(self, a: int) -> torch.Tensor:
        """``du/dx_a (N, C)``."""
        return self.gradient_rows()[:, a]

    def d2(self, *pairs: tuple[int, int] | int) -> torch.Tensor:
        """``d2u/dx_a dx_b (N, C)`` (``jet.d2(a, b)``), or its sum over several pairs
        (``jet.d2((0, 0), (1, 1))``: the Laplacian): the entry summing exactly them, or
        the sum of one entry per pair."""
        if len(pairs) == 2 and all(isinstance(a, int) for a in pairs):  # d2(a, b)
            pairs = (pairs,)  # type: ignore[assignment]
        key = tuple(sorted({(min(a, b), max(a, b)) for a, b in pairs}))
        if key in self.entries:
            return self._entry(self.entries.index(key))
        singles = [((pair,) in self.entries) for pair in key]
        if not key or not all(singles):
            raise KeyError(
                f"this jet carries the second derivatives {list(self.entries)}, not the sum "
                f"over {list(key)}; ask for it in jet_forward(..., second=[..., {list(key)}])"
            )
        return sum(self._entry(self.entries.index((pair,))) for pair in key)

    def _entry(self, index: int) -> torch.Tensor:
        if self.second_rows is None:
            return self.value.new_zeros(self.value.shape)
        return self.second_rows[:, index]

    def pair_products(self) -> torch.Tensor:
        """``sum dx_a dx_b`` over each entry's pairs, ``(N, m, C)``; for the input's
        identity gradient the constant ``(m, C)`` counting the pairs with ``a == b == c``."""
        if self.grad_rows is None:
            return _pair_counts(self.entries, self.dim, self.value.dtype, self.value.device)
        return _pair_sums(self.grad_rows, self.entries, 1)

    def map(self, value: torch.Tensor, slope: torch.Tensor, curvature: torch.Tensor) -> Jet:
        """The jet of ``f(u)`` for an elementwise ``f`` with ``f(u), f'(u), f''(u)`` given
        (each ``(N, C)``): ``f' du`` and ``f'' du_a du_b + f' d2u``."""
        grad_rows = slope.unsqueeze(1) * self.gradient_rows()
        second_rows = None
        if self.entries:
            second_rows = curvature.unsqueeze(1) * self.pair_products()
            if self.second_rows is not None:
                second_rows = second_rows + slope.unsqueeze(1) * self.second_rows
        return Jet(value, grad_rows, second_rows, self.entries)

    def _same_entries(self, other: Jet) -> None:
        if self.entries != other.entries or self.dim != other.dim:
            raise ValueError(
                f"jets of different inputs or entries cannot be combined ({self.dim} inputs, "
                f"{list(self.entries)} vs {other.dim}, {list(other.entries)}); propagate "
                "both from the same Jet.input"
            )

    def __add__(self, other: Jet) -> Jet:
        self._same_entries(other)
        return Jet(
            self.value + other.value,
            self.gradient_rows() + other.gradient_rows(),
            _add_optional(self.second_rows, other.second_rows),
            self.entries,
        )

    def __mul__(self, other: Jet) -> Jet:
        """Product rule: ``(uv)' = u'v + uv'``, ``(uv)_ab = u_ab v + u_a v_b + u_b v_a +
        u v_ab``."""
        self._same_entries(other)
        u, v = self.value.unsqueeze(1), other.value.unsqueeze(1)
        du, dv = self.gradient_rows(), other.gradient_rows()
        second_rows = None
        if self.entries:
            second_rows = torch.stack(
                [
                    sum(du[:, a] * dv[:, b] + du[:, b] * dv[:, a] for a, b in entry)
                    for entry in self.entries
                ],
                dim=1,
            )
            if self.second_rows is not None:
                second_rows = second_rows + self.second_rows * v
            if other.second_rows is not None:
                second_rows = second_rows + u * other.second_rows
        return Jet(self.value * other.value, du * v + u * dv, second_rows, self.entries)

    def __getitem__(self, key: tuple) -> Jet:
        """Columns ``jet[..., index]`` (the last axis of ``u``; a slice or an index list)."""
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis):
            raise IndexError(f"a Jet is indexed by columns only, jet[..., columns]; got {key!r}")
        second = None if self.second_rows is None else self.second_rows[..., key[1]]
        return Jet(self.value[..., key[1]], self.gradient_rows()[..., key[1]], second, self.entries)

    @staticmethod
    def cat(jets: Sequence[Jet], dim: int = -1) -> Jet:
        """Concatenate the columns of jets of the same input (``torch.cat``'s signature)."""
        if dim not in (-1, 1):
            raise ValueError(f"jets concatenate along their columns (dim=-1), got dim={dim}")
        first = jets[0]
        for jet in jets[1:]:
            first._same_entries(jet)
        seconds = [jet.second_rows for jet in jets]
        second = None
        if any(s is not None for s in seconds):
            second = torch.cat([jet.second.transpose(1, 2) for jet in jets], dim=-1)
        return Jet(
            torch.cat([jet.value for jet in jets], dim=-1),
            torch.cat([jet.gradient_rows() for jet in jets], dim=-1),
            second,
            first.entries,
        )


@cache
def _pair_counts(
    entries: Entries, dim: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(m, d)``: how many of each entry's pairs are ``(a, a)``; built once per entries,
    dtype and device (a tensor made from host data every step would copy it to the GPU
    and wait for it each time)."""
    counts = [[0.0] * dim for _ in entries]
    for m, entry in enumerate(entries):
        for a, b in entry:
            if a == b:
                counts[m][a] += 1
    return torch.tensor(counts, dtype=dtype, device=device)


def _pair_sums(rows: torch.Tensor, entries: Entries, dim: int) -> torch.Tensor:
    """``sum rows_a rows_b`` over each entry's pairs, the gradient rows ``a`` indexed
    along ``dim`` of ``rows``; stacked there (``m`` entries in place of ``d`` rows)."""
    return torch.stack(
        [sum(rows.select(dim, a) * rows.select(dim, b) for a, b in entry) for entry in entries],
        dim=dim,
    )


def _add_optional(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _check_entries(second: object, dim: int) -> Entries:
    """``second`` as :data:`Entries`: each item a pair ``(a, b)`` of input columns
    ``0 .. d-1`` or a list of them (summed); pairs sorted within, entries unique."""
    usage = (
        f"pass a list whose items are pairs (a, b) of input columns 0..{dim - 1} or lists "
        "of pairs to sum, e.g. second=[(0, 0), (1, 1)] for both diagonal entries or "
        "second=[[(0, 0), (1, 1)]] for the Laplacian in one row"
    )

    def is_index(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < dim

    try:
        items = list(second)  # type: ignore[call-overload]
    except TypeError:
        message = f"jet_forward: second={second!r} is not a list of pairs; {usage}"
        raise ValueError(message) from None
    result: list[tuple[tuple[int, int], ...]] = []
    for item in items:
        single = isinstance(item, Sequence) and len(item) == 2 and all(map(is_index, item))
        pairs = [item] if single else item
        valid = isinstance(pairs, Sequence) and len(pairs) > 0
        for pair in pairs if valid else ():
            valid = valid and isinstance(pair, Sequence) and len(pair) == 2
            valid = valid and all(map(is_index, pair))
        if not valid:
            raise ValueError(f"jet_forward: second holds {item!r}, not a valid pair; {usage}")
        entry = tuple(sorted({(min(pair), max(pair)) for pair in pairs}))
        if entry not in result:
            result.append(entry)
    return tuple(result)


# ----------------------------------------------------------------------------- rules
Rule = Callable[[nn.Module, Jet], Jet]
Gaps = Callable[[nn.Module], list[str]]
_RULES: dict[type[nn.Module], tuple[Rule, Gaps]] = {}


def register_jet_rule(cls: type[nn.Module], rule: Rule, gaps: Gaps | None = None) -> None:
    """Let jets pass modules of ``cls`` (and subclasses): ``rule(module, jet) -> jet``;
    ``gaps(module)`` lists the reasons an instance cannot (``[]``: it can)."""
    _RULES[cls] = (rule, gaps or (lambda module: []))


def _rule(module: object) -> tuple[Rule, Gaps] | None:
    for cls in type(module).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


def _walk_gaps(module: nn.Module, path: str) -> Iterator[str]:
    where = f"{path or 'the network'} ({type(module).__name__})"
    rule = _rule(module)
    if rule is not None:
        yield from (f"{where} {gap}" for gap in rule[1](module))
        if not isinstance(module, nn.Sequential):
            return
    elif not isinstance(module, nn.ModuleList) and not callable(
        getattr(module, "forward_jet", None)
    ):
        yield f"{where} has no forward-mode derivative rule"
        return
    # a hook may name the children its forward passes through (``jet_children``); the
    # others (e.g. MetaKAN's coefficient generators) only make parameters
    names = getattr(module, "jet_children", None)
    children = (
        module.named_children() if names is None else ((n, getattr(module, n)) for n in names)
    )
    for name, child in children:
        yield from _walk_gaps(child, f"{path}.{name}" if path else name)


def jet_gaps(net: nn.Module) -> list[str]:
    """One phrase per module (or option) of ``net`` a jet cannot pass; ``[]``: it can."""
    return list(_walk_gaps(net, ""))


def supports_jet(net: nn.Module) -> bool:
    """Whether :func:`jet_forward` propagates exactly through every part of ``net``."""
    return not jet_gaps(net)


def propagate(module: nn.Module | Callable[[torch.Tensor], torch.Tensor], jet: Jet) -> Jet:
    """Map ``jet`` through ``module``: its registered rule, its ``forward_jet(jet,
    propagate)`` hook, or (a plain function of the input jet only) autograd."""
    rule = _rule(module)
    if rule is not None:
        return rule[0](module, jet)
    hook = getattr(module, "forward_jet", None)
    if callable(hook):
        return hook(jet, propagate)
    if not isinstance(module, nn.Module) and jet.grad_rows is None and jet.second_rows is None:
        return _autograd_jet(module, jet)
    raise JetUnsupported(refusal_message([f"{type(module).__name__} has no forward-mode rule"]))


def refusal_message(gaps: list[str]) -> str:
    """One paragraph: what a jet cannot pass (three gaps shown, the rest counted), the fix."""
    shown = "; ".join(gaps[:3]) + (f"; and {len(gaps) - 3} more" if len(gaps) > 3 else "")
    return (
        f"forward-mode derivatives (jets) cannot pass through this network: {shown}. Jets "
        "propagate exactly through KANLinear layers with elementwise bases (tanh-normalised "
        "polynomials, B-splines, radial bases), nn.Linear, elementwise activations and the "
        "KAN/MLP nets without LayerNorm or training-mode BatchNorm; use "
        "derivatives='autograd' (or 'auto', which falls back by itself) for this network."
    )


def jet_forward(net: nn.Module, x: torch.Tensor, second: Sequence[Sequence[int]] = ()) -> Jet:
    """``net``'s jet at the points ``x (N, d)``: value ``(N, C)``, gradient and the second
    derivatives ``second`` (pairs, e.g. ``[(0, 0), (1, 1)]``, or lists of pairs to sum,
    ``[[(0, 0), (1, 1)]]`` for a Laplacian in one row), exact and
    differentiable in the parameters. Raises :class:`JetUnsupported` naming every part
    of ``net`` it cannot pass (:func:`jet_gaps`)."""
    gaps = jet_gaps(net)
    if gaps:
        raise JetUnsupported(refusal_message(gaps))
    return propagate(net, Jet.input(x, second))


def _autograd_jet(fn: Callable[[torch.Tensor], torch.Tensor], jet: Jet) -> Jet:
    """Jet of a plain function of the input (a boundary lift, a distance) by autograd:
    one backward per output column and input, and per pair."""
    x = jet.value
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_()
        value = fn(x_in)
        grads = [_grad(value[:, c], x_in) for c in range(value.shape[1])]  # (N, d) each
        grad_rows = torch.stack(grads, dim=-1)  # (N, d, C)
        second_rows = None
        if jet.entries:
            second_rows = torch.stack(
                [
                    torch.stack(
                        [sum(_grad(grad[:, a], x_in)[:, b] for a, b in e) for e in jet.entries],
                        dim=1,
                    )
                    for grad in grads
                ],
                dim=-1,
            )
    return Jet(value, grad_rows, second_rows, jet.entries)


def _grad(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if not y.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(
        y.sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return grad


# ------------------------------------------------------------ the rules for layers
def _kan_linear(layer: KANLinear, jet: Jet) -> Jet:
    """The layer on a jet with its own coefficients (see the module docstring).

    Laid out points innermost: each order's ``K + 1`` functions come in two *pieces*, the
    basis' ``(K, I, N)`` planes and the base branch's ``(1, I, N)``, and the jet's rows
    are ``(I, rows, N)``, so every product of a basis derivative with a row
    (``Phi' dx_a``, ``Phi'' dx_a dx_b``, ``Phi' d2x``) is a contiguous elementwise
    operation broadcast over whole ``(I, N)`` planes. (Points outermost, ``(N, rows, K +
    1, I)``, broadcasts a row over ``K + 1`` runs of ``I`` numbers: on CPU several times
    the time per element, and the same again in the backward's reductions.) The
    coefficients are packed to match, ``(O, (K + 1) I)`` (a small copy); the value is
    one GEMM per piece and the ``d + m`` derivative rows one GEMM in all
    (:class:`_JetRows`); the outputs are ``(O, rows, N)`` tensors seen as the ``(N,
    rows, O)`` jet fields (transposed views: the next layer reads them in this layout
    without a copy; the polynomial and B-spline ``_derivatives`` compute in their input's
    memory order and so keep it).
    """
    x = jet.value
    layer._check_input(x)
    weight, base_weight = layer._coefficients()  # (O, I, K), (O, I)
    orders = [t.permute(2, 1, 0) for t in layer.basis.derivatives(x, 2 if jet.entries else 1)]
    pieces = [[t.to(weight.dtype)] for t in orders]  # per order: [(K, I, N)]
    if layer.activation is not None:
        weight = torch.cat([weight, base_weight.unsqueeze(-1)], dim=-1)
        base = layer.activation.derivatives(x)[: len(pieces)]
        for order, b in zip(pieces, base, strict=True):
            order.append(b.t().unsqueeze(0).to(weight.dtype))  # (1, I, N)
    weight = weight.permute(0, 2, 1)  # (O, K + 1, I)
    packed = weight.reshape(weight.shape[0], -1)  # (O, (K + 1) I)
    value = _packed_value(packed, pieces[0], layer.bias)  # (N, O)
    grad = _feature_major_rows(jet)  # (I, d, N), or (I, d, 1) for the identity
    rows = jet.dim + len(jet.entries)
    if packed.shape[0] * rows < (rows - 2) * packed.shape[1] // x.shape[1]:
        return _narrow_kan_linear(value, pieces, weight, grad, jet)
    pairs = second = None
    if jet.entries:
        pairs = _pair_sums(grad, jet.entries, 1)  # (I, m, N)
        if jet.second_rows is not None:
            second = jet.second_rows.permute(2, 1, 0)
    slopes, curvatures = pieces[1], pieces[2] if jet.entries else [None] * len(pieces[1])
    base_slope, base_curvature = (slopes[1], curvatures[1]) if len(slopes) > 1 else (None, None)
    out = _JetRows.apply(
        packed, slopes[0], base_slope, curvatures[0], base_curvature, grad, pairs, second
    )  # (O, d + m, N)
    second_rows = out[:, jet.dim :].permute(2, 1, 0) if jet.entries else None
    return Jet(value, out[:, : jet.dim].permute(2, 1, 0), second_rows, jet.entries)


def _feature_major_rows(jet: Jet) -> torch.Tensor:
    """The jet's gradient rows as ``(I, d, N)``; the input's identity as ``(d, d, 1)``."""
    if jet.grad_rows is None:
        return torch.eye(jet.dim, dtype=jet.value.dtype, device=jet.value.device).unsqueeze(-1)
    return jet.grad_rows.permute(2, 1, 0)


def _packed_value(
    packed: torch.Tensor, pieces: list[torch.Tensor], bias: torch.Tensor | None
) -> torch.Tensor:
    """``packed (O, (K + 1) I)`` times the value pieces ``(k_p, I, N)`` (spline, base),
    plus ``bias``: one GEMM per piece (no concatenated copy), ``(N, O)``."""
    out, start = None, 0
    for piece in pieces:
        columns = packed[:, start : start + piece.shape[0] * piece.shape[1]]
        start += columns.shape[1]
        flat = piece.reshape(columns.shape[1], -1)
        if out is None:
            out = columns @ flat if bias is None else torch.addmm(bias.unsqueeze(-1), columns, flat)
        else:
            out = torch.addmm(out, columns, flat)
    return out.t()


class _JetRows(torch.autograd.Function):
    """A wide layer's ``d + m`` derivative rows in one GEMM: ``packed (O, (K + 1) I)``
    times ``[Phi' dx_a | Phi'' sum dx_a dx_b + Phi' d2x]`` stacked ``(K + 1, I, d + m,
    N)`` (:func:`_stacked_rows`): ``(O, d + m, N)``.

    Inputs: ``packed``, the slopes ``(K, I, N)`` and the base branch's ``(1, I, N)`` (or
    ``None``), the curvatures likewise (``None`` without entries), the rows ``grad (I,
    d, N)``, ``pairs`` and ``second (I, m, N)`` (``None``: no entries / no second rows).

    Why by hand: autograd's backward of the broadcast products materialises each
    product's full ``(K + 1, I, r, N)`` gradient twice before summing it down to the
    factor's shape; here the factors' gradients are accumulated directly (one
    multiply-add per row or per basis function), the forward writes the products
    straight into the stacked rows, and both orders share one weight-gradient GEMM.
    The backward is differentiable (a double backward: gPINN's gradient of the residual
    in ``x``): it then rebuilds the stacked rows with their graph.
    """

    @staticmethod
    def forward(ctx, packed, slope, base_slope, curvature, base_curvature, grad, pairs, second):
        parts = _parts(slope, base_slope, curvature, base_curvature)
        rows = _stacked_rows(parts, grad, pairs, second)
        out = packed @ rows.view(packed.shape[1], -1)
        ctx.save_for_backward(
            packed, rows, slope, base_slope, curvature, base_curvature, grad, pairs, second
        )
        return out.view(packed.shape[0], rows.shape[2], -1)

    @staticmethod
    def backward(ctx, d_out):
        packed, rows, slope, base_slope, curvature, base_curvature, grad, pairs, second = (
            ctx.saved_tensors
        )
        needs = ctx.needs_input_grad
        parts = _parts(slope, base_slope, curvature, base_curvature)
        if torch.is_grad_enabled():  # create_graph: the rows with their graph
            rows = _stacked_rows(parts, grad, pairs, second)
        d_flat = d_out.reshape(packed.shape[0], -1)  # (O, (d + m) N)
        d_rows = (packed.t() @ d_flat).view(rows.shape)  # (K + 1, I, d + m, N)
        d = grad.shape[1]
        slope_factors = list(grad.unbind(1)) + ([] if second is None else list(second.unbind(1)))
        grads: list[torch.Tensor | None] = [None] * 8
        if needs[0]:
            grads[0] = d_flat @ rows.view(packed.shape[1], -1).t()
        start = 0
        for index, (slope_part, _) in enumerate(parts):
            d_part = d_rows[start : start + slope_part.shape[0]]
            start += slope_part.shape[0]
            if needs[1 + index]:
                grads[1 + index] = _sum_of_products(
                    zip(d_part[:, :, : len(slope_factors)].unbind(2), slope_factors, strict=True)
                )
            if pairs is not None and needs[3 + index]:
                grads[3 + index] = _sum_of_products(
                    zip(d_part[:, :, d:].unbind(2), pairs.unbind(1), strict=True)
                )
        # the rows' gradients: sums over the K + 1 functions of each piece
        slope_planes = [plane.unsqueeze(1) for s, _ in parts for plane in s]  # (I, 1, N)
        if needs[5]:
            grads[5] = _sum_of_products(zip(d_rows[:, :, :d], slope_planes, strict=True))
        if pairs is not None:
            if needs[6]:
                curvature_planes = [plane.unsqueeze(1) for _, c in parts for plane in c]
                grads[6] = _sum_of_products(zip(d_rows[:, :, d:], curvature_planes, strict=True))
            if second is not None and needs[7]:
                grads[7] = _sum_of_products(zip(d_rows[:, :, d:], slope_planes, strict=True))
        return tuple(grads)


def _parts(
    slope: torch.Tensor,
    base_slope: torch.Tensor | None,
    curvature: torch.Tensor | None,
    base_curvature: torch.Tensor | None,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(slope, curvature)`` of each piece of a block: the spline's, the base branch's."""
    parts = [(slope, curvature)]
    return parts if base_slope is None else [*parts, (base_slope, base_curvature)]


def _stacked_rows(
    parts: list[tuple[torch.Tensor, torch.Tensor | None]],
    grad: torch.Tensor,
    pairs: torch.Tensor | None,
    second: torch.Tensor | None,
) -> torch.Tensor:
    """``(K + 1, I, d + m, N)``: ``Phi' dx_a`` and ``Phi'' sum dx_a dx_b + Phi' d2x`` of
    the pieces ``(slope, curvature)`` (``(k_p, I, N)`` each) and the rows ``grad (I, d,
    N)``, ``pairs``, ``second (I, m, N)``. Written in place into one buffer: the products
    go straight into it without grad mode (the forward) and through a temporary that
    autograd records with it (a double backward)."""
    d, m = grad.shape[1], 0 if pairs is None else pairs.shape[1]
    first = parts[0][0]
    functions = sum(slope.shape[0] for slope, _ in parts)
    rows = first.new_empty(functions, first.shape[1], d + m, first.shape[2])
    start = 0
    for slope, curvature in parts:
        block = rows[start : start + slope.shape[0]]
        start += slope.shape[0]
        _product_into(block[:, :, :d], slope.unsqueeze(2), grad)
        if pairs is not None:
            _product_into(block[:, :, d:], curvature.unsqueeze(2), pairs)
            if second is not None:
                block[:, :, d:].addcmul_(slope.unsqueeze(2), second)
    return rows


def _product_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``out[...] = a * b``: straight into ``out`` without grad mode; with it through a
    temporary, since autograd records ``copy_`` but not ``out=``."""
    if torch.is_grad_enabled():
        out.copy_(a * b)
    else:
        torch.mul(a, b, out=out)


def _sum_of_products(factors) -> torch.Tensor:
    """``sum a * b`` over the pairs ``(a, b)`` of ``factors``, one multiply-add each."""
    total = None
    for a, b in factors:
        total = a * b if total is None else torch.addcmul(total, a, b)
    return total


def _narrow_kan_linear(
    value: torch.Tensor,
    pieces: list[list[torch.Tensor]],
    weight: torch.Tensor,
    grad: torch.Tensor,
    jet: Jet,
) -> Jet:
    """The same sums for a layer with few outputs (the output layer): each edge's slope
    and curvature ``sum_k W[o, k, i] Phi^(j)[k, i, n]`` first, ``(I, O, N)``, then the
    input rows; less memory traffic than ``d + m`` rows of ``K + 1`` functions when
    ``O (d + m) < (d + m - 2)(K + 1)``."""
    per_input = weight.permute(2, 0, 1)  # (I, O, K + 1)

    def edges(order: list[torch.Tensor]) -> torch.Tensor:  # (I, O, 1, N)
        block = order[0] if len(order) == 1 else torch.cat(order)
        return (per_input @ block.transpose(0, 1)).unsqueeze(2)

    slope = edges(pieces[1])
    grad_rows = (slope * grad.unsqueeze(1)).sum(0).permute(2, 1, 0)  # (N, d, O)
    second = None
    if jet.entries:
        pairs = _pair_sums(grad, jet.entries, 1).unsqueeze(1)  # (I, 1, m, N)
        second = (edges(pieces[2]) * pairs).sum(0)
        if jet.second_rows is not None:
            second = second + (slope * jet.second_rows.permute(2, 1, 0).unsqueeze(1)).sum(0)
        second = second.permute(2, 1, 0)  # (N, m, O)
    return Jet(value, grad_rows, second, jet.entries)


def _kan_linear_gaps(layer: KANLinear) -> list[str]:
    gaps = []
    if type(layer).forward is not KANLinear.forward:
        gaps.append("overrides KANLinear.forward, which a jet would not follow")
    if layer.symbolic is not None:
        gaps.append("has symbolic edges (fix_symbolic), whose derivatives jets do not carry")
    if not layer.basis.elementwise:
        gaps.append(
            f"has a basis {layer.basis!r} that is not elementwise (e.g. normalization='minmax')"
        )
    if layer.activation is not None and not layer.activation.elementwise:
        gaps.append(
            f"has a base activation {layer.activation!r} not known to be elementwise (a "
            "name, or a torch activation module such as nn.SiLU or nn.PReLU)"
        )
    return gaps


def _linear(layer: nn.Linear, jet: Jet) -> Jet:
    value = F.linear(jet.value, layer.weight, layer.bias)
    if jet.grad_rows is None:  # identity in: the rows are the weight's columns
        grad_rows = layer.weight.t().expand(value.shape[0], -1, -1)
    else:
        grad_rows = F.linear(jet.grad_rows, layer.weight)
    second = None if jet.second_rows is None else F.linear(jet.second_rows, layer.weight)
    return Jet(value, grad_rows, second, jet.entries)


def _elementwise(module: nn.Module, jet: Jet) -> Jet:
    return jet.map(*elementwise_derivatives(module, jet.value))


def _sequential(module: nn.Sequential, jet: Jet) -> Jet:
    for child in module:
        jet = propagate(child, jet)
    return jet


def _batch_norm(module: nn.BatchNorm1d, jet: Jet) -> Jet:
    """Inference-mode batch norm is a per-feature affine map ``scale * u + shift``."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight
    shift = -module.running_mean * scale
    if module.bias is not None:
        shift = shift + module.bias
    second = None if jet.second_rows is None else jet.second_rows * scale
    return Jet(jet.value * scale + shift, jet.gradient_rows() * scale, second, jet.entries)


def _batch_norm_gaps(module: nn.BatchNorm1d) -> list[str]:
    if module.training or module.running_mean is None:
        return ["normalises with batch statistics (training mode), coupling the points"]
    return []


register_jet_rule(KANLinear, _kan_linear, _kan_linear_gaps)
register_jet_rule(nn.Linear, _linear)
register_jet_rule(nn.Sequential, _sequential)
register_jet_rule(nn.BatchNorm1d, _batch_norm, _batch_norm_gaps)
for _module_type in ELEMENTWISE_MODULES:
    register_jet_rule(_module_type, _elementwise)
