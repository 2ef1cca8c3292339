"""Tucker helpers and Slim KAN: factored forward, parameter count, compression."""

import itertools
import math

import pytest
import torch
from conftest import BASES

from lightning_kan.layers import KANLinear, SlimKANLinear
from lightning_kan.layers.tucker import (
    fold,
    hooi,
    hosvd,
    mode_product,
    ranks_for_energy,
    relative_error,
    tucker_to_tensor,
    unfold,
)
from lightning_kan.nets import KAN, SlimKAN


def test_unfold_fold_and_mode_product_match_einsum():
    t = torch.randn(3, 4, 5, dtype=torch.float64)
    assert unfold(t, 1).shape == (4, 15)
    torch.testing.assert_close(unfold(t, 1), t.permute(1, 0, 2).reshape(4, 15))
    for mode in range(3):
        torch.testing.assert_close(fold(unfold(t, mode), mode, t.shape), t)
    m = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(mode_product(t, m, 1), torch.einsum("aib,ji->ajb", t, m))
    with pytest.raises(ValueError, match=r"\(m, 5\)"):
        mode_product(t, m, 2)


def test_hosvd_full_rank_is_exact_and_hooi_never_worse():
    t = torch.randn(6, 5, 7, dtype=torch.float64)
    core, factors = hosvd(t, t.shape)
    assert relative_error(t, tucker_to_tensor(core, factors)) < 1e-12
    for rank in (1, 2, 3, 4):
        err_hosvd = relative_error(t, tucker_to_tensor(*hosvd(t, rank)))
        err_hooi = relative_error(t, tucker_to_tensor(*hooi(t, rank, iters=5)))
        assert err_hooi <= err_hosvd + 1e-12
    assert ranks_for_energy(t, 1.0) == (6, 5, 7)
    low_rank = tucker_to_tensor(
        torch.randn(2, 3, 2, dtype=torch.float64),
        [torch.randn(n, r, dtype=torch.float64) for n, r in ((6, 2), (5, 3), (7, 2))],
    )
    assert ranks_for_energy(low_rank, 0.999999) == (2, 3, 2)


def _dense_copy(slim: SlimKANLinear) -> KANLinear:
    dense = KANLinear(slim.in_features, slim.out_features, basis=slim.basis).double()
    with torch.no_grad():
        dense.weight.copy_(slim.weight)
        dense.base_weight.copy_(slim.base_weight)
        dense.bias.copy_(slim.bias)
    return dense


