"""Draw a KAN's learned edge functions: the picture that makes KANs interpretable."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from lightning_kan.atomic import atomic_open
from lightning_kan.protocols import SupportsEdgeFunctions, edge_function_layers, require

if TYPE_CHECKING:
    from matplotlib.figure import Figure as FigureType

__all__ = [
    "check_plottable",
    "figure_class",
    "plot_edge_functions",
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


@torch.no_grad()
def plot_edge_functions(
    net: torch.nn.Module, inputs: torch.Tensor, max_edges: int = 6, num_points: int = 200
) -> list[FigureType]:
    """One figure per layer: ``phi_{o,i}`` against its input over the range ``inputs`` reach.

    ``net`` is a network with ``layers`` of ``KANLinear`` (``KAN``) or a single
    ``KANLinear``; ``inputs (N, I)`` are real network inputs, propagated to find each
    layer's input range. Wide layers show their first ``max_edges`` inputs and outputs.
    Needs matplotlib (see :func:`figure_class`).
    """
    check_plottable(net)
    Figure = figure_class()
    layers = plotted_layers(net)
    figures = []
    hidden = inputs.reshape(-1, inputs.shape[-1])
    norms = list(getattr(net, "norms", []))
    for index, layer in enumerate(layers):
        if index > 0 and norms:
            hidden = norms[index - 1](hidden)
        low, high = hidden.amin(0), hidden.amax(0)
        steps = torch.linspace(0, 1, num_points, device=hidden.device, dtype=hidden.dtype)
        sweep = low + steps.unsqueeze(-1) * (high - low)  # (num_points, I)
        edges = layer.edge_activations(sweep).cpu()  # (num_points, O, I)
        outputs, inputs_shown = (
            min(layer.out_features, max_edges),
            min(layer.in_features, max_edges),
        )
        figure = Figure(figsize=(1.6 * inputs_shown, 1.2 * outputs))
        axes = figure.subplots(outputs, inputs_shown, squeeze=False)
        for o in range(outputs):
            for i in range(inputs_shown):
                axis = axes[o][i]
                axis.plot(sweep[:, i].cpu(), edges[:, o, i], linewidth=1.2)
                axis.set_xticks([])
                axis.set_yticks([])
                if o == 0:
                    axis.set_title(f"in {i}", fontsize=7)
                if i == 0:
                    axis.set_ylabel(f"out {o}", fontsize=7)
        figure.suptitle(f"layer {index}: {layer.in_features} -> {layer.out_features}", fontsize=9)
        figure.tight_layout()
        figures.append(figure)
        hidden = layer(hidden)
    return figures
