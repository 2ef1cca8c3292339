"""``prune``: a smaller copy of a dense :class:`KAN` without its weak nodes and edges.

Hidden nodes whose :func:`~lightning_kan.interpret.node_scores` is below
``node_threshold`` are removed (the coefficient tensors sliced, the widths shrink; a
multiplication node goes with both its subnodes), and so are hidden nodes whose outgoing
edges are all cut already (exact: how the ``Prune`` callback removes nodes); edges
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
    if source.symbolic is not None:
        layer.symbolic = source.symbolic.select(keep_out, keep_in)


def _check_layer(index, layer, source, layer_input, keep_out, keep_in, mask) -> None:
    """The kept edges must compute what they computed before (per-input basis state); a
    symbolic edge keeps its symbolic part whatever ``mask`` says of its numeric part."""
    expected = source.edge_activations(layer_input)[:, keep_out][:, :, keep_in]
    if source.symbolic is not None:
        symbolic = source.symbolic.edge_values(layer_input)[:, keep_out][:, :, keep_in]
        expected = (expected - symbolic) * mask + symbolic
    else:
        expected = expected * mask
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
    net: KAN,
    x: torch.Tensor,
    edge_threshold: float = 1e-2,
    node_threshold: float = 1e-2,
    *,
    drop_disconnected: bool = True,
) -> KAN:
    """A new, smaller :class:`KAN`: ``net`` without its weak hidden nodes and edges.

    Scores are :func:`~lightning_kan.interpret.edge_scores` ``(O, I)`` and
    :func:`~lightning_kan.interpret.node_scores` ``(w_l,)`` on the samples
    ``x (N, widths[0])``. A hidden node with score ``< node_threshold`` is removed with
    all its edges (inputs and outputs are kept), a mult node with both its subnodes
    (``mult_nodes`` of the result counts the mult nodes kept); with ``drop_disconnected``
    so is, whatever the threshold, a hidden node none of whose outgoing edges is left
    (all cut by an :class:`EdgeMask` before, or leading to removed nodes), because
    removing it is exact. An edge with score ``< edge_threshold`` is masked to zero
    (:class:`EdgeMask`, module docstring). The outputs equal ``net``'s wherever only cut
    edges were removed; thresholds of 0 give a copy that computes the same function,
    without the nodes that masks had already disconnected. ``net`` is never modified.
    """
    edge_threshold = check_threshold("edge_threshold", edge_threshold)
    node_threshold = check_threshold("node_threshold", node_threshold)
    if not isinstance(drop_disconnected, bool):
        raise TypeError(
            f"prune: drop_disconnected must be True or False, got {drop_disconnected!r}; "
            "True removes the hidden nodes whose outgoing edges are all cut already"
        )
    check_kan(net, "prune")
    edge_queries, node_queries = attribution(net, x, "prune")
    edges = [edge.mean(0) for edge in edge_queries]
    nodes = [node.mean(0) for node in node_queries]
    keeps = _kept_nodes(net, nodes, node_threshold, drop_disconnected)
    rows = [_kept_subnodes(net, boundary, keep) for boundary, keep in enumerate(keeps)]
    pruned = copy.deepcopy(net)
    samples = x.reshape(-1, net.widths[0])
    layer_inputs = [layer_input for _, layer_input in net._layer_inputs(samples)]
    for index, (source, layer) in enumerate(zip(net.layers, pruned.layers, strict=True)):
        keep_in, keep_out = keeps[index], rows[index + 1]
        mask = (edges[index] >= edge_threshold)[keep_out][:, keep_in] & edge_mask(source)[keep_out][
            :, keep_in
        ]
        _rebuild_layer(layer, source, keep_out, keep_in, mask)
        _check_layer(index, layer, source, layer_inputs[index], keep_out, keep_in, mask)
    pruned.widths = [int(keep.numel()) for keep in keeps]
    pruned.mult_nodes = [
        int((keeps[boundary] >= net.widths[boundary] - mult).sum())
        for boundary, mult in enumerate(net.mult_nodes, start=1)
    ]
    return pruned


def _kept_nodes(
    net: KAN, nodes: list[torch.Tensor], node_threshold: float, drop_disconnected: bool
) -> list[torch.Tensor]:
    """The nodes of every boundary that stay ``(w'_l,)`` (sorted indices): inputs and outputs
    all; a hidden node if it scores ``>= node_threshold`` and (``drop_disconnected``) one
    of its outgoing edges (not masked, into a node that stays) is left. Decided from the
    last hidden boundary back, so a node feeding only removed nodes goes too."""
    keeps = [torch.arange(len(score), device=score.device) for score in nodes]
    for boundary in range(len(net.widths) - 2, 0, -1):
        scored = nodes[boundary] >= node_threshold
        if drop_disconnected:
            rows = _kept_subnodes(net, boundary + 1, keeps[boundary + 1])
            scored &= _live_edges(net.layers[boundary])[rows].any(0)
        keeps[boundary] = torch.nonzero(scored).flatten()
        if keeps[boundary].numel() == 0:
            if not bool((nodes[boundary] >= node_threshold).any()):
                reason = (
                    f"node_threshold={node_threshold!r} removes every node of hidden layer "
                    f"{boundary} (its best score is {float(nodes[boundary].max()):.3g})"
                )
                fix = "use a smaller node_threshold"
            else:
                reason = (
                    f"every node of hidden layer {boundary} that scores >= node_threshold="
                    f"{node_threshold!r} has all its outgoing edges cut (EdgeMask) or leading "
                    "to removed nodes, so that layer would be removed"
                )
                fix = "cut fewer edges (or use a smaller node_threshold)"
            raise ValueError(
                f"prune: {reason}, which would disconnect the outputs from the inputs; {fix}"
            )
    return keeps


def _kept_subnodes(net: KAN, boundary: int, keep: torch.Tensor) -> torch.Tensor:
    """The outputs of ``layers[boundary-1]`` read by the kept nodes ``keep`` of
    ``boundary``, in order (a mult node's two subnodes); ``keep`` itself at the input."""
    if boundary == 0:
        return keep
    groups = net.subnodes(boundary)
    rows = [sub for node in keep.tolist() for sub in groups[node]]
    return torch.tensor(rows, dtype=torch.long, device=keep.device)


def _live_edges(layer: nn.Module) -> torch.Tensor:
    """The edges ``(O, I)`` (bool) that can be nonzero: not masked, or symbolic."""
    live = edge_mask(layer)
    return live if layer.symbolic is None else live | layer.symbolic.active.to(live.device)
