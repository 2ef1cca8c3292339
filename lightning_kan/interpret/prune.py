"""``prune``: a smaller copy of a dense :class:`KAN` without its weak nodes and edges.

Hidden nodes whose :func:`~lightning_kan.interpret.node_scores` is below
``node_threshold`` are removed (the coefficient tensors sliced, the widths shrink); edges
whose :func:`~lightning_kan.interpret.edge_scores` is below ``edge_threshold`` are cut
by an :class:`EdgeMask` ``torch.nn.utils.parametrize`` parametrisation of the layer's
``weight`` and ``base_weight``. The mask is a buffer, so it is in the ``state_dict``
(``layers.<l>.parametrizations.weight.0.mask``; load it into a net pruned the same
way) and a cut edge stays exactly zero however the pruned network is trained. B-spline
grid moves refuse parametrised weights: refine or update grids before pruning.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.bases.base import is_finite_number
from lightning_kan.interpret.scores import attribution, check_kan
from lightning_kan.layers.masks import EdgeMask, edge_mask, set_edge_mask
from lightning_kan.nets import KAN

__all__ = ["EdgeMask", "prune"]


def check_threshold(name: str, value: object) -> float:
    """``value`` as a float, or an error: a threshold is a finite number >= 0."""
    if isinstance(value, bool) or not is_finite_number(value) or value < 0:  # type: ignore[operator]
        raise ValueError(
            f"prune: {name} must be a finite number >= 0, got {value!r}; scores below it "
            "are cut (0 keeps everything, pykan uses about 1e-2)"
        )
    return float(value)  # type: ignore[arg-type]


def _effective(tensor: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor | None):
    """``tensor[rows][:, cols]`` detached (the parametrised value if there is one)."""
    if tensor is None:
        return None
    tensor = tensor.detach()[rows]
    return tensor if cols is None else tensor[:, cols]


def _slice_basis(basis: nn.Module, keep: torch.Tensor) -> None:
    """Keep the per-input state (tensors ``(I, ...)`` of 2+ dims, e.g. B-spline knots) of
    the inputs ``keep``; :func:`_check_layer` verifies the result."""
    width = basis.in_features
    for registry in (basis._buffers, basis._parameters):
        for name, tensor in registry.items():
            if tensor is not None and tensor.dim() >= 2 and tensor.shape[0] == width:
                sliced = tensor.detach()[keep].clone()
                if isinstance(tensor, nn.Parameter):
                    sliced = nn.Parameter(sliced, requires_grad=tensor.requires_grad)
                registry[name] = sliced
    basis.in_features = int(keep.numel())


def _rebuild_layer(layer: nn.Module, source: nn.Module, keep_out, keep_in, mask) -> None:
    """Make ``layer`` (a copy of ``source``) the ``keep_out x keep_in`` slice, edges masked."""
    tensors = {
        "weight": _effective(source.weight, keep_out, keep_in),
        "base_weight": _effective(source.base_weight, keep_out, keep_in),
        "bias": _effective(source.bias, keep_out, None),
    }
    if parametrize.is_parametrized(layer):
        # a deep copy shares parametrize's generated class with ``source``, so
        # ``remove_parametrizations`` would strip ``source`` too: drop them by hand
        layer.__class__ = type(layer).__bases__[0]
        del layer._modules["parametrizations"]
    for name, value in tensors.items():
        if value is not None:
            setattr(layer, name, nn.Parameter(value.clone(), getattr(source, name).requires_grad))
    _slice_basis(layer.basis, keep_in)
    layer.in_features, layer.out_features = int(keep_in.numel()), int(keep_out.numel())
    layer.coefficient_shape = tuple(layer.weight.shape)
    set_edge_mask(layer, mask)


def _check_layer(index, layer, source, layer_input, keep_out, keep_in, mask) -> None:
    """The kept edges must compute what they computed before (per-input basis state)."""
    expected = source.edge_activations(layer_input)[:, keep_out][:, :, keep_in] * mask
    got = layer.edge_activations(layer_input[:, keep_in])
    scale = expected.abs().max().clamp_min(1.0)
    tolerance = 1e-4 if expected.dtype == torch.float32 else 1e-10
    if not torch.allclose(got, expected, rtol=0.0, atol=tolerance * float(scale)):
        raise ValueError(
            f"prune: layers.{index} ({type(source.basis).__name__} basis) cannot drop "
            "inputs exactly: its basis couples the inputs or keeps per-input state prune "
            "cannot slice, so removing a node changes the edges that stay. Use "
            "node_threshold=0 (edges are still cut) or a per-input basis (bspline, rbf, "
            "chebyshev with its default normalisation, ...)."
        )


@torch.no_grad()
def prune(
    net: KAN, x: torch.Tensor, edge_threshold: float = 1e-2, node_threshold: float = 1e-2
) -> KAN:
    """A new, smaller :class:`KAN`: ``net`` without its weak hidden nodes and edges.

    Scores are :func:`~lightning_kan.interpret.edge_scores` ``(O, I)`` and
    :func:`~lightning_kan.interpret.node_scores` ``(w_l,)`` on the samples
    ``x (N, widths[0])``. A hidden node with score ``< node_threshold`` is removed with
    all its edges (inputs and outputs are kept); an edge with score ``< edge_threshold``
    is masked to zero (:class:`EdgeMask`, module docstring). The outputs equal
    ``net``'s wherever only cut edges were removed; thresholds of 0 give a copy that
    computes the same function. ``net`` is never modified.
    """
    edge_threshold = check_threshold("edge_threshold", edge_threshold)
    node_threshold = check_threshold("node_threshold", node_threshold)
    check_kan(net, "prune")
    edge_queries, node_queries = attribution(net, x, "prune")
    edges = [edge.mean(0) for edge in edge_queries]
    nodes = [node.mean(0) for node in node_queries]
    keeps = [torch.arange(len(score), device=score.device) for score in nodes]
    for boundary in range(1, len(net.widths) - 1):
        keeps[boundary] = torch.nonzero(nodes[boundary] >= node_threshold).flatten()
        if keeps[boundary].numel() == 0:
            raise ValueError(
                f"prune: node_threshold={node_threshold!r} removes every node of hidden "
                f"layer {boundary} (its best score is {float(nodes[boundary].max()):.3g}), "
                "which would disconnect the outputs from the inputs; use a smaller "
                "node_threshold"
            )
    pruned = copy.deepcopy(net)
    samples = x.reshape(-1, net.widths[0])
    layer_inputs = [layer_input for _, layer_input in net._layer_inputs(samples)]
    for index, (source, layer) in enumerate(zip(net.layers, pruned.layers, strict=True)):
        keep_in, keep_out = keeps[index], keeps[index + 1]
        mask = (edges[index] >= edge_threshold)[keep_out][:, keep_in] & edge_mask(source)[keep_out][
            :, keep_in
        ]
        _rebuild_layer(layer, source, keep_out, keep_in, mask)
        _check_layer(index, layer, source, layer_inputs[index], keep_out, keep_in, mask)
    pruned.widths = [int(keep.numel()) for keep in keeps]
    return pruned
