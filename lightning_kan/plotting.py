"""Draw a KAN's learned edge functions and its graph: the pictures that make KANs readable.

Both plots fade each edge by its attribution score (pykan's fading): the line's opacity
is ``alpha = tanh(beta * score)`` (:func:`fade`), with ``beta = 3`` as in pykan's
``plot``, so an edge of score ``atanh(0.5) / beta ~ 0.18`` is drawn at half opacity and
one of score ``>= 1`` almost opaque. Scores come from
:func:`lightning_kan.interpret.edge_scores`; without them every edge is opaque. Cut edges
(:mod:`lightning_kan.layers.masks`) are dashed and faint in the edge plots and left out
of the graph; symbolic edges (``layer.symbolic.active[o, i]``) are drawn in
:data:`SYMBOLIC_COLOR` with their formula.
"""

from __future__ import annotations

import math
import os
from numbers import Real
from typing import TYPE_CHECKING

import torch

from lightning_kan.atomic import atomic_open
from lightning_kan.layers.masks import edge_mask
from lightning_kan.protocols import SupportsEdgeFunctions, edge_function_layers, require

if TYPE_CHECKING:
    from matplotlib.figure import Figure as FigureType

__all__ = [
    "CUT_ALPHA",
    "EDGE_COLOR",
    "SYMBOLIC_COLOR",
    "check_plottable",
    "fade",
    "figure_class",
    "plot_edge_functions",
    "plot_graph",
    "plotted_layers",
    "save_figure",
]


def figure_class() -> type[FigureType]:
    """matplotlib's bare ``Figure`` (no pyplot: the user's backend is left alone).

    Raises ``ImportError`` with the install command when matplotlib cannot be imported;
    callers that can go on without plots (:class:`ActivationPlot`) turn it into a warning.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"plotting needs matplotlib, which could not be imported ({error}); install it "
            "with pip install matplotlib (a base dependency of lightning-kan)"
        ) from None
    return Figure


def save_figure(figure: FigureType, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write ``figure`` as a PNG at ``path`` atomically: a kill or an error mid-write
    leaves the previous file (or none), never a truncated one."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=dpi)


def plotted_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers :func:`plot_edge_functions` draws: ``net.layers``, or ``net`` itself."""
    return edge_function_layers(net)


def check_plottable(net: torch.nn.Module) -> None:
    """Raise :class:`~lightning_kan.protocols.CapabilityError` (a ``TypeError``) unless
    every layer of ``net`` can show its edge functions (``SupportsEdgeFunctions``)."""
    require(
        net,
        SupportsEdgeFunctions,
        caller="plotting edge functions",
        needs="a KAN or KANLinear, whose layers have edge_activations",
        where="the network",
        fix="Pass a KAN, a KANLinear or a network whose `layers` are KAN layers.",
    )


#: colour of symbolic edges; numeric edges are drawn in :data:`EDGE_COLOR`
SYMBOLIC_COLOR = "tab:red"
EDGE_COLOR = "black"
#: opacity of a cut edge's dashed line in the edge plots
CUT_ALPHA = 0.25
#: least height of an edge-plot figure, inches (240 px at the 100 dpi of the PNGs): a
#: one-row layer (a network's output layer) keeps room for its curves under the titles
MIN_FIGURE_HEIGHT = 2.4
_TICK_FONT = 6


def fade(score: float, beta: float = 3.0) -> float:
    """An edge's opacity from its score: ``tanh(beta * score)`` clipped to ``[0, 1]``."""
    return min(max(math.tanh(beta * float(score)), 0.0), 1.0)


def _check_beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, Real) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(
            f"beta must be a finite number > 0, got {beta!r}; an edge of score s is drawn "
            "with opacity tanh(beta * s) (pykan uses beta=3)"
        )
    return float(beta)


