"""Draw a KAN's learned edge functions: the picture that makes KANs interpretable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure as FigureType

__all__ = ["plot_edge_functions"]


@torch.no_grad()
def plot_edge_functions(
    net: torch.nn.Module, inputs: torch.Tensor, max_edges: int = 6, num_points: int = 200
) -> list[FigureType]:
    """One figure per layer: ``phi_{o,i}`` against its input over the range ``inputs`` reach.

    ``net`` is a network with ``layers`` of ``KANLinear`` (``KAN``) or a single
    ``KANLinear``; ``inputs (N, I)`` are real network inputs, propagated to find each
    layer's input range. Wide layers show their first ``max_edges`` inputs and outputs.
    Needs matplotlib (``pip install 'lightning-kan[plot]'``).
    """
    try:  # a bare Figure needs no pyplot and leaves the user's backend alone
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plotting edge functions needs matplotlib: pip install 'lightning-kan[plot]'"
        ) from error
    layers = list(getattr(net, "layers", [net]))
    if not all(hasattr(layer, "edge_activations") for layer in layers):
        raise TypeError(
            f"plot_edge_functions needs KANLinear layers; {type(net).__name__} has others"
        )
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
