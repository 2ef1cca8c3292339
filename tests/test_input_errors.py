"""Bad inputs to layers, networks and their methods get one clear paragraph naming the
argument, the value, what was expected and how to fix it."""

import numpy as np
import pytest
import torch

from lightning_kan import KAN, KANLinear
from lightning_kan.layers import KANConv2d, MetaKANLinear, SlimKANLinear
from lightning_kan.nets import MLP, ConvKAN, MetaConvKAN, MetaKAN, SlimKAN

INT = torch.ones(4, 2, dtype=torch.long)
FLOAT_HINT = r"expects a floating-point input x, got dtype torch\.int64; .*x\.float\(\)"

LAYER_INPUTS = [
    ("int", lambda: KANLinear(2, 3)(INT), FLOAT_HINT),
    ("int chebyshev", lambda: KANLinear(2, 3, basis="chebyshev")(INT), FLOAT_HINT),
    ("int slim", lambda: SlimKANLinear(2, 3)(INT), "SlimKANLinear " + FLOAT_HINT),
    ("int meta", lambda: MetaKANLinear(2, 3)(INT), "MetaKANLinear " + FLOAT_HINT),
    (
        "int conv",
        lambda: KANConv2d(1, 2, 3)(torch.ones(1, 1, 5, 5, dtype=torch.long)),
        "KANConv2d " + FLOAT_HINT,
    ),
    (
        "bool",
        lambda: KANLinear(2, 3)(torch.ones(4, 2, dtype=torch.bool)),
        r"got dtype torch\.bool; .*x\.float\(\)",
    ),
    (
        "complex",
        lambda: KANLinear(2, 3)(torch.ones(4, 2, dtype=torch.complex64)),
        r"real floating-point input x, got dtype torch\.complex64; .*view_as_real",
    ),
    ("list", lambda: KANLinear(2, 3)([[0.1, 0.2]]), r"torch\.Tensor of floats, got a list"),
    ("numpy", lambda: KANLinear(2, 3)(np.zeros((4, 2))), "got a ndarray; .*torch.as_tensor"),
    ("list conv", lambda: KANConv2d(1, 2, 3)([[[0.0]]]), "KANConv2d expects its input x"),
    ("KAN int", lambda: KAN([2, 3, 1])(INT), "KAN " + FLOAT_HINT),
    ("KAN list", lambda: KAN([2, 3, 1])([[0.1, 0.2]]), "KAN expects its input x"),
    (
        "KAN complex",
        lambda: KAN([2, 3, 1])(torch.ones(4, 2, dtype=torch.complex64)),
        "complex64",
    ),
    (
        "KAN last dim",
        lambda: KAN([2, 3, 1])(torch.ones(4, 3)),
        r"shape \(\.\.\., 2\) \(widths\[0\] = 2 features\), got \(4, 3\); .*widths\[0\] = 3",
    ),
    ("ConvKAN int", lambda: ConvKAN(1, 10)(torch.ones(2, 1, 8, 8, dtype=torch.long)), "int64"),
    ("MLP int", lambda: MLP([2, 3, 1])(INT), "MLP " + FLOAT_HINT),
    ("update_grid int", lambda: KAN([2, 3, 1]).update_grid(INT), FLOAT_HINT),
    ("edge_magnitudes int", lambda: KAN([2, 3, 1]).edge_magnitudes(INT), FLOAT_HINT),
]

X = torch.randn(8, 2)
METHOD_ARGUMENTS = [
    (
        "update_grid 4 of 68 rows non-finite",
        lambda: KAN([2, 3, 1]).update_grid(
            torch.cat([torch.randn(64, 2), torch.full((4, 2), float("inf"))])
        ),
        r"4 of 68 samples .* NaN or inf; .*torch\.isfinite",
    ),
    ("update_grid one row", lambda: KANLinear(2, 2).update_grid(X[:1]), "at least 2 samples"),
    (
        "refine_grid samples_per_interval=0",
        lambda: KANLinear(2, 2).refine_grid(10, samples_per_interval=0),
        "samples_per_interval must be a positive integer, got 0",
    ),
    ("l1 < 0", lambda: KAN([2, 3, 1]).regularization(X, l1=-1.0), r"l1 must be .* >= 0, got -1\.0"),
    (
        "entropy nan",
        lambda: KAN([2, 3, 1]).regularization(X, entropy=float("nan")),
        "entropy must be a finite number >= 0, got nan",
    ),
    ("l1 str", lambda: KAN([2, 3, 1]).regularization(X, l1="a"), "l1 must be .*got 'a'"),
    (
        "max_samples 0",
        lambda: KAN([2, 3, 1]).regularization(X, max_samples=0),
        "max_samples must be a positive integer, got 0",
    ),
]

