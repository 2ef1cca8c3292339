"""Multiplication nodes (pykan 0.2's MultKAN): ``KAN(..., mult_nodes=m)``."""

from __future__ import annotations

import pickle

import lightning as L
import pytest
import torch
from torch import nn

from lightning_kan import lotra
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN, MetaKAN, SlimKAN
from lightning_kan.tasks import RegressionTask


def _identity_edges(layer: nn.Module, rows: list[int]) -> None:
    """Make output ``o`` of ``layer`` (base activation the identity) equal input
    ``rows[o]``: spline coefficients and bias 0, base weight one-hot."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.base_weight.zero_()
        for output, source in enumerate(rows):
            layer.base_weight[output, source] = 1.0


def test_mult_node_multiplies_its_two_subnodes_exactly():
    """widths [2, 3, 1], one mult node: subnodes (x1, x2, x1, x2) give the nodes
    (x1, x2, x1 * x2), and an output summing them computes x1 + x2 + x1 * x2."""
    net = KAN([2, 3, 1], mult_nodes=1, base_activation=nn.Identity()).double()
    _identity_edges(net.layers[0], [0, 1, 0, 1])
    with torch.no_grad():
        net.layers[1].weight.zero_()
        net.layers[1].bias.zero_()
        net.layers[1].base_weight.fill_(1.0)
    x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
    x1, x2 = x[:, :1], x[:, 1:]
    torch.testing.assert_close(net(x), x1 + x2 + x1 * x2, rtol=0, atol=1e-15)
    product = KAN([2, 1, 1], mult_nodes=1, base_activation=nn.Identity()).double()
    _identity_edges(product.layers[0], [0, 1])
    _identity_edges(product.layers[1], [0])
    assert torch.equal(product(x), x1 * x2)


def test_layer_widths_subnodes_and_parameter_count():
    net = KAN([2, 5, 3, 1], mult_nodes=[2, 1])
    assert net.mult_nodes == [2, 1] and net.widths == [2, 5, 3, 1]
    assert "mult_nodes=[2, 1]" in repr(net) and "mult_nodes" not in repr(KAN([2, 5, 3, 1]))
    assert [(layer.in_features, layer.out_features) for layer in net.layers] == [
        (2, 7),
        (5, 4),
        (3, 1),
    ]
    assert net.subnodes(1) == [(0,), (1,), (2,), (3, 4), (5, 6)]
    assert net.subnodes(2) == [(0,), (1,), (2, 3)]
    assert net.subnodes(3) == [(0,)]
    k = net.layers[0].num_basis_functions
    # per layer: spline O*I*K, base weight O*I, bias O
    expected = sum(o * i * k + o * i + o for i, o in [(2, 7), (5, 4), (3, 1)])
    assert net.num_parameters() == expected
    assert KAN([2, 3, 1], mult_nodes=3).subnodes(1) == [(0, 1), (2, 3), (4, 5)]
    assert KAN([2, 3, 3, 1], mult_nodes=1).mult_nodes == [1, 1]


def test_forward_is_the_manual_composition():
    torch.manual_seed(0)
    net = KAN([3, 4, 3, 2], mult_nodes=[2, 1]).double()
    x = torch.randn(32, 3, dtype=torch.float64)
    h = net.layers[0](x)  # (N, 6): 2 sum subnodes, then 2 pairs
    h = torch.cat([h[:, :2], h[:, 2:3] * h[:, 3:4], h[:, 4:5] * h[:, 5:6]], dim=1)
    h = net.layers[1](h)  # (N, 4): 2 sum subnodes, then 1 pair
    h = torch.cat([h[:, :2], h[:, 2:3] * h[:, 3:4]], dim=1)
    assert torch.equal(net(x), net.layers[2](h))
    inputs = [layer_input for _, layer_input in net._layer_inputs(x)]
    assert torch.equal(inputs[2], h)


def test_combine_nodes_on_any_leading_shape_and_after_the_norm():
    torch.manual_seed(0)
    net = KAN([2, 4, 1], mult_nodes=2)
    y = torch.randn(2, 3, 6)
    expected = torch.stack([y[..., 0], y[..., 1], y[..., 2] * y[..., 3], y[..., 4] * y[..., 5]], -1)
    assert torch.equal(net.combine_nodes(1, y), expected)
    assert torch.equal(net.combine_nodes(2, y[..., :1]), y[..., :1])  # output: sum nodes only
    normed = KAN([2, 4, 1], mult_nodes=2, norm="layer")
    x = torch.randn(8, 2)
    manual = normed.layers[1](normed.norms[0](normed.combine_nodes(1, normed.layers[0](x))))
    assert torch.equal(normed(x), manual)


def test_gradcheck_float64():
    torch.manual_seed(0)
    net = KAN([2, 3, 2], mult_nodes=2).double()
    x = (torch.rand(6, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(net, (x,))
    names = [name for name, _ in net.named_parameters()]
    values = tuple(p.detach().clone().requires_grad_() for p in net.parameters())

    def of_parameters(*params):
        return torch.func.functional_call(net, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(of_parameters, values)


def test_state_dict_round_trip_and_pickle():
    torch.manual_seed(0)
    net = KAN([2, 5, 3, 1], mult_nodes=[2, 1])
    x = torch.randn(16, 2)
    fresh = KAN([2, 5, 3, 1], mult_nodes=[2, 1])
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh(x), net(x))
    with pytest.raises(RuntimeError, match="size mismatch"):
        KAN([2, 5, 3, 1]).load_state_dict(net.state_dict())
    copied = pickle.loads(pickle.dumps(net))
    assert copied.mult_nodes == [2, 1] and torch.equal(copied(x), net(x))


def test_no_mult_nodes_changes_nothing():
    """mult_nodes=0 (the default) or all zeros: the same modules, state dict and outputs; a
    whole KAN pickled before mult_nodes existed unpickles with none."""
    x = torch.randn(16, 3)
    nets = []
    for option in ({}, {"mult_nodes": 0}, {"mult_nodes": [0, 0]}):
        torch.manual_seed(0)
        nets.append(KAN([3, 4, 2, 1], **option))
    reference = nets[0].state_dict()
    for net in nets:
        assert net.mult_nodes == [0, 0]
        state = net.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[key], reference[key]) for key in state)
        assert torch.equal(net(x), nets[0](x))
    old = nets[0]
    del old.__dict__["mult_nodes"]  # as a KAN pickled by an earlier version
    restored = pickle.loads(pickle.dumps(old))
    assert restored.mult_nodes == [0, 0] and torch.equal(restored(x), nets[1](x))


@pytest.mark.parametrize(
    ("value", "error", "phrase"),
    [
        (-1, ValueError, "asks for -1 multiplication nodes in hidden layer 1"),
        (
            6,
            ValueError,
            r"asks for 6 multiplication nodes in hidden layer 1, which has widths\[1\]",
        ),
        ([1], ValueError, "has 1 entries but widths=.* has 2 hidden layers"),
        ([1, 4], ValueError, r"asks for 4 multiplication nodes in hidden layer 2"),
        ([1, True], ValueError, "asks for True multiplication nodes"),
        ([1, 0.5], ValueError, "asks for 0.5 multiplication nodes"),
        (1.5, TypeError, "mult_nodes must be an int or a list of ints, got float 1.5"),
        (True, TypeError, "got bool True"),
        ("2", TypeError, "got str '2'"),
        (None, TypeError, "got NoneType None"),
    ],
)
def test_bad_mult_nodes_are_clear_errors(value, error, phrase):
    with pytest.raises(error, match=phrase) as raised:
        KAN([2, 5, 3, 1], mult_nodes=value)
    assert "mult_nodes" in str(raised.value) and "\n" not in str(raised.value)


def test_mult_nodes_without_hidden_layer_and_bad_boundaries_are_refused():
    with pytest.raises(ValueError, match="has no hidden layer"):
        KAN([2, 1], mult_nodes=1)
    assert KAN([2, 1], mult_nodes=0).mult_nodes == []
    net = KAN([2, 3, 1], mult_nodes=1)
    for boundary in (0, 3, True, 1.0):
        with pytest.raises(ValueError, match="pass an int from 1 to 2"):
            net.subnodes(boundary)
    with pytest.raises(ValueError, match=r"needs the 4 outputs of layers\[0\].*got y of shape"):
        net.combine_nodes(1, torch.randn(5, 3))


def test_update_grid_sees_the_combined_nodes():
    """The second layer's grid spans the hidden nodes (the products), not the subnodes."""
    torch.manual_seed(0)
    net = KAN([2, 2, 1], mult_nodes=1).double()
    x = torch.rand(200, 2, dtype=torch.float64) * 2 - 1
    net.update_grid(x, grid_eps=1.0)
    hidden = net.combine_nodes(1, net.layers[0](x))  # layer 0 refitted first
    grid = net.layers[1].basis.grid  # (I, G + 2k + 1); interior knots k .. k + G
    order, size = net.layers[1].basis.spline_order, net.layers[1].basis.grid_size
    torch.testing.assert_close(grid[:, order], hidden.min(0).values)
    torch.testing.assert_close(grid[:, order + size], hidden.max(0).values)


