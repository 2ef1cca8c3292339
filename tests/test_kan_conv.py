"""KAN convolutions against KANLinear references, nn.Conv shapes, gradients and errors."""

import pytest
import torch
import torch.nn.functional as F
from conftest import BASES

from lightning_kan import KANLinear, count_parameters
from lightning_kan.layers import KANConv1d, KANConv2d, KANConv3d
from lightning_kan.nets import ConvKAN

ELEMENTWISE_BASES = [
    *("bspline", "chebyshev", "rbf", "rswaf", "gram"),  # legendre: minmax mixes
    *("wavelet", "bernstein", "jacobi", "fourierkan", "relukan"),
]


def linear_reference(conv: KANConv2d, taps: int) -> KANLinear:
    """A KANLinear over unfolded (channel, tap) features carrying the conv's weights."""
    reference = KANLinear(
        conv.in_channels * taps,
        conv.out_channels,
        basis=_basis_name(conv),
        basis_kwargs=_basis_kwargs(conv),
    ).double()
    with torch.no_grad():
        if hasattr(conv.basis, "grid"):
            reference.basis.set_knots(
                conv.basis.grid.repeat_interleave(taps, dim=0), uniform=conv.basis.is_uniform
            )
        weight = conv.weight.flatten(3)  # (O, C, K, T)
        reference.weight.copy_(
            weight.permute(0, 1, 3, 2).reshape(conv.out_channels, -1, weight.shape[2])
        )
        reference.base_weight.copy_(conv.base_weight.flatten(1))
        reference.bias.copy_(conv.bias)
    return reference


def _basis_name(conv):
    return {
        "BSplineBasis": "bspline",
        "ChebyshevBasis": "chebyshev",
        "GaussianRBFBasis": "rbf",
        "RSWAFBasis": "rswaf",
        "GramBasis": "gram",
        "WaveletBasis": "wavelet",
        "BernsteinBasis": "bernstein",
        "JacobiBasis": "jacobi",
        "FourierBasis": "fourierkan",
        "ReLUKANBasis": "relukan",
    }[type(conv.basis).__name__]


def _basis_kwargs(conv):
    return BASES[_basis_name(conv)]


def make_conv(cls, name, *args, **kwargs):
    return cls(*args, basis=name, basis_kwargs=BASES[name], **kwargs).double()


@pytest.mark.parametrize("name", sorted(BASES))
def test_1x1_conv_equals_kan_linear_on_every_pixel(name):
    conv = make_conv(KANConv2d, name, 4, 3, 1)
    linear = KANLinear(4, 3, basis=name, basis_kwargs=BASES[name]).double()
    with torch.no_grad():
        linear.weight.copy_(conv.weight[..., 0, 0])
        linear.base_weight.copy_(conv.base_weight[..., 0, 0])
        linear.bias.copy_(conv.bias)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    expected = linear(x.movedim(1, -1)).movedim(-1, 1)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("name", ELEMENTWISE_BASES)
@pytest.mark.parametrize(("stride", "dilation"), [(1, 1), (2, 1), (1, 2)])
def test_kxk_conv_equals_unfold_then_kan_linear(name, stride, dilation):
    conv = make_conv(KANConv2d, name, 3, 4, (3, 2), stride=stride, dilation=dilation)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    y = conv(x)
    columns = F.unfold(x, (3, 2), dilation=dilation, stride=stride)  # (N, C*T, L)
    reference = linear_reference(conv, taps=6)
    expected = reference(columns.transpose(1, 2)).transpose(1, 2).reshape(y.shape)
    torch.testing.assert_close(y, expected)


def test_zero_padding_taps_contribute_nothing():
    conv = make_conv(KANConv2d, "bspline", 2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    columns = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 18)
    inside = F.unfold(torch.ones(1, 1, 5, 5, dtype=torch.float64), 3, padding=1)
    inside = inside.transpose(1, 2).reshape(-1, 1, 9).repeat(1, 1, 2)  # (L, 1, C*T)
    edges = linear_reference(conv, taps=9).edge_activations(columns)  # (L, O, C*T)
    expected = (edges * inside).sum(-1) + conv.bias
    torch.testing.assert_close(conv(x)[0].flatten(1).T, expected)


def test_reflect_padding_pads_the_input():
    conv = make_conv(KANConv2d, "chebyshev", 2, 3, 3, padding=1, padding_mode="reflect")
    plain = make_conv(KANConv2d, "chebyshev", 2, 3, 3)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(conv(x), plain(F.pad(x, (1, 1, 1, 1), mode="reflect")))


def test_grouped_conv_equals_separate_convs_per_group():
    conv = make_conv(KANConv2d, "bspline", 4, 6, 3, groups=2, padding=1)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    parts = []
    for g in range(2):
        part = make_conv(KANConv2d, "bspline", 2, 3, 3, padding=1)
        with torch.no_grad():
            part.weight.copy_(conv.weight[3 * g : 3 * g + 3])
            part.base_weight.copy_(conv.base_weight[3 * g : 3 * g + 3])
            part.bias.copy_(conv.bias[3 * g : 3 * g + 3])
            part.basis.set_knots(conv.basis.grid[2 * g : 2 * g + 2], uniform=True)
        parts.append(part(x[:, 2 * g : 2 * g + 2]))
    torch.testing.assert_close(conv(x), torch.cat(parts, dim=1))


