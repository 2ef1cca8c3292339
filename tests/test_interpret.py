"""Attribution scores and pruning (lightning_kan.interpret)."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_kan.bases import available_bases
from lightning_kan.interpret import EdgeMask, edge_scores, feature_importance, node_scores, prune
from lightning_kan.layers.masks import set_edge_mask
from lightning_kan.layers.symbolic import symbolic_edges
from lightning_kan.nets import KAN, MLP, ConvKAN, MetaKAN, SlimKAN


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in net.state_dict().items()}


def _same_state(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    now = net.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


def test_score_shapes_and_output_node_scores():
    net = KAN([3, 4, 2])
    x = torch.randn(64, 3)
    assert [tuple(s.shape) for s in edge_scores(net, x)] == [(4, 3), (2, 4)]
    nodes = node_scores(net, x)
    assert [tuple(s.shape) for s in nodes] == [(3,), (4,), (2,)]
    torch.testing.assert_close(nodes[-1], torch.full((2,), 0.5))
    torch.testing.assert_close(feature_importance(net, x), nodes[0])


def test_scores_follow_pykan_formula_and_propagate_back():
    """E_l[q,o,i] = std(phi) * S_{l+1}[q,o] / (std(y_o) + 1e-4), checked by hand; an edge
    feeding a node whose outgoing edges are zero scores 0, however large it is."""
    torch.manual_seed(0)
    net = KAN([2, 2, 1]).double()
    with torch.no_grad():
        net.layers[1].weight[:, 1] = 0.0
        net.layers[1].base_weight[:, 1] = 0.0
        net.layers[0].base_weight[1] = 10.0
    x = torch.randn(200, 2, dtype=torch.float64)
    hidden = net.layers[0](x)
    output_spread = net.layers[1](hidden).std(0) + 1e-4  # (1,)
    last = net.layers[1].edge_activations(hidden).std(0) / output_spread[:, None]  # (1, 2)
    hidden_score = last.sum(0) / (hidden.std(0) + 1e-4)  # (2,)
    first = net.layers[0].edge_activations(x).std(0) * hidden_score[:, None]  # (2, 2)
    scores = edge_scores(net, x)
    torch.testing.assert_close(scores[1], last.detach())
    torch.testing.assert_close(scores[0], first.detach())
    assert torch.all(scores[0][1] == 0) and torch.all(scores[0][0] > 0)
    assert node_scores(net, x)[1][1] == 0


@pytest.mark.parametrize("basis", available_bases())
def test_threshold_zero_is_identity_for_every_basis(basis):
    torch.manual_seed(0)
    net = KAN([3, 5, 4, 2], basis=basis).double()
    x = torch.rand(128, 3, dtype=torch.float64) * 2 - 1
    before = _state(net)
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=0.0)
    assert pruned is not net and pruned.widths == [3, 5, 4, 2]
    assert _same_state(net, before)
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)


def test_prune_never_modifies_its_input():
    torch.manual_seed(0)
    net = KAN([3, 6, 1])
    x = torch.randn(100, 3)
    before = _state(net)
    pruned = prune(net, x, edge_threshold=0.5, node_threshold=0.3)
    assert _same_state(net, before) and net.widths == [3, 6, 1]
    assert len(net.layers[0].basis.grid) == 3 and pruned.widths[1] < 6


def test_node_removal_is_exact_when_outgoing_edges_are_zero():
    torch.manual_seed(0)
    net = KAN([3, 5, 2]).double()
    removed = [1, 3]
    with torch.no_grad():
        net.layers[1].weight[:, removed] = 0.0
        net.layers[1].base_weight[:, removed] = 0.0
    x = torch.randn(256, 3, dtype=torch.float64)
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=1e-12)
    assert pruned.widths == [3, 3, 2]
    assert pruned.layers[0].weight.shape == (3, 3, net.layers[0].num_basis_functions)
    assert pruned.layers[0].basis.grid.shape[0] == 3 and pruned.layers[1].basis.grid.shape[0] == 3
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)
    # a node score just above the threshold keeps the node
    assert prune(net, x, edge_threshold=0.0, node_threshold=0.0).widths == [3, 5, 2]


def test_cut_edges_stay_zero_through_training_and_state_dict():
    torch.manual_seed(0)
    net = KAN([3, 4, 1])
    x = torch.randn(128, 3)
    scores = edge_scores(net, x)
    threshold = float(scores[0].median())
    pruned = prune(net, x, edge_threshold=threshold, node_threshold=0.0)
    cut = scores[0] < threshold
    assert cut.any()
    optimizer = torch.optim.Adam(pruned.parameters(), lr=1e-2)
    for _ in range(5):
        optimizer.zero_grad()
        pruned(x).square().mean().backward()
        optimizer.step()
    layer = pruned.layers[0]
    assert torch.all(layer.weight[cut] == 0) and torch.all(layer.base_weight[cut] == 0)
    assert torch.all(layer.edge_activations(x)[:, cut] == 0)
    assert isinstance(layer.parametrizations.weight[0], EdgeMask)
    # the mask is a buffer: a second net pruned the same way loads the trained state
    again = prune(net, x, edge_threshold=threshold, node_threshold=0.0)
    again.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(again(x), pruned(x))


def _target(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)


def test_prune_drops_dummy_inputs_of_a_trained_kan():
    """f = exp(sin(pi x0) + x1^2) with 3 dummy inputs, trained with the sparsity penalty:
    x0, x1 rank first and the dummies' edges are cut."""
    torch.manual_seed(0)
    net = KAN([5, 4, 1])
    x = torch.rand(512, 5) * 2 - 1
    y = _target(x)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        loss = (net(x) - y).square().mean() + 1e-2 * net.regularization(x)
        loss.backward()
        optimizer.step()
    importance = feature_importance(net, x)
    assert set(importance.argsort(descending=True)[:2].tolist()) == {0, 1}
    pruned = prune(net, x)
    with torch.no_grad():
        edges = pruned.layers[0].edge_activations(x)
    assert torch.all(edges[:, :, 2:] == 0)
    assert torch.all(edges[:, :, :2].std(0).amax(0) > 0)
    assert (pruned(x) - y).square().mean() < 2 * (net(x) - y).square().mean() + 1e-3


