"""MetaKAN: parameter count, layer clustering, generated weights, learning-rate groups."""

import itertools

import pytest
import torch

from lightning_kan.layers import (
    KANConv2d,
    KANLinear,
    MetaKANConv2d,
    MetaKANLinear,
    MetaLearner,
)
from lightning_kan.nets import MetaConvKAN, MetaKAN, cluster_layers
from lightning_kan.tasks import ClassificationTask

PAPER_WIDTHS = [16, 32, 64, 128, 256, 256, 512, 512]  # the paper's 8-layer ConvKAN


@pytest.mark.parametrize(
    ("n_clusters", "expected"),
    [
        (1, [0, 0, 0, 0, 0, 0, 0, 0]),
        (2, [0, 0, 0, 0, 0, 0, 1, 1]),
        (3, [0, 0, 0, 0, 1, 1, 2, 2]),
        (4, [0, 0, 0, 1, 2, 2, 3, 3]),
    ],
)
def test_clustering_of_the_paper_widths_is_as_expected_and_deterministic(n_clusters, expected):
    assert cluster_layers(PAPER_WIDTHS, n_clusters) == expected
    assert cluster_layers(PAPER_WIDTHS, n_clusters) == expected
    # labels follow the centres, not the order the layers come in
    assert cluster_layers(PAPER_WIDTHS[::-1], n_clusters) == expected[::-1]


@pytest.mark.parametrize("bad", [0, -1, 6])
def test_bad_cluster_counts_are_clear_errors(bad):
    with pytest.raises(ValueError, match=rf"n_clusters={bad}"):
        cluster_layers([8, 16, 32, 64, 64], bad)
    with pytest.raises(ValueError, match=rf"n_clusters={bad}"):
        MetaKAN([4, 8, 8, 3], n_clusters=bad)


@pytest.mark.parametrize(
    ("widths", "n_clusters", "embed_dim", "hidden"),
    [([5, 7, 3], 1, 1, 16), ([6, 12, 24, 48, 2], 2, 1, 32), ([4, 8, 16, 2], 3, 2, 8)],
)
def test_metakan_parameter_count_matches_the_formula(widths, n_clusters, embed_dim, hidden):
    K = 8  # B-spline, G = 5, k = 3
    net = MetaKAN(widths, n_clusters=n_clusters, embed_dim=embed_dim, hidden_dim=hidden)
    edges = sum(i * o for i, o in itertools.pairwise(widths))
    meta = embed_dim * hidden + hidden + hidden * (K + 1) + K + 1
    assert net.num_parameters() == edges * embed_dim + n_clusters * meta
    with_bias = MetaKAN(
        widths, n_clusters=n_clusters, embed_dim=embed_dim, hidden_dim=hidden, bias=True
    )
    assert with_bias.num_parameters() == net.num_parameters() + sum(widths[1:])


def test_meta_layers_share_one_learner_per_cluster():
    net = MetaKAN([4, 8, 8, 32, 2], n_clusters=2)
    assert net.cluster_labels == [0, 0, 1, 0]
    learners = [layer.meta_learner for layer in net.layers]
    assert learners[0] is learners[1] is learners[3] is net.meta_learners[0]
    assert learners[2] is net.meta_learners[1]


def test_generated_forward_equals_dense_forward_and_chunking_changes_nothing():
    layer = MetaKANLinear(5, 3, hidden_dim=8).double()
    dense = KANLinear(5, 3).double()
    with torch.no_grad():
        dense.weight.copy_(layer.weight)
        dense.base_weight.copy_(layer.base_weight)
        dense.bias.copy_(layer.bias)
    x = torch.rand(7, 5, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(layer(x), dense(x))
    full = layer(x).sum()
    full.backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    layer.chunk_size = 4  # 15 edges in 4 checkpointed chunks
    chunked = layer(x).sum()
    chunked.backward()
    torch.testing.assert_close(chunked, full)
    for p, g in zip(layer.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_conv_prompt_per_edge_and_dense_equivalence():
    conv = MetaKANConv2d(2, 3, 3, padding=1, hidden_dim=8).double()
    assert conv.prompts.shape == (3, 2, 3, 3, 1)
    dense = KANConv2d(2, 3, 3, padding=1).double()
    with torch.no_grad():
        dense.weight.copy_(conv.weight)
        dense.base_weight.copy_(conv.base_weight)
        dense.bias.copy_(conv.bias)
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x), dense(x))
    # one edge's K + 1 numbers are one meta-learner output: its prompt alone decides them
    out = conv.meta_learner(conv.prompts[1, 0, 2, 1]) * conv.weight_scale
    torch.testing.assert_close(conv.weight[1, 0, :, 2, 1], out[:-1])
    torch.testing.assert_close(conv.base_weight[1, 0, 2, 1], out[-1])


def test_meta_gradcheck():
    layer = MetaKANLinear(3, 2, hidden_dim=4, basis_kwargs={"grid_size": 3}).double()
    layer.chunk_size = 4
    x = (torch.rand(4, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    names = [name for name, _ in layer.named_parameters()]

    def fn(x_in, *params):
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x_in,))

    assert torch.autograd.gradcheck(fn, (x, *layer.parameters()))


def test_wrong_meta_learner_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"outputs 5 numbers .* needs 9"):
        MetaKANLinear(3, 2, meta_learner=MetaLearner(5))


def test_param_groups_reach_the_task_optimizer():
    net = MetaConvKAN(1, 10, channels=[4, 8], n_clusters=2, lr_prompt=1e-2, lr_meta=1e-3)
    assert net.cluster_labels == [0, 1, 1]  # widths 4 | 8, 10
    task = ClassificationTask(net, num_classes=10, optimizer=torch.optim.Adam)
    optimizer = task.configure_optimizers()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["prompts"]["lr"] == 1e-2
    assert groups["meta_learners"]["lr"] == 1e-3
    assert groups["other"]["lr"] == 1e-3  # batch norms and head bias
    assert len(groups["prompts"]["params"]) == 3  # two convolutions and the head
    counted = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert counted == net.num_parameters()


def test_metakan_learns_a_function():
    net = MetaKAN([2, 8, 1], hidden_dim=16, lr_prompt=1e-2, lr_meta=3e-3)
    x = torch.rand(256, 2) * 2 - 1
    y = torch.sin(3 * x[:, :1]) + x[:, 1:] ** 2
    opt = torch.optim.Adam(net.param_groups())
    first = None
    for _ in range(200):
        loss = torch.nn.functional.mse_loss(net(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_lotra_adapts_prompts_and_param_groups_still_build():
    lotra = pytest.importorskip("lightning_kan.lotra")
    net = MetaKAN([3, 6, 2], lr_prompt=1e-2, lr_meta=1e-3)
    x = torch.rand(5, 3)
    before = net(x)
    lotra.add_adapter(net, ranks=(2, 2, 1), parameter_name="prompts")
    torch.testing.assert_close(net(x), before)  # the adapter starts at zero
    optimizer = torch.optim.Adam(net.param_groups())
    assert all(p.is_leaf for g in optimizer.param_groups for p in g["params"])