def test_slim_kan_passes_mult_nodes_and_metakan_refuses_them():
    slim = SlimKAN([2, 4, 1], ranks=2, mult_nodes=1)
    assert slim.mult_nodes == [1] and slim.layers[0].out_features == 5
    torch.manual_seed(0)
    dense = KAN([4, 6, 3], mult_nodes=2).double()
    x = torch.rand(32, 4, dtype=torch.float64) * 2 - 1
    compressed = SlimKAN.from_dense(dense, ranks=8)  # clipped to full ranks: exact
    assert compressed.mult_nodes == [2] and compressed.ranks == [(8, 4, 8), (3, 6, 8)]
    torch.testing.assert_close(compressed(x), dense(x), rtol=0, atol=1e-10)
    with pytest.raises(TypeError, match="mult_nodes"):
        MetaKAN([2, 4, 1], mult_nodes=1)


def test_lotra_and_a_regression_fit_on_a_net_with_mult_nodes(tmp_path):
    torch.manual_seed(0)
    net = KAN([2, 4, 1], mult_nodes=2)
    lotra.add_adapter(net, ranks=1)
    with torch.no_grad():
        for tensor in lotra.adapted_tensors(net):
            tensor.adapters.adapters["default"].core.normal_()
    x = torch.rand(32, 2) * 2 - 1
    adapted = net(x).detach()
    lotra.merge_adapter(net)
    assert [tuple(layer.weight.shape[:2]) for layer in net.layers] == [(6, 2), (1, 4)]
    torch.testing.assert_close(net(x), adapted, rtol=1e-5, atol=1e-5)

    task = RegressionTask(KAN([2, 4, 1], mult_nodes=2), regularization=1e-3)
    data = FunctionDataModule("kan-toy", num_train=64, num_val=16, num_test=16, batch_size=16)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    before = [p.detach().clone() for p in task.net.parameters()]
    trainer.fit(task, datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, task.net.parameters(), strict=True))