@pytest.mark.parametrize(
    ("build", "phrase"),
    [
        (lambda: SlimKAN([2, 3, 1], ranks=2), "Tucker"),
        (lambda: MetaKAN([2, 3, 1]), "Generated"),
        (lambda: ConvKAN(1, 3, channels=(2,)), "ConvKAN"),
        (lambda: MLP([2, 3, 1]), "MLP"),
        (lambda: KAN([2, 3, 1], norm="layer"), "LayerNorm"),
    ],
)
def test_unsupported_networks_are_refused(build, phrase):
    for function in (edge_scores, node_scores, feature_importance, prune):
        with pytest.raises(TypeError, match=phrase) as error:
            function(build(), torch.randn(8, 2))
        assert "dense coefficients" in str(error.value)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.1", None])
@pytest.mark.parametrize("name", ["edge_threshold", "node_threshold"])
def test_bad_thresholds_are_clear_errors(name, value):
    net = KAN([2, 3, 1])
    with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0, got"):
        prune(net, torch.randn(8, 2), **{name: value})


def test_bad_samples_are_clear_errors():
    net = KAN([2, 3, 1])
    with pytest.raises(ValueError, match=r"expects inputs of shape \(\.\.\., 2\)"):
        edge_scores(net, torch.randn(8, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        prune(net, torch.randn(1, 2))
    with pytest.raises(TypeError):
        node_scores(net, torch.ones(8, 2, dtype=torch.int64))


def test_removing_every_hidden_node_is_refused():
    net = KAN([2, 3, 1])
    with pytest.raises(ValueError, match="removes every node of hidden layer 1"):
        prune(net, torch.randn(16, 2), node_threshold=1e9)


def test_minmax_basis_cannot_drop_nodes_silently():
    torch.manual_seed(0)
    net = KAN([3, 4, 1], basis="chebyshev", basis_kwargs={"normalization": "minmax"}).double()
    with torch.no_grad():
        net.layers[1].weight[:, 0] = 0.0
        net.layers[1].base_weight[:, 0] = 0.0
    x = torch.randn(64, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="cannot drop inputs exactly"):
        prune(net, x, edge_threshold=0.0, node_threshold=1e-12)


def test_pruning_a_pruned_net_keeps_its_cuts():
    """Cut edges score 0; a second prune (even with threshold 0) must keep them masked, or
    further training would grow them back."""
    torch.manual_seed(0)
    net = KAN([3, 4, 1])
    x = torch.randn(128, 3)
    first = prune(net, x, edge_threshold=float(edge_scores(net, x)[0].median()), node_threshold=0)
    cut = first.layers[0].parametrizations.weight[0].mask[..., 0] == 0
    before = _state(first)
    # drop_disconnected=False: a node left with no edges would otherwise be removed
    second = prune(first, x, edge_threshold=0.0, node_threshold=0.0, drop_disconnected=False)
    assert _same_state(first, before) and first.layers[0].weight.shape == (4, 3, 8)
    torch.testing.assert_close(second(x), first(x))
    assert torch.equal(second.layers[0].parametrizations.weight[0].mask[..., 0] == 0, cut)
    assert first.layers[0].parametrizations.weight[0].mask.shape == (4, 3, 1)


def test_state_dict_of_a_pruned_net_loads_into_a_fresh_net_of_its_widths():
    """The saved masks are re-installed on load: the fresh net computes the pruned one."""
    torch.manual_seed(3)
    net = KAN([3, 5, 2]).double()
    x = torch.randn(128, 3, dtype=torch.float64)
    pruned = prune(net, x, edge_threshold=float(edge_scores(net, x)[0].median()), node_threshold=0)
    fresh = KAN(pruned.widths).double()
    fresh.load_state_dict(pruned.state_dict())
    assert isinstance(fresh.layers[0].parametrizations.weight[0], EdgeMask)
    torch.testing.assert_close(fresh(x), pruned(x), rtol=0, atol=0)


# --- multiplication nodes and nodes disconnected by masks --------------------------------------


def test_scores_through_mult_nodes_follow_pykan_formula():
    """pykan's score_node2subnode: each subnode takes its node's score S_{l+1}[q, node(o)],
    then E_l[q,o,i] = std(phi) * that / (std(subnode o) + 1e-4); checked by hand, 2 queries."""
    torch.manual_seed(0)
    net = KAN([2, 3, 2], mult_nodes=1).double()  # subnodes 0, 1 | (2, 3) -> nodes 0, 1, 2
    x = torch.randn(200, 2, dtype=torch.float64)
    subnodes = net.layers[0](x)  # (N, 4)
    hidden = torch.cat([subnodes[:, :2], subnodes[:, 2:3] * subnodes[:, 3:4]], dim=1)
    output = net.layers[1](hidden)
    last = net.layers[1].edge_activations(hidden).std(0)  # (2, 3)
    e1 = last * (torch.eye(2) / (output.std(0) + 1e-4))[:, :, None]  # (q, 2, 3)
    s1 = e1.sum(1)  # (q, 3)
    sub = s1[:, [0, 1, 2, 2]]  # (q, 4): the mult node's score to both its subnodes
    e0 = net.layers[0].edge_activations(x).std(0) * (sub / (subnodes.std(0) + 1e-4))[:, :, None]
    scores, nodes = edge_scores(net, x), node_scores(net, x)
    assert [tuple(s.shape) for s in scores] == [(4, 2), (2, 3)]
    torch.testing.assert_close(scores[1], e1.mean(0))
    torch.testing.assert_close(scores[0], e0.mean(0))
    torch.testing.assert_close(nodes[1], s1.mean(0))
    torch.testing.assert_close(nodes[0], e0.sum(1).mean(0))
    torch.testing.assert_close(feature_importance(net, x), e0.sum(1).mean(0))


def test_threshold_zero_is_identity_with_mult_nodes():
    torch.manual_seed(0)
    net = KAN([3, 5, 4, 2], mult_nodes=[2, 1]).double()
    x = torch.rand(128, 3, dtype=torch.float64) * 2 - 1
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=0.0)
    assert pruned.widths == [3, 5, 4, 2] and pruned.mult_nodes == [2, 1]
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("removed", "rows", "mult"), [(2, [0, 1, 4, 5], 1), (0, [1, 2, 3, 4, 5], 2)]
)
def test_pruned_mult_node_goes_with_both_subnodes(removed, rows, mult):
    """widths [2, 4, 1] with 2 mult nodes: subnodes 0, 1 | (2, 3) | (4, 5). Zeroing the
    outgoing edges of mult node 2 removes rows 2 and 3 of layers[0]; of sum node 0, row 0."""
    torch.manual_seed(0)
    net = KAN([2, 4, 1], mult_nodes=2).double()
    with torch.no_grad():
        net.layers[1].weight[:, removed] = 0.0
        net.layers[1].base_weight[:, removed] = 0.0
    x = torch.randn(256, 2, dtype=torch.float64)
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=1e-12)
    assert pruned.widths == [2, 3, 1] and pruned.mult_nodes == [mult]
    assert pruned.layers[0].out_features == len(rows) and pruned.layers[1].in_features == 3
    assert torch.equal(pruned.layers[0].weight, net.layers[0].weight[rows])
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)
    fresh = KAN(pruned.widths, mult_nodes=pruned.mult_nodes).double()
    fresh.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(fresh(x), pruned(x), rtol=0, atol=0)