@pytest.mark.parametrize("contraction", ["sequential", "kron", "auto"])
@pytest.mark.parametrize("name", ["bspline", "chebyshev", "rbf"])
def test_factored_forward_equals_dense_forward_of_the_rebuilt_tensor(name, contraction):
    slim = SlimKANLinear(6, 4, ranks=(3, 4, 2), basis=name, basis_kwargs=BASES[name]).double()
    slim.contraction = contraction
    x = torch.rand(2, 9, 6, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(slim(x), _dense_copy(slim)(x))


def test_slim_layer_has_only_tucker_factors_as_spline_parameters():
    slim = SlimKANLinear(7, 5, ranks=(2, 3, 4))
    names = {name for name, _ in slim.named_parameters()}
    assert names == {"core", "factor_out", "factor_in", "factor_basis", "base_weight", "bias"}
    assert "weight" not in dict(slim.named_parameters())


def test_slim_kan_parameter_count():
    widths, ranks = [5, 7, 3], (3, 4, 4)
    net = SlimKAN(widths, ranks=ranks, basis_kwargs={"grid_size": 5})
    K = 8
    expected = 0
    for fan_in, fan_out in itertools.pairwise(widths):
        r1, r2, r3 = min(ranks[0], fan_out), min(ranks[1], fan_in), min(ranks[2], K)
        spline = r1 * r2 * r3 + fan_out * r1 + fan_in * r2 + K * r3
        base = fan_out * fan_in + fan_out  # base weight + bias
        expected += spline + base
    assert net.num_parameters() == expected


def test_from_dense_full_ranks_reproduces_the_kan_and_error_falls_with_rank():
    kan = KAN([4, 6, 3], basis_kwargs={"grid_size": 5}).double()
    with torch.no_grad():  # a "trained" KAN: coefficients well away from the init
        for layer in kan.layers:
            layer.weight.normal_()
    x = torch.rand(32, 4, dtype=torch.float64) * 2 - 1
    full = SlimKAN.from_dense(kan, ranks=8)  # clipped to each layer's mode sizes
    assert full.ranks == [(6, 4, 8), (3, 6, 8)]
    assert max(full.compression_errors) < 1e-12
    torch.testing.assert_close(full(x), kan(x))
    errors = [sum(SlimKAN.from_dense(kan, ranks=r).compression_errors) for r in (1, 2, 3, 4)]
    assert all(a > b for a, b in itertools.pairwise(errors))
    refined = SlimKAN.from_dense(kan, ranks=2, hooi_iters=5).compression_errors
    plain = SlimKAN.from_dense(kan, ranks=2).compression_errors
    assert all(r <= p + 1e-12 for r, p in zip(refined, plain, strict=True))
    energy = SlimKAN.from_dense(kan, energy=0.9)
    assert all(e <= math.sqrt(1 - 0.9) * 3 for e in energy.compression_errors)


def test_slim_gradcheck():
    slim = SlimKANLinear(3, 2, ranks=(2, 2, 3), basis_kwargs={"grid_size": 3}).double()
    x = (torch.rand(4, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    params = (x, slim.core, slim.factor_out, slim.factor_in, slim.factor_basis)

    def fn(x_in, core, u1, u2, u3):
        return torch.func.functional_call(
            slim,
            {"core": core, "factor_out": u1, "factor_in": u2, "factor_basis": u3},
            (x_in,),
        )

    for contraction in ("sequential", "kron"):
        slim.contraction = contraction
        assert torch.autograd.gradcheck(fn, params)


def test_bad_ranks_are_clear_errors():
    with pytest.raises(ValueError, match=r"ranks\[1\]=9 .*mode 1 of size 4.*1\.\.4"):
        SlimKANLinear(4, 3, ranks=(2, 9, 2))
    with pytest.raises(ValueError, match="one rank per mode"):
        SlimKANLinear(4, 3, ranks=(2, 2))
    with pytest.raises(ValueError, match=r"ranks=0"):
        SlimKAN([3, 2], ranks=0)
    with pytest.raises(ValueError, match="2 layers"):
        SlimKAN([3, 4, 2], ranks=[2, 3, (2, 2, 2)])
    kan = KAN([3, 2])
    with pytest.raises(ValueError, match="exactly one of ranks and energy"):
        SlimKAN.from_dense(kan)
    with pytest.raises(ValueError, match=r"energy=1\.5"):
        SlimKAN.from_dense(kan, energy=1.5)


def test_slim_kan_trains_and_refuses_grid_updates():
    net = SlimKAN([2, 5, 1], ranks=3)
    x = torch.rand(256, 2) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    with pytest.raises(NotImplementedError, match="from_dense"):
        net.update_grid(x)


def test_lotra_adapts_the_slim_core():
    lotra = pytest.importorskip("lightning_kan.lotra")
    net = SlimKAN([3, 6, 2], ranks=3)
    x = torch.rand(5, 3)
    before = net(x)
    lotra.add_adapter(net, ranks=2, parameter_name="core")
    torch.testing.assert_close(net(x), before)
    net(x).sum().backward()
    adapter = [n for n, p in net.named_parameters() if "adapters" in n and p.grad is not None]
    assert adapter


@pytest.mark.parametrize(
    ("slim_cls", "dense_cls", "shape", "options"),
    [
        ("SlimKANConv1d", "KANConv1d", (2, 3, 9), {"padding": 2, "dilation": 2}),
        ("SlimKANConv2d", "KANConv2d", (2, 3, 7, 7), {"padding": 1, "stride": 2}),
        ("SlimKANConv2d", "KANConv2d", (3, 6, 6), {"padding": 1, "padding_mode": "reflect"}),
        ("SlimKANConv3d", "KANConv3d", (1, 3, 4, 4, 4), {"padding": "same"}),
    ],
)
def test_slim_conv_matches_dense_conv_of_the_rebuilt_tensor(slim_cls, dense_cls, shape, options):
    from lightning_kan import layers

    slim = getattr(layers, slim_cls)(3, 4, 3, ranks=(2, 3, 4), **options).double()
    K, taps = 8, 3**slim.ndim
    assert slim.num_spline_parameters() == 2 * 3 * 4 * taps + 4 * 2 + 3 * 3 + K * 4
    dense = getattr(layers, dense_cls)(3, 4, 3, **options).double()
    with torch.no_grad():
        dense.weight.copy_(slim.weight)
        dense.base_weight.copy_(slim.base_weight)
        dense.bias.copy_(slim.bias)
    x = torch.rand(*shape, dtype=torch.float64)
    torch.testing.assert_close(slim(x), dense(x))
    # and back: full-rank compression of the dense layer reproduces it
    full, error = getattr(layers, slim_cls).from_dense(dense, ranks=(4, 3, 8))
    assert error < 1e-12
    torch.testing.assert_close(full(x), dense(x))


def test_slim_conv_gradcheck_and_bad_options():
    from lightning_kan.layers import KANConv1d, SlimKANConv1d, SlimKANConv2d

    slim = SlimKANConv2d(2, 3, 3, ranks=2, padding=1, basis_kwargs={"grid_size": 3}).double()
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    names = [name for name, _ in slim.named_parameters()]

    def fn(*params):
        return torch.func.functional_call(slim, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(fn, tuple(slim.parameters()))
    with pytest.raises(ValueError, match="groups=2"):
        SlimKANConv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"ranks\[0\]=9"):
        SlimKANConv2d(2, 3, 3, ranks=(9, 1, 1))
    with pytest.raises(ValueError, match="KANConv2d"):
        SlimKANConv2d.from_dense(KANConv1d(2, 3, 3), ranks=2)
    errors = [SlimKANConv1d.from_dense(KANConv1d(3, 5, 3), ranks=r)[1] for r in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_slim_conv_kan_has_only_factors_and_classifies_images():
    from lightning_kan.nets import ConvKAN, SlimConvKAN

    net = SlimConvKAN(1, 10, channels=[4, 8], ranks=3)
    assert not any(
        name.endswith(".weight") and p.dim() >= 3 and "blocks" in name and "base" not in name
        for name, p in net.named_parameters()
    )
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert net.num_parameters() < ConvKAN(1, 10, channels=[4, 8]).num_parameters()
