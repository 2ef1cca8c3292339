"""KANLinear: the fused forward against a naive reference, gradients, errors, memory."""

import itertools
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import BASES

from lightning_kan import KAN, KANLinear, count_parameters
from lightning_kan.bases import ChebyshevBasis


def naive_forward(layer: KANLinear, x: torch.Tensor) -> torch.Tensor:
    """The layer's formula written out with plain autograd: basis einsum + base + bias."""
    y = torch.einsum("...ik,oik->...o", layer.basis(x), layer.weight)
    if layer.base_weight is not None:
        y = y + F.linear(F.silu(x), layer.base_weight)
    return y + layer.bias if layer.bias is not None else y


@pytest.mark.parametrize("name", sorted(BASES))
def test_fused_forward_and_gradients_match_naive_formula(name):
    layer = KANLinear(4, 3, basis=name, basis_kwargs=BASES[name]).double()
    x = (torch.randn(2, 5, 4, dtype=torch.float64) * 0.7).requires_grad_(True)
    y = layer(x)
    expected = naive_forward(layer, x)
    torch.testing.assert_close(y, expected)
    grad_out = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, layer.weight, layer.base_weight, layer.bias), grad_out)
    expected_grads = torch.autograd.grad(
        expected, (x, layer.weight, layer.base_weight, layer.bias), grad_out
    )
    for got, want in zip(grads, expected_grads, strict=False):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("base_activation", ["silu", "none"])
def test_kan_linear_gradcheck_and_gradgradcheck(name, base_activation):
    layer = KANLinear(3, 2, basis=name, basis_kwargs=BASES[name], base_activation=base_activation)
    layer = layer.double()
    x = (torch.rand(4, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_gradcheck_on_adapted_grid_and_custom_activation():
    layer = KANLinear(3, 2, base_activation=torch.nn.Softplus()).double()
    layer.update_grid(torch.randn(200, 3, dtype=torch.float64) ** 3)
    assert not layer.basis.is_uniform
    x = torch.randn(5, 3, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_gradient_flows_to_weights_with_parametrized_basis():
    class LearnableScale(ChebyshevBasis):
        def __init__(self, in_features):
            super().__init__(in_features, degree=3)
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return super().forward(x * self.scale)

    layer = KANLinear(2, 2, basis=LearnableScale(2))
    layer(torch.randn(8, 2)).sum().backward()
    assert layer.basis.scale.grad is not None and layer.basis.scale.grad != 0


def test_any_leading_dimensions():
    layer = KANLinear(4, 3)
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(layer(x), layer(x.reshape(-1, 4)).reshape(2, 3, 5, 3))
    assert layer(torch.randn(4)).shape == (3,)
    assert layer(torch.randn(0, 4)).shape == (0, 3)


@pytest.mark.parametrize(
    ("name", "kwargs", "per_edge"),
    [
        ("bspline", {"grid_size": 5, "spline_order": 3}, 8),
        ("bspline", {"grid_size": 10, "spline_order": 2}, 12),
        ("chebyshev", {"degree": 4}, 5),
        ("rbf", {"num_centers": 8}, 8),
    ],
)
@pytest.mark.parametrize("base_activation", ["silu", "none"])
@pytest.mark.parametrize("bias", [True, False])
def test_exact_parameter_counts(name, kwargs, per_edge, base_activation, bias):
    layer = KANLinear(
        7, 5, basis=name, basis_kwargs=kwargs, base_activation=base_activation, bias=bias
    )
    expected = 5 * 7 * per_edge + (5 * 7 if base_activation == "silu" else 0) + (5 if bias else 0)
    assert count_parameters(layer) == expected
    widths = [3, 7, 5, 2]
    net = KAN(widths, basis=name, basis_kwargs=kwargs, base_activation=base_activation, bias=bias)
    per_layer = [
        o * i * per_edge + (o * i if base_activation == "silu" else 0) + (o if bias else 0)
        for i, o in itertools.pairwise(widths)
    ]
    assert net.num_parameters() == sum(per_layer)


def test_coefficient_protocol_shapes():
    layer = KANLinear(6, 4, basis="bspline", basis_kwargs={"grid_size": 7, "spline_order": 2})
    assert isinstance(layer.weight, torch.nn.Parameter) and layer.weight.shape == (4, 6, 9)
    assert layer.base_weight.shape == (4, 6)
    assert layer.bias.shape == (4,)
    assert KANLinear(6, 4, base_activation="none").base_weight is None


def test_parametrized_weight_is_honoured():
    """An adapter registered with torch.nn.utils.parametrize changes the forward."""
    from torch.nn.utils import parametrize

    class AddOne(torch.nn.Module):
        def forward(self, weight):
            return weight + 1.0

    layer = KANLinear(3, 2)
    x = torch.randn(4, 3)
    before = layer(x)
    parametrize.register_parametrization(layer, "weight", AddOne())
    shift = layer.basis(x).sum(dim=(-1, -2))  # each output gains sum_i sum_k phi_k(x_i)
    torch.testing.assert_close(layer(x), before + shift.unsqueeze(-1))


@pytest.mark.parametrize("name", sorted(BASES))
def test_far_out_of_grid_inputs_give_finite_outputs_and_gradients(name):
    layer = KANLinear(3, 2, basis=name, basis_kwargs=BASES[name])
    x = torch.tensor([[1e4, -1e4, 0.5], [-3e3, 50.0, 1e6]], requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_bfloat16_inputs_are_expanded_in_float32():
    layer = KANLinear(4, 3)
    x = torch.randn(16, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), layer(x), atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "out_features": 2}, "in_features must be a positive integer, got 0"),
        ({"in_features": 2, "out_features": -3}, "out_features must be a positive integer, got -3"),
        ({"in_features": 2, "out_features": 2, "basis": "spline"}, "unknown basis 'spline'"),
        (
            {"in_features": 2, "out_features": 2, "base_activation": "swish"},
            "unknown base_activation 'swish'",
        ),
    ],
)
def test_bad_layer_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KANLinear(**kwargs)