def test_nodes_whose_outgoing_edges_are_masked_are_removed_at_threshold_zero():
    """The Prune callback cuts a node by masking its edges; prune(net, x, 0, 0) then drops
    it (exact), and a node that feeds only dropped nodes goes too."""
    torch.manual_seed(0)
    net = KAN([3, 4, 3, 2], mult_nodes=[1, 1]).double()  # boundary 2: 0, 1 | (2, 3)
    x = torch.randn(256, 3, dtype=torch.float64)
    keep2 = torch.ones(2, 3, dtype=torch.bool)
    keep2[:, 2] = False  # the mult node of boundary 2: no outgoing edge left
    set_edge_mask(net.layers[2], keep2)
    keep1 = torch.ones(4, 4, dtype=torch.bool)
    keep1[:, 0] = False  # boundary-1 sum node 0: cut
    keep1[[0, 1], 1] = False  # boundary-1 node 1 feeds only the dropped subnodes 2, 3
    set_edge_mask(net.layers[1], keep1)
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=0.0)
    assert pruned.widths == [3, 2, 2, 2] and pruned.mult_nodes == [1, 0]
    assert [tuple(layer.weight.shape[:2]) for layer in pruned.layers] == [(3, 3), (2, 2), (2, 2)]
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)
    kept = prune(net, x, edge_threshold=0.0, node_threshold=0.0, drop_disconnected=False)
    assert kept.widths == [3, 4, 3, 2] and kept.mult_nodes == [1, 1]
    torch.testing.assert_close(kept(x), net(x), rtol=0, atol=1e-12)


