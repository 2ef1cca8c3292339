"""Symbolic edges for a dense :class:`KAN` (pykan's ``suggest_symbolic``, ``fix_symbolic``,
``auto_symbolic``, ``symbolic_formula``), fitted robustly and exactly.

**Fitting** ``y ~ c * f(a * x + b) + d`` on an edge's samples (its input ``x``, the layer
input from ``net._layer_inputs``, and its output ``y`` from ``layer.edge_activations``),
in float64 for every candidate ``f`` of the library
(:mod:`lightning_kan.layers.symbolic`):

1. ``x`` is standardised to ``z`` (mean 0, std 1; a constant input gives ``z = 0``), so
   the search is the same for every scale of hidden activations.
2. A 41 x 41 grid of ``(a, b)`` over ``[-10, 10]^2`` (in ``z``) on up to 256 samples (the
   sorted samples, evenly strided), with ``c, d`` in closed form at every point (least
   squares: ``c = cov(g, y) / var(g)``, ``d = mean(y) - c mean(g)``, and ``c = 0`` when
   ``var(g) <= 1e-20 mean(g^2)``, so nothing is divided by zero). A point is eligible only
   if ``a * z + b`` stays inside ``f``'s domain on the whole sample range and ``f`` is
   finite there. One matrix product per input gives all edges that read it.
3. The 3 best local maxima of the grid's R^2 start a Levenberg-Marquardt refinement of all
   four constants on all samples (steps that leave the domain are rejected), batched over
   every edge and start.
4. The constants are mapped back to ``x`` and put in the function's canonical form (for
   example ``a > 0`` for odd and even ``f``, ``-pi/2 <= b <= pi/2`` for sin and cos,
   ``a = 1`` for powers, ``b = 0`` for exp; see ``SymbolicFunction.canonical``), which
   does not change the edge's values; R^2 = ``1 - SS_res / SS_tot`` is measured there.
   Samples that are constant (``SS_tot <= 1e-20 sum y^2``) have R^2 = 1 for every fit.

**Ranking** (pykan's ``weight_simple`` idea): ``score = (1 - w) * bits - w * complexity``
with ``bits = -log2(1 - R^2 + 1e-5)`` (how many halvings of the unexplained variance,
saturating at about 16.6) and ``w = weight_simple`` (0.8, pykan's default: one unit of
complexity is worth 4 bits, i.e. a 16 times smaller unexplained variance). Higher is
better; scores within 1e-6 of each other count as equal and the earlier library entry
wins (sin before cos, whose shifted fit is the same curve). Note that ``"0"`` (a constant,
complexity 0) beats a complexity-k fit whose R^2 is below ``1 - 2**(-4 k)``: prune weak
edges first, or raise ``r2_threshold`` / lower ``weight_simple``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lightning_kan.bases.base import is_finite_number
from lightning_kan.interpret.scores import check_kan
from lightning_kan.layers.masks import edge_mask, set_edge_mask
from lightning_kan.layers.symbolic import (
    SymbolicFunction,
    available_symbolic,
    get_symbolic,
    symbolic_edges,
)
from lightning_kan.nets import KAN

__all__ = [
    "SymbolicFit",
    "auto_symbolic",
    "fix_symbolic",
    "import_sympy",
    "suggest_symbolic",
    "symbolic_formula",
    "unfix_symbolic",
]

_GRID_SIZE = 41
_GRID_RANGE = 10.0
_GRID_SAMPLES = 128
_FIT_SAMPLES = 128
_STARTS = 3
_LM_STEPS = 50
_TIE = 1e-6
_CONSTANT = 1e-20  # relative variance below which samples or f values count as constant


def import_sympy(caller: str) -> Any:
    """The ``sympy`` module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("sympy")
    except ImportError as error:
        raise ImportError(
            f"{caller} writes formulas with sympy, which is not installed; install it with "
            'pip install "lightning-kan[symbolic]" (or pip install sympy). Fitting and fixing '
            "symbolic edges (suggest_symbolic, fix_symbolic, auto_symbolic) work without it."
        ) from error


@dataclass(frozen=True)
class SymbolicFit:
    """One candidate for an edge: ``c * name(a * x + b) + d`` with its R^2 on the samples,
    the function's complexity and the ranking score (module docstring; ``None`` when no
    samples were given)."""

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float | None
    complexity: float
    score: float | None


