"""Forward-mode "jets": a network's value, input gradient and needed second derivatives
in one forward pass, for physics-informed losses.

A :class:`Jet` of a field ``u (N, C)`` over inputs ``x (N, d)`` holds ``u``, its gradient
rows ``du/dx_a`` and the second derivatives ``d2u/dx_a dx_b`` a problem asks for (a
pair ``(a, b)``, diagonal or mixed, or a sum of pairs such as the Laplacian in one row),
all as ``(N, rows, C)`` tensors. KAN edges are univariate, so a ``KANLinear`` layer maps
a jet exactly with the same coefficients as its forward, one GEMM for the values, one
for the gradient rows and one for the second-derivative rows::

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
        rows = self.grad_rows
        return torch.stack(
            [sum(rows[:, a] * rows[:, b] for a, b in entry) for entry in self.entries], dim=1
        )

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

    Each input's ``K`` basis values and its base branch form one ``K + 1`` block, laid out
    ``(..., K + 1, I)`` (inputs innermost, so broadcasting an input's derivative over its
    block is a contiguous operation); the coefficients are packed to match, ``(O, (K + 1)
    * I)`` (a small copy). Every order is then one tensor: ``Phi`` for the value,
    ``Phi' dx`` for the ``d`` gradient rows and ``Phi'' dx_a dx_b + Phi' d2x`` for the
    ``m`` second-derivative rows, each one GEMM with the packed coefficients.
    """
    x = jet.value
    layer._check_input(x)
    orders = [t.transpose(-1, -2) for t in layer.basis.derivatives(x, 2 if jet.entries else 1)]
    weight, base_weight = layer._coefficients()
    if layer.activation is not None:
        base = layer.activation.derivatives(x)[: len(orders)]
        orders = [torch.cat([t, b.unsqueeze(1)], dim=1) for t, b in zip(orders, base, strict=True)]
        weight = torch.cat([weight, base_weight.unsqueeze(-1)], dim=-1)
    weight = weight.transpose(1, 2)  # (O, K + 1, I)
    packed = weight.reshape(weight.shape[0], -1)  # (O, (K + 1) * I)
    dtype = packed.dtype
    orders = [t.to(dtype) for t in orders]
    value = F.linear(orders[0].flatten(-2), packed, layer.bias)
    rows = jet.dim + len(jet.entries)
    if packed.shape[0] * rows < (rows - 2) * orders[0].shape[-2]:
        return _narrow_kan_linear(value, orders, weight, jet)
    slope = orders[1].unsqueeze(1)  # (N, 1, K + 1, I)
    grad_rows = F.linear((slope * jet.gradient_rows().unsqueeze(2)).flatten(-2), packed)
    second = None
    if jet.entries:
        curvature = orders[2].unsqueeze(1) * jet.pair_products().unsqueeze(-2)
        if jet.second_rows is not None:
            curvature = curvature + slope * jet.second_rows.unsqueeze(2)
        rows = curvature.expand(x.shape[0], -1, -1, -1).flatten(-2)
        second = F.linear(rows, packed)  # (N, m, O)
    return Jet(value, grad_rows, second, jet.entries)


def _narrow_kan_linear(
    value: torch.Tensor, orders: list[torch.Tensor], weight: torch.Tensor, jet: Jet
) -> Jet:
    """The same sums for a layer with few outputs (the output layer): each edge's slope
    and curvature ``sum_k W[o, k, i] Phi^(j)[n, k, i]`` first, ``(N, O, I)``, then the
    input rows; less memory traffic than ``d + m`` rows of ``K + 1`` blocks when
    ``O (d + m) < (d + m - 2)(K + 1)``."""
    slope = (orders[1].unsqueeze(1) * weight).sum(2)  # (N, O, I)
    grad_rows = (slope.unsqueeze(1) * jet.gradient_rows().unsqueeze(2)).sum(-1)  # (N, d, O)
    second = None
    if jet.entries:
        curvature = (orders[2].unsqueeze(1) * weight).sum(2)
        second = (curvature.unsqueeze(1) * jet.pair_products().unsqueeze(-2)).sum(-1)
        if jet.second_rows is not None:
            second = second + (slope.unsqueeze(1) * jet.second_rows.unsqueeze(2)).sum(-1)
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