@pytest.mark.parametrize(
    ("cls", "torch_cls", "spatial"),
    [
        (KANConv1d, torch.nn.Conv1d, (11,)),
        (KANConv2d, torch.nn.Conv2d, (9, 10)),
        (KANConv3d, torch.nn.Conv3d, (5, 6, 7)),
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        {"kernel_size": 3},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 2, "dilation": 2, "padding": 2},
        {"kernel_size": 3, "groups": 2, "padding": "same"},
        {"kernel_size": 1, "padding": "valid"},
    ],
)
def test_output_shapes_match_torch_convolutions(cls, torch_cls, spatial, options):
    x = torch.randn(2, 4, *spatial)
    expected = torch_cls(4, 6, **options)(x).shape
    assert cls(4, 6, **options)(x).shape == expected
    assert cls(4, 6, **options)(x[0]).shape == expected[1:]  # unbatched input


@pytest.mark.parametrize("name", sorted(BASES))
def test_conv2d_gradcheck_every_basis(name):
    conv = make_conv(KANConv2d, name, 2, 2, 2, padding=1)
    x = (torch.rand(1, 2, 3, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(conv, (x,))


@pytest.mark.parametrize("cls", [KANConv1d, KANConv3d])
def test_conv1d_conv3d_gradcheck_and_gradgradcheck(cls):
    conv = make_conv(cls, "bspline", 2, 2, 2, groups=2)
    x = (torch.rand(1, 2, *([3] * cls.ndim), dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(conv, (x,))
    assert torch.autograd.gradgradcheck(conv, (x,))


@pytest.mark.parametrize(
    ("groups", "base_activation", "bias"), [(1, "silu", True), (2, "none", False)]
)
def test_exact_parameter_counts(groups, base_activation, bias):
    conv = KANConv2d(4, 6, (3, 2), groups=groups, base_activation=base_activation, bias=bias)
    edges = 6 * (4 // groups) * 3 * 2
    expected = edges * 8 + (edges if base_activation == "silu" else 0) + (6 if bias else 0)
    assert count_parameters(conv) == expected


def test_conv_grid_refinement_is_exact_and_update_moves_knots():
    conv = KANConv2d(4, 6, 3, groups=2, padding=1)
    with torch.no_grad():
        conv.weight.copy_(
            torch.sin(3 * torch.linspace(-1, 1, 8)).reshape(1, 1, 8, 1, 1) * conv.weight.sign()
        )
    x = torch.rand(2, 4, 6, 6) * 2.4 - 1.2
    before = conv(x)
    conv.refine_grid(10)
    assert conv.weight.shape == (6, 2, 13, 3, 3)
    assert (conv(x) - before).abs().max() <= 1e-4
    conv.update_grid(torch.randn(8, 4, 6, 6) * 0.5, grid_eps=0.05)
    assert not conv.basis.is_uniform and torch.isfinite(conv(x)).all()
    relative = (conv(x) - before).norm() / before.norm()
    assert relative < 0.2


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: KANConv2d(3, 4, 3, groups=2),
            r"in_channels \(3\) and out_channels \(4\) must both be divisible by groups \(2\)",
        ),
        (
            lambda: KANConv2d(4, 4, 0),
            r"kernel_size must be an integer >= 1 or a tuple of 2 such integers, got 0",
        ),
        (lambda: KANConv2d(4, 4, (3, 3, 3)), r"got \(3, 3, 3\)"),
        (lambda: KANConv2d(4, 4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
        (lambda: KANConv2d(4, 4, 3, padding_mode="mirror"), "padding_mode must be one of"),
        (lambda: KANConv2d(4, 4, 3, basis="wavelets"), "unknown basis 'wavelets'"),
        (
            lambda: KANConv2d(4, 4, 3)(torch.randn(2, 4, 5)),
            r"expects inputs of shape \(N, 4, H, W\) or \(4, H, W\), got \(2, 4, 5\)",
        ),
        (lambda: KANConv2d(4, 4, 3)(torch.randn(2, 3, 5, 5)), "got \\(2, 3, 5, 5\\)"),
        (
            lambda: ConvKAN(in_channels=1, num_classes=10, norm="layer"),
            "norm must be 'batch', 'instance', 'group' or None",
        ),
        (lambda: ConvKAN.from_layout("resnet"), "unknown layout 'resnet'"),
    ],
)
def test_conv_errors_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_metakan_layouts():
    net = ConvKAN.from_layout("metakan-8", in_channels=3, num_classes=10)
    widths = [block[0].out_channels for block in net.blocks]
    assert widths == [16, 32, 64, 128, 256, 256, 512, 512]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [
        b[0].out_channels
        for b in ConvKAN.from_layout("metakan-4", in_channels=1, num_classes=10).blocks
    ] == [
        32,
        64,
        128,
        256,
    ]


def test_conv_kan_learns_digits():
    """A small ConvKAN reaches >= 95% test accuracy on scikit-learn's 8x8 digits."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels))
    train, test = order[:1400], order[1400:]
    net = ConvKAN(in_channels=1, num_classes=10, channels=(16, 32), basis_kwargs={"grid_size": 5})
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-4)
    for _epoch in range(6):
        net.train()
        for batch in train[torch.randperm(len(train))].split(64):
            loss = F.cross_entropy(net(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(images[test]).argmax(-1) == labels[test]).float().mean().item()
    assert accuracy >= 0.95, accuracy