# ------------------------------------------------------------------ argument checks
def _check_index(caller: str, name: str, value: object, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise ValueError(
            f"{caller}: {name}={value!r} is out of range; {what} has {size}, so pass an int "
            f"from 0 to {size - 1}"
        )
    return int(value)


def _check_edge(net: KAN, caller: str, layer: object, i: object, o: object):
    """``(layer index, KANLinear, i, o)`` after range checks."""
    index = _check_index(caller, "layer", layer, len(net.layers), "the network's layers list")
    module = net.layers[index]
    i = _check_index(caller, "i", i, module.in_features, f"layers[{index}]'s inputs (i)")
    o = _check_index(caller, "o", o, module.out_features, f"layers[{index}]'s outputs (o)")
    return index, module, i, o


def _check_weight_simple(value: object, caller: str) -> float:
    if isinstance(value, bool) or not is_finite_number(value) or not 0 <= value <= 1:  # type: ignore[operator]
        raise ValueError(
            f"{caller}: weight_simple must be a number in [0, 1] (0 ranks by R^2 only, pykan "
            f"uses 0.8), got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def _library(library: object, caller: str) -> list[SymbolicFunction]:
    if library is None:
        return [get_symbolic(name) for name in available_symbolic() if name != "0"]
    if isinstance(library, str) or not isinstance(library, Sequence) or not library:
        raise ValueError(
            f"{caller}: library must be a non-empty list of function names such as "
            f"['x', 'x^2', 'sin', 'exp'] (or None for the whole library), got {library!r}"
        )
    entries = [get_symbolic(name, caller) for name in library]
    return list({entry.name: entry for entry in entries}.values())


def _samples(net: KAN, x: object, caller: str) -> torch.Tensor:
    """``x`` as ``(N, widths[0])`` with ``N >= 2`` finite rows."""
    net._check_input(x)  # type: ignore[arg-type]  # tensor, real float, last dim = widths[0]
    samples = x.reshape(-1, net.widths[0])  # type: ignore[union-attr]
    if samples.shape[0] < 2 or not bool(torch.isfinite(samples).all()):
        raise ValueError(
            f"{caller} fits each edge on the samples x, which needs at least 2 finite rows, got "
            f"x of shape {tuple(x.shape)}{'' if samples.shape[0] < 2 else ' with NaN or inf'}; "  # type: ignore[union-attr]
            "pass a batch of training inputs (a few hundred rows is typical)"
        )
    return samples


@torch.no_grad()
def _layer_samples(net: KAN, index: int, samples: torch.Tensor, caller: str):
    """``(layer input (N, I), edge outputs (N, O, I))`` of ``layers[index]``, float64 on
    the CPU (the fit's tensors are small)."""
    for position, (layer, layer_input) in enumerate(net._layer_inputs(samples)):
        if position == index:
            edges = layer.edge_activations(layer_input)
            if not bool(torch.isfinite(edges).all()):
                raise ValueError(
                    f"{caller}: layers[{index}]'s edge outputs are not finite on x (NaN or "
                    "inf), so no function can be fitted; check the network and the samples"
                )
            return layer_input.double().cpu(), edges.double().cpu()
    raise AssertionError("unreachable: index was checked")


# ------------------------------------------------------------------------- fitting
def _least_squares(g: torch.Tensor, y: torch.Tensor):
    """Closed-form ``c, d`` of ``y ~ c g + d`` along the last axis (``c = 0`` where ``g``
    is constant)."""
    g_mean, y_mean = g.mean(-1, keepdim=True), y.mean(-1, keepdim=True)
    g_centred = g - g_mean
    variance = g_centred.square().mean(-1)
    covariance = (g_centred * (y - y_mean)).mean(-1)
    varies = variance > _CONSTANT * g.square().mean(-1)
    c = torch.where(varies, covariance / torch.where(varies, variance, 1.0), 0.0)
    return c, y_mean.squeeze(-1) - c * g_mean.squeeze(-1)


def _in_domain(entry: SymbolicFunction, a, b, lo, hi) -> torch.Tensor:
    """Whether ``a * x + b`` stays inside ``entry``'s domain for all ``lo <= x <= hi``."""
    ends = torch.stack([a * lo + b, a * hi + b])
    return entry.domain(ends.min(0).values, ends.max(0).values)


def _evaluate(entry: SymbolicFunction, a, b, x, lo, hi):
    """``f(a x + b) (R, N)`` and whether each row is inside the domain and finite."""
    u = a.unsqueeze(-1) * x + b.unsqueeze(-1)
    inside = _in_domain(entry, a, b, lo, hi)
    g = entry.fn(torch.where(inside.unsqueeze(-1), u, 0.0))
    inside = inside & torch.isfinite(g).all(-1)
    return torch.where(inside.unsqueeze(-1), g, 0.0), inside


class _Group:
    """The samples of one input ``x (N,)`` and the edges ``y (N, M)`` that read it, with
    ``z`` (``x`` standardised) on the grid and refinement subsets (sorted, evenly
    strided, so both ends of the range are in)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.mean = x.mean()
        spread = x.std(unbiased=False)
        self.std = spread if spread > 1e-12 * (self.mean.abs() + 1e-30) else torch.ones_like(spread)
        z = (x - self.mean) / self.std
        self.lo, self.hi = z.min(), z.max()
        order = torch.argsort(z)
        for name, count in (("grid", _GRID_SAMPLES), ("fit", _FIT_SAMPLES)):
            steps = torch.linspace(0, len(x) - 1, min(len(x), count), dtype=torch.float64)
            rows = order[steps.round().long()]
            setattr(self, f"{name}_z", z[rows])
            setattr(self, f"{name}_y", y[rows])


def _grid_starts(entry: SymbolicFunction, groups: list[_Group]) -> list[torch.Tensor]:
    """Per group, ``(M, S, 2)`` starting ``(a, b)`` (in ``z``; NaN where the grid has no
    eligible point): the best local maxima of the grid's R^2 for each of its edges."""
    a_axis, b_axis = entry.grid_axes(_GRID_RANGE, _GRID_SIZE)
    a, b = (t.flatten() for t in torch.meshgrid(a_axis, b_axis, indexing="ij"))  # (P,)
    z = torch.stack([group.grid_z for group in groups])[:, None, :]  # (G, 1, n)
    lo = torch.stack([group.lo for group in groups])[:, None]
    hi = torch.stack([group.hi for group in groups])[:, None]
    g, inside = _evaluate(entry, a, b, z, lo, hi)  # (G, P, n), (G, P)
    g_centred = g - g.mean(-1, keepdim=True)
    variance = g_centred.square().mean(-1)
    varies = inside & (variance > _CONSTANT * g.square().mean(-1))
    width = max(group.grid_y.shape[1] for group in groups)
    y = torch.stack([F.pad(group.grid_y, (0, width - group.grid_y.shape[1])) for group in groups])
    y_centred = y - y.mean(1, keepdim=True)  # (G, n, M)
    covariance = g_centred @ y_centred / z.shape[-1]  # (G, P, M)
    y_variance = y_centred.square().mean(1, keepdim=True).clamp_min(1e-300)
    r2 = covariance.square() / (torch.where(varies, variance, 1.0).unsqueeze(-1) * y_variance)
    r2 = torch.where(varies.unsqueeze(-1), r2, torch.where(inside, 0.0, -math.inf).unsqueeze(-1))
    grid = r2.transpose(1, 2).reshape(-1, 1, len(a_axis), len(b_axis))  # (G*M, 1, ., .)
    peaks = grid == F.max_pool2d(grid, 3, stride=1, padding=1)
    values, best = torch.where(peaks, grid, -math.inf).flatten(1).topk(min(_STARTS, len(a)), 1)
    if best.shape[1] < _STARTS:  # a one-point grid (x): repeat it
        values, best = values.expand(-1, _STARTS), best.expand(-1, _STARTS)
    starts = torch.stack([a[best], b[best]], dim=-1).where(
        values.isfinite().unsqueeze(-1), math.nan
    )
    starts = starts.view(len(groups), width, _STARTS, 2)
    return [starts[k, : group.grid_y.shape[1]] for k, group in enumerate(groups)]


def _with_slope(entry: SymbolicFunction, params, x, y, lo, hi):
    """Residual sums of squares (inf outside the domain), ``f(u)`` and ``f'(u)``."""
    a, b = params[:, 0], params[:, 1]
    u = (a[:, None] * x + b[:, None]).requires_grad_()
    with torch.enable_grad():
        g = entry.fn(u)
        slope = torch.autograd.grad(g.sum(), u)[0] if g.requires_grad else torch.zeros_like(u)
    g = g.detach()
    inside = _in_domain(entry, a, b, lo, hi) & torch.isfinite(g).all(-1)
    cost = (params[:, 2:3] * g + params[:, 3:4] - y).square().sum(-1)
    return torch.where(inside, cost, math.inf), g, slope


def _levenberg_marquardt(entry, params, x, y, lo, hi):
    """Refine ``params (R, 4) = [a, b, c, d]`` of ``y (R, N) ~ c f(a x + b) + d``; returns
    the parameters and the residual sums of squares (inf where never eligible). A row
    leaves the batch once 5 steps improved it by less than 1e-6 (relative)."""
    best_params, best_cost = params.clone(), torch.full((len(params),), math.inf, dtype=x.dtype)
    rows = torch.arange(len(params))
    current, g, slope = _with_slope(entry, params, x, y, lo, hi)
    reference, floor = current, 1e-28 * y.square().sum(-1)
    damping = torch.full_like(current, 1e-3)
    for step in range(_LM_STEPS):
        c = params[:, 2:3]
        residual = c * g + params[:, 3:4] - y
        jacobian = torch.stack([c * slope * x, c * slope, g, torch.ones_like(g)], -1)
        jacobian = torch.nan_to_num(jacobian, nan=0.0, posinf=0.0, neginf=0.0)
        normal = jacobian.transpose(1, 2) @ jacobian  # (R, 4, 4)
        diagonal = normal.diagonal(dim1=1, dim2=2)
        scale = damping[:, None] * diagonal + 1e-12 * diagonal.amax(-1, keepdim=True) + 1e-300
        gradient = (jacobian.transpose(1, 2) @ residual.unsqueeze(-1)).squeeze(-1)
        delta = torch.linalg.solve_ex(normal + torch.diag_embed(scale), -gradient)[0]
        trial = params + torch.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
        trial_cost, trial_g, trial_slope = _with_slope(entry, trial, x, y, lo, hi)
        better = trial_cost < current
        params = torch.where(better[:, None], trial, params)
        current = torch.where(better, trial_cost, current)
        g = torch.where(better[:, None], trial_g, g)
        slope = torch.where(better[:, None], trial_slope, slope)
        damping = torch.where(better, damping * 0.3, damping * 10.0).clamp(1e-12, 1e12)
        if step % 5 == 4 or step == _LM_STEPS - 1:
            going = ((reference - current) > 1e-6 * reference + floor) & current.isfinite()
            best_params[rows], best_cost[rows] = params, current
            if not bool(going.any()):
                break
            rows, params, current, g, slope, damping, floor, x, y, lo, hi = (
                t[going] for t in (rows, params, current, g, slope, damping, floor, x, y, lo, hi)
            )
            reference = current
    return best_params, best_cost


def _r2(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """R^2 along the last axis; 1 for constant samples fitted exactly (module docstring)."""
    total = (y - y.mean(-1, keepdim=True)).square().sum(-1)
    residual = (prediction - y).square().sum(-1)
    tolerance = _CONSTANT * y.square().sum(-1)
    constant = total <= tolerance
    ratio = residual / torch.where(constant, 1.0, total)
    return torch.where(constant, (residual <= tolerance).double(), (1.0 - ratio).clamp_min(0.0))


@contextlib.contextmanager
def _one_thread():
    """Run the fit on one intra-op thread: its tensors are small, so threads only add
    synchronisation (on a busy 2-core machine two threads made it 30 times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@_one_thread()
def _fit_function(entry: SymbolicFunction, groups: list[_Group]):
    """For each group, ``(M, 4)`` canonical constants in ``x`` and ``(M,)`` R^2 on all its
    samples (NaN where ``entry`` cannot represent the edge on its sample range)."""
    starts, xs, ys, los, his = [], [], [], [], []
    for group, group_starts in zip(groups, _grid_starts(entry, groups), strict=True):
        a, b = group_starts.reshape(-1, 2).unbind(-1)  # M*S starts
        y = group.fit_y.T.repeat_interleave(_STARTS, 0)  # (M*S, n)
        g, _ = _evaluate(entry, a.nan_to_num(), b.nan_to_num(), group.fit_z, group.lo, group.hi)
        starts.append(torch.stack([a, b, *_least_squares(g, y)], -1).nan_to_num())
        xs.append(group.fit_z.expand(len(y), -1))
        ys.append(y)
        los.append(group.lo.expand(len(y)))
        his.append(group.hi.expand(len(y)))
    params, cost = _levenberg_marquardt(
        entry, torch.cat(starts), torch.cat(xs), torch.cat(ys), torch.cat(los), torch.cat(his)
    )
    results = []
    counts = [len(s) for s in starts]
    for group, params_g, cost_g in zip(
        groups, params.split(counts), cost.split(counts), strict=True
    ):
        cost_g = cost_g.view(-1, _STARTS)
        chosen = params_g.view(-1, _STARTS, 4)[torch.arange(len(cost_g)), cost_g.argmin(1)]
        std, mean = float(group.std), float(group.mean)
        constants = torch.tensor(
            [
                entry.canonicalize(a / std, b - a * mean / std, c, d)
                for a, b, c, d in chosen.tolist()
            ],
            dtype=torch.float64,
        ).view(-1, 4)  # z = (x - mean) / std
        a, b, c, d = constants.unbind(-1)
        g, inside = _evaluate(entry, a, b, group.x, group.x.min(), group.x.max())
        r2 = _r2(c[:, None] * g + d[:, None], group.y.T)
        eligible = inside & torch.isfinite(cost_g.min(1).values)
        results.append((constants, torch.where(eligible, r2, math.nan)))
    return results


def _rank(fits: list[SymbolicFit]) -> list[SymbolicFit]:
    """Best first; scores within ``_TIE`` of a better one keep the library order."""
    order = sorted(range(len(fits)), key=lambda k: -fits[k].score)  # type: ignore[operator]
    ranked: list[list[int]] = []
    for k in order:
        if ranked and fits[ranked[-1][0]].score - fits[k].score <= _TIE:  # type: ignore[operator]
            ranked[-1].append(k)
        else:
            ranked.append([k])
    return [fits[k] for bucket in ranked for k in sorted(bucket)]


def _fit_edges(groups, library, weight_simple):
    """For each group and edge column, the eligible candidates ranked (best first)."""
    per_function = [_fit_function(entry, groups) for entry in library]
    ranked = []
    for position, group in enumerate(groups):
        columns = []
        for column in range(group.y.shape[1]):
            fits = []
            for entry, results in zip(library, per_function, strict=True):
                constants, r2 = results[position]
                value = float(r2[column])
                if math.isfinite(value):
                    fits.append(_record(entry, constants[column].tolist(), value, weight_simple))
            columns.append(_rank(fits))
        ranked.append(columns)
    return ranked


def _record(entry: SymbolicFunction, constants, r2: float | None, weight_simple: float):
    score = None
    if r2 is not None:
        bits = -math.log2(max(1.0 - r2, 0.0) + 1e-5)
        score = (1.0 - weight_simple) * bits - weight_simple * entry.complexity
    return SymbolicFit(entry.name, *map(float, constants), r2, entry.complexity, score)


# ------------------------------------------------------------------------- public API
def suggest_symbolic(
    net: KAN,
    layer: int,
    i: int,
    o: int,
    x: torch.Tensor,
    library: Sequence[str] | None = None,
    top_k: int = 5,
    weight_simple: float = 0.8,
) -> list[SymbolicFit]:
    """The ``top_k`` best functions for edge ``i -> o`` of ``net.layers[layer]`` on the
    samples ``x (N, widths[0])``, best first (fitting and ranking: module docstring).

    Only candidates that can represent the edge are listed: ``a * x + b`` inside their
    domain on the whole sample range and finite values. ``o`` counts the layer's outputs
    (with multiplication nodes, its subnodes).
    """
    caller = "suggest_symbolic"
    kan = check_kan(net, caller)
    index, _, i, o = _check_edge(kan, caller, layer, i, o)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"{caller}: top_k must be a positive int, got {top_k!r}")
    weight = _check_weight_simple(weight_simple, caller)
    entries = _library(library, caller)
    inputs, edges = _layer_samples(kan, index, _samples(kan, x, caller), caller)
    (columns,) = _fit_edges([_Group(inputs[:, i], edges[:, o, i : i + 1])], entries, weight)
    return columns[0][:top_k]


def fix_symbolic(
    net: KAN,
    layer: int,
    i: int,
    o: int,
    name: str,
    x: torch.Tensor | None = None,
    fit: bool = True,
    params: Sequence[float] | None = None,
) -> SymbolicFit:
    """Replace edge ``i -> o`` of ``net.layers[layer]`` by ``c * name(a * x + b) + d``, in
    place; its numeric part is cut (``set_edge_mask``). Returns the constants used.

    With samples ``x`` and ``fit`` the constants are fitted to the edge (module
    docstring); otherwise they are ``params = [a, b, c, d]`` (default ``[1, 0, 1, 0]``),
    and R^2 is measured on ``x`` when given. ``a, b, c, d`` stay trainable
    (``layer.symbolic.affine``; build the optimizer after fixing).
    """
    caller = "fix_symbolic"
    kan = check_kan(net, caller)
    index, module, i, o = _check_edge(kan, caller, layer, i, o)
    entry = get_symbolic(name, caller)
    if x is not None and fit and params is not None:
        raise ValueError(
            f"{caller}: got both samples x with fit=True (fit the constants) and params "
            f"{list(params)!r}; pass fit=False to use params as given"
        )
    constants = (1.0, 0.0, 1.0, 0.0) if params is None else _check_params(params, caller)
    r2 = None
    if x is not None:
        inputs, edges = _layer_samples(kan, index, _samples(kan, x, caller), caller)
        group = _Group(inputs[:, i], edges[:, o, i : i + 1])
        if fit:
            ((fitted, fitted_r2),) = _fit_function(entry, [group])
            r2 = float(fitted_r2[0])
            constants = tuple(fitted[0].tolist())
            if not math.isfinite(r2):
                raise ValueError(_outside(caller, entry, index, i, o, group.x))
        else:
            a, b, c, d = (torch.tensor([v], dtype=torch.float64) for v in constants)
            g, inside = _evaluate(entry, a, b, group.x, group.x.min(), group.x.max())
            if not bool(inside[0]):
                raise ValueError(_outside(caller, entry, index, i, o, group.x, constants))
            r2 = float(_r2(c[:, None] * g + d[:, None], group.y.T)[0])
    _set_edges(module, [(o, i, entry.name, constants)])
    return _record(entry, constants, r2, 0.8)


def _check_params(params: object, caller: str) -> tuple[float, float, float, float]:
    try:
        values = [float(v) for v in params]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{caller}: params must be 4 finite numbers [a, b, c, d] (edge = c * f(a * x + b) "
            f"+ d), got {params!r}"
        )
    return values[0], values[1], values[2], values[3]


def _outside(caller, entry, index, i, o, x, constants=None) -> str:
    where = (
        f"a*x+b = {constants[0]:g}*x+{constants[1]:g} leaves"
        if constants
        else "no a*x+b of the search stays inside"
    )
    return (
        f"{caller}: {entry.name!r} cannot represent edge i={i} -> o={o} of layers[{index}]: "
        f"{where} its domain {entry.domain} (with finite values) on the samples' range "
        f"[{float(x.min()):.6g}, {float(x.max()):.6g}]; choose another function "
        "(suggest_symbolic lists those that fit) or other params"
    )


def _set_edges(module, edges) -> None:
    """Make ``edges [(o, i, name, constants)]`` symbolic and cut their numeric parts."""
    symbolic = symbolic_edges(module)
    keep = edge_mask(module).clone()
    for o, i, name, constants in edges:
        symbolic.set_edge(o, i, name, constants)
        keep[o, i] = False
    set_edge_mask(module, keep)


def unfix_symbolic(net: KAN, layer: int, i: int, o: int) -> None:
    """Undo :func:`fix_symbolic` on edge ``i -> o``: the symbolic edge is cleared and the
    numeric edge (its coefficients were kept under the mask) is back."""
    caller = "unfix_symbolic"
    kan = check_kan(net, caller)
    index, module, i, o = _check_edge(kan, caller, layer, i, o)
    if module.symbolic is None or not bool(module.symbolic.active[o, i]):
        raise ValueError(
            f"{caller}: edge i={i} -> o={o} of layers[{index}] is not symbolic; fix it first "
            "with fix_symbolic"
        )
    module.symbolic.clear_edge(o, i)
    keep = edge_mask(module).clone()
    keep[o, i] = True
    set_edge_mask(module, keep)


def auto_symbolic(
    net: KAN,
    x: torch.Tensor,
    library: Sequence[str] | None = None,
    r2_threshold: float = 0.0,
    weight_simple: float = 0.8,
) -> list[dict[str, Any]]:
    """Fix every kept numeric edge whose best candidate has R^2 >= ``r2_threshold``, in
    place, layer by layer (each layer on the inputs the layers fixed before it produce).

    Returns one row per edge that was considered (kept, not already symbolic), in order:
    ``{"layer", "i", "o", "name", "r2", "a", "b", "c", "d", "fixed"}`` (``name`` and the
    numbers are ``None`` where no candidate can represent the edge).
    """
    caller = "auto_symbolic"
    kan = check_kan(net, caller)
    if isinstance(r2_threshold, bool) or not is_finite_number(r2_threshold):
        raise ValueError(
            f"{caller}: r2_threshold must be a finite number (edges whose best R^2 is below "
            f"it stay numeric; 0 fixes every edge), got {r2_threshold!r}"
        )
    weight = _check_weight_simple(weight_simple, caller)
    entries = _library(library, caller)
    samples = _samples(kan, x, caller)
    table: list[dict[str, Any]] = []
    for index, module in enumerate(kan.layers):
        numeric = edge_mask(module).cpu()
        if module.symbolic is not None:
            numeric &= ~module.symbolic.active.cpu()
        inputs_used = [i for i in range(module.in_features) if bool(numeric[:, i].any())]
        if not inputs_used:
            continue
        inputs, edges = _layer_samples(kan, index, samples, caller)
        outputs = [torch.nonzero(numeric[:, i]).flatten() for i in inputs_used]
        groups = [
            _Group(inputs[:, i], edges[:, rows, i])
            for i, rows in zip(inputs_used, outputs, strict=True)
        ]
        fixes = []
        for i, rows, columns in zip(
            inputs_used, outputs, _fit_edges(groups, entries, weight), strict=True
        ):
            for o, ranked in zip(rows.tolist(), columns, strict=True):
                best = ranked[0] if ranked else None
                fixed = best is not None and best.r2 >= r2_threshold
                table.append(
                    {
                        "layer": index,
                        "i": i,
                        "o": o,
                        "name": None if best is None else best.name,
                        "r2": None if best is None else best.r2,
                        **{k: None if best is None else getattr(best, k) for k in "abcd"},
                        "fixed": fixed,
                    }
                )
                if fixed:
                    fixes.append((o, i, best.name, (best.a, best.b, best.c, best.d)))
        if fixes:
            _set_edges(module, fixes)
    return table


# --------------------------------------------------------------------------- formula
def round_constants(sympy, expression, digits: int):
    """Every float constant to ``digits`` significant digits (integers become exact)."""
    replacements = {}
    for number in expression.atoms(sympy.Float):
        value = float(f"{float(number):.{digits}g}")
        exact = value.is_integer() and abs(value) < 1e15
        replacements[number] = sympy.Integer(int(value)) if exact else sympy.Float(value, digits)
    return expression.xreplace(replacements)


def _variables(sympy, variables, width: int, caller: str):
    if variables is None:
        return [sympy.Symbol(f"x_{k + 1}") for k in range(width)]
    names = (
        list(variables)
        if isinstance(variables, Sequence) and not isinstance(variables, str)
        else None
    )
    if (
        names is None
        or len(names) != width
        or not all(isinstance(v, str | sympy.Symbol) for v in names)
    ):
        raise ValueError(
            f"{caller}: variables must list {width} names (str or sympy.Symbol), one per "
            f"input of the network, got {variables!r}"
        )
    symbols = [sympy.Symbol(v) if isinstance(v, str) else v for v in names]
    if len(set(symbols)) != width:
        raise ValueError(f"{caller}: variables must be distinct names, got {names!r}")
    return symbols


def _sympy_function(sympy, entry: SymbolicFunction, argument):
    if callable(entry.sympy_fn):
        return entry.sympy_fn(argument)
    placeholder = sympy.Symbol("x")
    return sympy.sympify(entry.sympy_fn, locals={"x": placeholder}).xreplace(
        {placeholder: argument}
    )


def symbolic_formula(
    net: KAN,
    variables: Sequence[Any] | None = None,
    simplify: bool = True,
    digits: int | None = 4,
) -> list[Any]:
    """The network as one sympy expression per output, in ``variables`` (``x_1 .. x_n``
    by default). Every kept edge must be symbolic (cut edges are 0); biases and
    multiplication nodes are included.

    ``digits`` rounds every float constant to that many significant digits (relative
    change at most ``0.5 * 10**(1 - digits)`` per constant; ``None`` keeps the float64
    values, so the formula evaluates to ``net(x)`` up to round-off); the composed formula
    is rounded once. ``simplify`` runs ``sympy.simplify`` on each node's expression in its
    inputs, rounded first (about a second per node; the roundings then compound over the
    layers), never on the composed formula, which sympy can take minutes on for a
    ``[4, 8, 8, 1]`` network; simplify the result yourself when it is small.
    """
    caller = "symbolic_formula"
    sympy = import_sympy(caller)
    kan = check_kan(net, caller)
    if digits is not None and (
        isinstance(digits, bool) or not isinstance(digits, int) or digits < 1
    ):
        raise ValueError(
            f"{caller}: digits must be a positive int (significant digits of the constants) or "
            f"None (no rounding), got {digits!r}"
        )
    if not isinstance(simplify, bool):
        raise TypeError(f"{caller}: simplify must be True or False, got {simplify!r}")
    values = _variables(sympy, variables, kan.widths[0], caller)
    numeric = []
    for index, module in enumerate(kan.layers):
        kept = edge_mask(module).cpu()
        if module.symbolic is not None:
            kept &= ~module.symbolic.active.cpu()
        numeric += [f"layers[{index}] i={i} -> o={o}" for o, i in torch.nonzero(kept).tolist()]
    if numeric:
        shown = ", ".join(numeric[:12]) + (
            f" and {len(numeric) - 12} more" if len(numeric) > 12 else ""
        )
        raise ValueError(
            f"{caller}: {len(numeric)} kept edges are still numeric (B-spline or other basis "
            f"functions, which have no closed form): {shown}. Make them symbolic with "
            "fix_symbolic or auto_symbolic (a lower r2_threshold fixes more), or cut them "
            "with prune first."
        )
    for index, module in enumerate(kan.layers):
        inputs = [sympy.Dummy(f"h{k}") for k in range(len(values))]  # this layer's inputs
        nodes = _layer_formula(sympy, kan, index, module, inputs)
        if simplify:  # rounded first: sympy simplifies short constants far faster
            if digits is not None:
                nodes = [round_constants(sympy, node, digits) for node in nodes]
            nodes = [sympy.simplify(node) for node in nodes]
        values = [node.xreplace(dict(zip(inputs, values, strict=True))) for node in nodes]
    return values if digits is None else [round_constants(sympy, value, digits) for value in values]


def _layer_formula(sympy, kan: KAN, index: int, module, inputs: list[Any]) -> list[Any]:
    """The nodes after ``layers[index]`` in its inputs: bias plus the symbolic edges of
    each output, then the multiplication nodes (``kan.subnodes``) of a hidden layer."""
    bias = module.bias.detach().tolist() if module.bias is not None else [0.0] * module.out_features
    terms: list[list[Any]] = [[sympy.Float(value)] for value in bias]
    symbolic = module.symbolic
    if symbolic is not None:
        affine = symbolic.affine.detach().double().cpu()
        for o, i in torch.nonzero(symbolic.active).tolist():
            a, b, c, d = (sympy.Float(value) for value in affine[o, i].tolist())
            entry = get_symbolic(symbolic.functions[int(symbolic.codes[o, i])])
            terms[o].append(c * _sympy_function(sympy, entry, a * inputs[i] + b) + d)
    outputs = [sympy.Add(*t) for t in terms]
    if index == len(kan.layers) - 1:
        return outputs
    return [sympy.Mul(*(outputs[k] for k in node)) for node in kan.subnodes(index + 1)]