def _check_scores(layers: list[torch.nn.Module], scores: object) -> list[torch.Tensor] | None:
    """``scores`` (None, or one ``(O, I)`` tensor per layer) on the CPU, or an error."""
    if scores is None:
        return None
    expected = [(layer.out_features, layer.in_features) for layer in layers]
    got = [tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__ for s in scores]
    if got != expected:
        raise ValueError(
            f"scores must hold one tensor per layer with the layers' (out_features, "
            f"in_features) shapes {expected}, got {got}; pass "
            "lightning_kan.interpret.edge_scores(net, x), or None for unfaded edges"
        )
    return [s.detach().cpu() for s in scores]


def _symbolic(layer: torch.nn.Module, o: int, i: int) -> str | None:
    """The formula of edge ``(o, i)`` if it is symbolic, else None."""
    symbolic = getattr(layer, "symbolic", None)
    if symbolic is None or not bool(symbolic.active[o, i]):
        return None
    return symbolic.edge_label(o, i)


def _layer_inputs(net: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The input ``(N, I_l)`` of every plotted layer when the network sees ``inputs``."""
    hidden = inputs.reshape(-1, inputs.shape[-1])
    walk = getattr(net, "_layer_inputs", None)
    if callable(walk):  # a KAN: mult nodes and norms between its layers
        return [layer_input for _, layer_input in walk(hidden)]
    layer_inputs, norms = [], list(getattr(net, "norms", []))
    for index, layer in enumerate(plotted_layers(net)):  # a single layer, or plain layers
        if index > 0 and norms:
            hidden = norms[index - 1](hidden)
        layer_inputs.append(hidden)
        hidden = layer(hidden)
    return layer_inputs


def _ticks(axis, low: float, high: float, which: str) -> None:
    """Ticks at ``low`` and ``high`` (one if equal), labelled small, on ``which`` axis."""
    values = [low] if math.isclose(low, high, abs_tol=1e-12) else [low, high]
    setter = axis.set_xticks if which == "x" else axis.set_yticks
    ticks = setter(values, [f"{v:.3g}" for v in values], fontsize=_TICK_FONT)
    axis.tick_params(axis=which, length=2, pad=1)
    if len(ticks) == 2:  # keep both labels within the subplot's width or height
        if which == "x":
            ticks[0].label1.set_horizontalalignment("left")
            ticks[1].label1.set_horizontalalignment("right")
        else:
            ticks[0].label1.set_verticalalignment("bottom")
            ticks[1].label1.set_verticalalignment("top")


@torch.no_grad()
def plot_edge_functions(
    net: torch.nn.Module,
    inputs: torch.Tensor,
    max_edges: int = 6,
    num_points: int = 200,
    scores: list[torch.Tensor] | None = None,
    beta: float = 3.0,
) -> list[FigureType]:
    """One figure per layer: ``phi_{o,i}`` against its input over the range ``inputs`` reach.

    ``net`` is a network with ``layers`` of ``KANLinear`` (``KAN``) or a single
    ``KANLinear``; ``inputs (N, I)`` are real network inputs, propagated to find each
    layer's input range. Wide layers show their first ``max_edges`` inputs and outputs;
    a figure is at least :data:`MIN_FIGURE_HEIGHT` tall.
    Each subplot's ticks give the input range and the edge's output range. ``scores``
    (one ``(O, I)`` tensor per layer, e.g. ``edge_scores(net, inputs)``) set each curve's
    opacity to :func:`fade` ``(score, beta)``; cut edges are dashed at
    :data:`CUT_ALPHA`; symbolic edges are drawn in :data:`SYMBOLIC_COLOR` under their
    formula. Needs matplotlib (see :func:`figure_class`).
    """
    check_plottable(net)
    beta = _check_beta(beta)
    Figure = figure_class()
    layers = plotted_layers(net)
    scores = _check_scores(layers, scores)
    figures = []
    for index, (layer, hidden) in enumerate(zip(layers, _layer_inputs(net, inputs), strict=True)):
        low, high = hidden.amin(0), hidden.amax(0)
        steps = torch.linspace(0, 1, num_points, device=hidden.device, dtype=hidden.dtype)
        sweep = low + steps.unsqueeze(-1) * (high - low)  # (num_points, I)
        edges = layer.edge_activations(sweep).cpu()  # (num_points, O, I)
        kept = edge_mask(layer).cpu()
        outputs, inputs_shown = (
            min(layer.out_features, max_edges),
            min(layer.in_features, max_edges),
        )
        height = max(1.35 * outputs + 0.4, MIN_FIGURE_HEIGHT)
        figure = Figure(figsize=(1.7 * inputs_shown, height))
        axes = figure.subplots(outputs, inputs_shown, squeeze=False)
        for o in range(outputs):
            for i in range(inputs_shown):
                axis, curve = axes[o][i], edges[:, o, i]
                label = _symbolic(layer, o, i)
                style = {"linewidth": 1.2, "color": EDGE_COLOR, "alpha": 1.0}
                if label is not None:
                    style["color"] = SYMBOLIC_COLOR
                elif not bool(kept[o, i]):
                    style.update(linestyle="--", alpha=CUT_ALPHA)
                if scores is not None and (label is not None or bool(kept[o, i])):
                    style["alpha"] = fade(scores[index][o, i], beta)
                axis.plot(sweep[:, i].cpu(), curve, **style)
                _ticks(axis, float(low[i]), float(high[i]), "x")
                _ticks(axis, float(curve.min()), float(curve.max()), "y")
                title = f"in {i}" if o == 0 else ""
                if label is not None:
                    title = f"{title}\n{label}" if title else label
                    axis.set_title(title, fontsize=_TICK_FONT, color=SYMBOLIC_COLOR)
                elif title:
                    axis.set_title(title, fontsize=7)
                if i == 0:
                    axis.set_ylabel(f"out {o}", fontsize=7)
        figure.suptitle(f"layer {index}: {layer.in_features} -> {layer.out_features}", fontsize=9)
        figure.tight_layout()
        figures.append(figure)
    return figures


def _boundary_nodes(net: torch.nn.Module, layers: list[torch.nn.Module]) -> list[list[tuple]]:
    """For each boundary (inputs first), each node's subnodes: the outputs of the layer
    before it that the node reads (``net.subnodes``; ``(k,)`` for a plain node)."""
    nodes = [[(k,) for k in range(layers[0].in_features)]]
    subnodes = getattr(net, "subnodes", None)
    for boundary, layer in enumerate(layers, start=1):
        if callable(subnodes):
            nodes.append([tuple(s) for s in subnodes(boundary)])
        else:
            nodes.append([(k,) for k in range(layer.out_features)])
    return nodes


def _node_x(count: int) -> list[float]:
    """``count`` positions centred in ``[0, 1]``."""
    return [(k + 0.5) / count for k in range(count)]


def _draw_nodes(axis, nodes: list[list[tuple]]) -> None:
    """Sum nodes as white circles, mult nodes (2+ subnodes) as blue squares marked ``x``:
    one marker collection per kind (``gid`` ``"sum_nodes"`` / ``"mult_nodes"``)."""
    points: dict[str, list[tuple[float, int]]] = {"sum_nodes": [], "mult_nodes": []}
    for boundary, row in enumerate(nodes):
        for x, subs in zip(_node_x(len(row)), row, strict=True):
            points["mult_nodes" if len(subs) > 1 else "sum_nodes"].append((x, boundary))
    styles = {"sum_nodes": ("o", 60, "white"), "mult_nodes": ("s", 110, "tab:blue")}
    for kind, where in points.items():
        if not where:
            continue
        marker, size, face = styles[kind]
        xs, ys = zip(*where, strict=True)
        collection = axis.scatter(
            xs, ys, s=size, marker=marker, facecolor=face, edgecolor="tab:blue", zorder=2
        )
        collection.set_gid(kind)
    for x, y in points["mult_nodes"]:
        axis.text(x, y, "x", ha="center", va="center", color="white", fontsize=7, zorder=3)


@torch.no_grad()
def plot_graph(
    net: torch.nn.Module,
    inputs: torch.Tensor | None = None,
    scores: list[torch.Tensor] | None = None,
    beta: float = 3.0,
) -> FigureType:
    """The network diagram: a row of nodes per layer boundary (inputs at the bottom),
    each kept edge a line from its input node to the node it feeds.

    A line's opacity is :func:`fade` ``(score, beta)`` for ``scores`` (one ``(O, I)``
    tensor per layer, e.g. ``edge_scores(net, inputs)``; None: opaque); cut edges are
    left out; symbolic edges are drawn in :data:`SYMBOLIC_COLOR`. Sum nodes are circles,
    multiplication nodes (``net.subnodes``) squares marked ``x`` whose two factor edges
    arrive side by side. ``inputs (N, widths[0])``, if given, label each input node with
    its sample range. Each edge line has the ``gid`` ``"edge l o i"`` and the node
    markers ``"sum_nodes"`` / ``"mult_nodes"``, for reading the figure back.
    """
    check_plottable(net)
    beta = _check_beta(beta)
    Figure = figure_class()
    layers = plotted_layers(net)
    scores = _check_scores(layers, scores)
    nodes = _boundary_nodes(net, layers)
    widest = max(len(row) for row in nodes)
    figure = Figure(figsize=(max(3.0, 0.7 * widest + 1), 1.4 * len(layers) + 1))
    axis = figure.subplots()
    for index, layer in enumerate(layers):
        kept = edge_mask(layer).cpu()
        source_x, target_x = _node_x(len(nodes[index])), _node_x(len(nodes[index + 1]))
        spacing = 1.0 / len(nodes[index + 1])
        ends = {}  # subnode -> x where its edges arrive
        for node, subs in enumerate(nodes[index + 1]):
            for rank, sub in enumerate(subs):
                ends[sub] = target_x[node] + (rank - (len(subs) - 1) / 2) * 0.25 * spacing
        for o in range(layer.out_features):
            for i in range(layer.in_features):
                symbolic = _symbolic(layer, o, i) is not None
                if not (symbolic or bool(kept[o, i])):
                    continue
                alpha = 1.0 if scores is None else fade(scores[index][o, i], beta)
                axis.plot(
                    [source_x[i], ends[o]],
                    [index, index + 1],
                    color=SYMBOLIC_COLOR if symbolic else EDGE_COLOR,
                    alpha=alpha,
                    linewidth=1.0,
                    gid=f"edge {index} {o} {i}",
                    zorder=1,
                )
    _draw_nodes(axis, nodes)
    if inputs is not None:
        if inputs.dim() == 0 or inputs.shape[-1] != len(nodes[0]):
            raise ValueError(
                f"plot_graph: inputs must have the network's {len(nodes[0])} input features "
                f"in the last dimension, got shape {tuple(inputs.shape)}; pass the samples the "
                "network reads (or None for unlabelled input nodes)"
            )
        samples = inputs.reshape(-1, inputs.shape[-1])
        low, high = samples.amin(0), samples.amax(0)
        for i, x in enumerate(_node_x(len(nodes[0]))):
            axis.text(
                x,
                -0.18,
                f"x{i}\n[{float(low[i]):.3g}, {float(high[i]):.3g}]",
                ha="center",
                va="top",
                fontsize=6,
            )
    axis.set_xlim(0, 1)
    axis.set_ylim(-0.6, len(layers) + 0.3)
    axis.set_axis_off()
    widths = " -> ".join(str(len(row)) for row in nodes)
    axis.set_title(f"KAN graph {widths}", fontsize=9)
    figure.tight_layout()
    return figure