def test_a_layer_cut_off_by_masks_is_refused():
    net = KAN([2, 3, 1])
    set_edge_mask(net.layers[1], torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="has all its outgoing edges cut"):
        prune(net, torch.randn(16, 2), edge_threshold=0.0, node_threshold=0.0)
    with pytest.raises(TypeError, match="drop_disconnected must be True or False"):
        prune(net, torch.randn(16, 2), drop_disconnected=1)


def test_prune_keeps_symbolic_edges_and_the_nodes_they_leave_from():
    """A node whose numeric outgoing edges are all masked but one of them is symbolic is
    kept, its symbolic edge sliced along; a node with nothing left goes."""
    torch.manual_seed(0)
    net = KAN([2, 3, 1]).double()
    keep = torch.tensor([[True, False, False]])
    set_edge_mask(net.layers[1], keep)  # numeric edges from nodes 1 and 2 cut
    symbolic_edges(net.layers[1]).set_edge(0, 1, "sin", (2.0, 0.5, 1.5, -0.3))
    x = torch.randn(128, 2, dtype=torch.float64)
    pruned = prune(net, x, edge_threshold=0.0, node_threshold=0.0)
    assert pruned.widths == [2, 2, 1]
    assert pruned.layers[1].symbolic.active.tolist() == [[False, True]]
    assert pruned.layers[1].symbolic.name(0, 1) == "sin"
    assert net.layers[1].symbolic.active.shape == (1, 3)  # the input is left alone
    torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-12)