def test_wrong_input_width_is_a_clear_error():
    layer = KANLinear(4, 2)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(\.\.\., 4\), got \(8, 5\)"):
        layer(torch.randn(8, 5))


def test_backward_keeps_no_basis_intermediates():
    """Autograd keeps only the features matrix the GEMM needs, the input and the weight."""
    batch, fan_in, fan_out = 256, 32, 16
    layer = KANLinear(fan_in, fan_out)
    x = torch.randn(batch, fan_in, requires_grad=True)
    saved_bytes = []

    def pack(tensor):
        saved_bytes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(x).sum().backward()
    num_basis = layer.num_basis_functions
    floats = batch * fan_in * (num_basis + 1) + batch * fan_in + fan_out * fan_in * (num_basis + 1)
    assert sum(saved_bytes) <= 4 * floats


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile's CPU backend needs a C++ compiler",
)
@pytest.mark.parametrize("name", ["bspline", "chebyshev"])
def test_compiled_expansion_matches_eager(name):
    eager = KANLinear(6, 4, basis=name, basis_kwargs=BASES[name])
    compiled = KANLinear(6, 4, basis=name, basis_kwargs=BASES[name], compiled=True)
    compiled.load_state_dict(eager.state_dict())
    x = (torch.rand(32, 6) * 3 - 1.5).requires_grad_(True)
    y_eager, y_compiled = eager(x), compiled(x)
    torch.testing.assert_close(y_compiled, y_eager, atol=1e-5, rtol=1e-5)
    grad_eager = torch.autograd.grad(y_eager.sum(), (x, eager.weight))
    grad_compiled = torch.autograd.grad(y_compiled.sum(), (x, compiled.weight))
    for got, want in zip(grad_compiled, grad_eager, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(BASES))
def test_nan_inputs_propagate_instead_of_crashing(name):
    layer = KANLinear(3, 2, basis=name, basis_kwargs=BASES[name])
    x = torch.tensor([[float("nan"), 0.1, 0.2], [0.3, 0.4, 0.5]])
    y = layer(x)
    assert torch.isnan(y[0]).all() and torch.isfinite(y[1]).all()
