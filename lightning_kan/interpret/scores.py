"""pykan's attribution scores (``MultKAN.attribute``) for a dense :class:`KAN`.

For layer ``l`` (``I -> O``) on the samples ``x_l (N, I)`` it sees:

* ``A_l[o, i] = std_n phi_{o,i}(x_l[n, i])``: the spread of each edge's output ``(O, I)``;
* ``s_l[o] = std_n y_l[n, o]``: the spread of each output node ``(O,)``.

Scores are propagated back from the ``O_L`` network outputs, one query ``q`` per output:
``S_L[q] = e_q`` (``(O_L, O_L)``, the identity) and, for ``l = L-1, ..., 0``,

    E_l[q, o, i] = A_l[o, i] * S_{l+1}[q, o] / (s_l[o] + 1e-4)      # (O_L, O, I)
    S_l[q, i]    = sum_o E_l[q, o, i]                               # (O_L, I)

An edge's score is ``mean_q E_l[q]`` and a node's ``mean_q S_l[q]``: an edge that feeds an
unimportant node scores low however large its own output is. ``feature_importance`` is
the input nodes' score ``mean_q S_0[q]``.

With multiplication nodes (``KAN(..., mult_nodes=m)``) layer ``l`` outputs the subnodes
of boundary ``l + 1`` (``O = widths[l+1] + m``) and ``s_l`` is their spread; each subnode
``o`` takes the score of the node that reads it (pykan's ``score_node2subnode``):
``S_{l+1}[q, o]`` above stands for ``S_{l+1}[q, node(o)]`` (:meth:`KAN.subnodes`).
"""

from __future__ import annotations

import torch

from lightning_kan.bases import InputNormBasis
from lightning_kan.layers.coefficients import Dense
from lightning_kan.nets import KAN

__all__ = ["edge_scores", "feature_importance", "node_scores"]

#: pykan's guard against nodes that do not vary on the samples
_EPS = 1e-4


def check_kan(net: object, caller: str) -> KAN:
    """``net`` if it is a dense :class:`KAN` (every layer with ``Dense`` coefficients and
    no normalisation between layers), else a one-paragraph error naming its class."""
    supported = (
        "a KAN (lightning_kan.nets.KAN) with dense coefficients (coefficients='dense', any "
        "basis, norm=None)"
    )
    if not isinstance(net, KAN):
        raise TypeError(
            f"{caller} needs {supported}, got {type(net).__name__}; convolutional, MLP and "
            "other networks have no per-edge functions it can score or cut. Use a KAN."
        )
    for index, layer in enumerate(net.layers):
        if not isinstance(layer.coefficients, Dense):
            raise TypeError(
                f"{caller} needs {supported}, got {type(net).__name__} whose layers.{index} "
                f"({type(layer).__name__}) computes its coefficients with "
                f"{type(layer.coefficients).__name__}, so edges cannot be cut or sliced one by "
                "one. Use a dense KAN (coefficients='dense'); for a Slim KAN, prune the dense "
                "KAN before converting it (SlimKAN.from_dense)."
            )
    for index, layer in enumerate(net.layers):
        if isinstance(layer.basis, InputNormBasis):  # norm="fastkan"
            raise TypeError(
                f"{caller} needs {supported}, got {type(net).__name__} whose layers.{index} "
                f"normalises its input ({type(layer.basis).__name__}, norm='fastkan'): the "
                "LayerNorm couples the nodes, so removing one changes the others. Build the "
                "KAN with norm=None."
            )
    for index, norm in enumerate(net.norms):
        if not isinstance(norm, torch.nn.Identity):
            raise TypeError(
                f"{caller} needs {supported}, got {type(net).__name__} with "
                f"{type(norm).__name__} before layers.{index + 1}: a normalisation couples "
                "the hidden nodes, so removing one changes the others. Build the KAN with "
                "norm=None."
            )
    return net


def _check_samples(net: KAN, x: object, caller: str) -> torch.Tensor:
    """``x`` as ``(N, widths[0])`` with ``N >= 2`` (a spread needs two samples)."""
    net._check_input(x)  # type: ignore[arg-type]  # tensor, real float, last dim = widths[0]
    samples = x.reshape(-1, net.widths[0])  # type: ignore[union-attr]
    if samples.shape[0] < 2:
        raise ValueError(
            f"{caller} measures each edge's spread (a standard deviation) over the samples "
            f"x, which needs at least 2 rows, got x of shape {tuple(x.shape)}; pass a batch "  # type: ignore[union-attr]
            "of training inputs (a few hundred rows is typical)"
        )
    return samples


@torch.no_grad()
def attribution(net: object, x: torch.Tensor, caller: str):
    """``(edges, nodes)``: per layer ``E_l (O_L, O, I)`` (``O`` the layer's outputs, mult
    nodes' subnodes included) and per boundary ``S_l (O_L, w_l)``."""
    kan = check_kan(net, caller)
    samples = _check_samples(kan, x, caller)
    spreads = []
    for layer, layer_input in kan._layer_inputs(samples):
        edges = layer.edge_activations(layer_input)  # (N, O, I)
        outputs = layer(layer_input)  # (N, O)
        spreads.append((edges.std(0), outputs.std(0)))
    score = torch.eye(kan.widths[-1], dtype=spreads[-1][0].dtype, device=samples.device)
    edge_list, node_list = [], [score]
    for boundary in range(len(spreads), 0, -1):
        edge_spread, node_spread = spreads[boundary - 1]
        subnode_score = score[:, subnode_owners(kan, boundary).to(score.device)]  # (O_L, O)
        edge = edge_spread * (subnode_score / (node_spread + _EPS)).unsqueeze(-1)  # (O_L, O, I)
        score = edge.sum(1)  # (O_L, I)
        edge_list.append(edge)
        node_list.append(score)
    return edge_list[::-1], node_list[::-1]


def subnode_owners(net: KAN, boundary: int) -> torch.Tensor:
    """For each output of ``layers[boundary-1]``, the node of ``boundary`` that reads it:
    ``(widths[boundary] + mult_nodes,)`` long (``arange`` without mult nodes)."""
    groups = net.subnodes(boundary)
    owners = torch.empty(sum(map(len, groups)), dtype=torch.long)
    for node, group in enumerate(groups):
        owners[list(group)] = node
    return owners


def edge_scores(net: KAN, x: torch.Tensor) -> list[torch.Tensor]:
    """One ``(O, I)`` score matrix per layer (``O`` its outputs: ``widths[l+1]`` plus the
    mult nodes' extra subnodes): ``mean_q E_l[q]`` (module docstring)."""
    edges, _ = attribution(net, x, "edge_scores")
    return [edge.mean(0) for edge in edges]


def node_scores(net: KAN, x: torch.Tensor) -> list[torch.Tensor]:
    """One ``(widths[l],)`` score vector per layer boundary, inputs first, outputs last
    (each output scores ``1 / O_L``): ``mean_q S_l[q]`` (module docstring)."""
    _, nodes = attribution(net, x, "node_scores")
    return [node.mean(0) for node in nodes]


def feature_importance(net: KAN, x: torch.Tensor) -> torch.Tensor:
    """The input features' scores ``(widths[0],)``: ``node_scores(net, x)[0]``."""
    _, nodes = attribution(net, x, "feature_importance")
    return nodes[0].mean(0)