CONSTRUCTORS = [
    ("KAN [-5]", lambda: KAN([-5], in_features=2, out_features=1), r"widths=\[-5\] holds -5"),
    ("KAN [-5] alone", lambda: KAN([-5]), r"widths=\[-5\] holds -5 at position 0"),
    ("KAN 2.5", lambda: KAN([2, 2.5, 1]), r"holds 2\.5 at position 1"),
    ("KAN True", lambda: KAN([2, True, 1]), "holds True at position 1"),
    ("KAN int widths", lambda: KAN(5), r"widths must be a list .* got int 5"),
    ("KAN str widths", lambda: KAN("25"), "widths must be a list .* got str '25'"),
    ("KAN in_features 0", lambda: KAN([3], in_features=0), "in_features must be .*got 0"),
    (
        "basis_kwargs list",
        lambda: KAN([2, 3, 1], basis_kwargs=[1]),
        r"basis_kwargs must be a dict .* got list \[1\]",
    ),
    (
        "spline_init_scale < 0",
        lambda: KAN([2, 3, 1], spline_init_scale=-1.0),
        r"spline_init_scale must be a finite number >= 0 .* got -1\.0",
    ),
    ("spline_init_scale str", lambda: KANLinear(2, 2, spline_init_scale="a"), "got 'a'"),
    ("MLP [-5]", lambda: MLP([-5], in_features=2, out_features=1), r"widths=\[-5\] holds -5"),
    ("MLP int widths", lambda: MLP(5), "widths must be a list .* got int 5"),
    ("SlimKAN [-5]", lambda: SlimKAN([-5], in_features=2, out_features=1), "holds -5"),
    ("SlimKAN ranks 2.5", lambda: SlimKAN([2, 3, 1], ranks=2.5), r"ranks must be .* float 2\.5"),
    ("SlimKAN ranks str", lambda: SlimKAN([2, 3, 1], ranks="a"), "ranks must be .* str 'a'"),
    ("MetaKAN [-5]", lambda: MetaKAN([-5], in_features=2, out_features=1), "holds -5"),
    ("MetaKAN int widths", lambda: MetaKAN(5), "widths must be a list .* got int 5"),
    (
        "MetaKAN lr_prompt < 0",
        lambda: MetaKAN([2, 3, 1], lr_prompt=-1.0),
        r"lr_prompt must be a finite learning rate > 0 or None .* got -1\.0",
    ),
    ("ConvKAN channels", lambda: ConvKAN(1, 10, channels=[-3]), r"channels=\[-3\] holds -3"),
    ("ConvKAN int channels", lambda: ConvKAN(1, 10, channels=16), "channels must be a list"),
    ("ConvKAN num_classes", lambda: ConvKAN(1, 0), "num_classes must be a positive integer"),
    ("ConvKAN dropout str", lambda: ConvKAN(1, 10, dropout="a"), r"dropout must be in \[0, 1\)"),
    ("MetaConvKAN channels", lambda: MetaConvKAN(1, 10, channels=16), "channels must be a list"),
    ("MetaConvKAN in_channels", lambda: MetaConvKAN(0, 10), "in_channels must be .*got 0"),
    (
        "legendre minmax one input",
        lambda: KANLinear(1, 2, basis="legendre", basis_kwargs={"normalization": "minmax"}),
        "needs in_features >= 2",
    ),
]


@pytest.mark.parametrize(
    ("call", "match"),
    [pytest.param(call, match, id=name) for name, call, match in LAYER_INPUTS],
)
def test_bad_layer_and_network_inputs_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [pytest.param(call, match, id=name) for name, call, match in METHOD_ARGUMENTS],
)
def test_bad_method_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [pytest.param(call, match, id=name) for name, call, match in CONSTRUCTORS],
)
def test_bad_constructor_arguments_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_metakan_sizes_its_learners_with_the_real_input_width():
    """Was built for in_features=1, so minmax (needs >= 2 inputs) was refused wrongly."""
    net = MetaKAN([2, 3, 1], basis="legendre", basis_kwargs={"normalization": "minmax"})
    assert net(torch.randn(4, 2)).shape == (4, 1)
