"""A dense layer's C expansion and GEMMs as one autograd node (``layers/native_linear.py``):
for every family with a C kernel it equals the float64 layer (an independent path: the
torch expansion and ``split_linear``) in outputs, parameter and input gradients and the
gradients of a physics-informed (double backward) loss, and it is used exactly where it
applies."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import trained_layer

from lightning_kan import native
from lightning_kan.bases import available_bases
from lightning_kan.layers.masks import set_edge_mask

pytestmark = pytest.mark.skipif(not native.available(), reason="C kernels not built")

NODE = "_NativeLinearBackward"
LOCAL = "_LocalSplineLinearBackward"
FAMILIES = [name for name in available_bases() if name != "bspline"] + ["bspline"]


def _layer(basis="chebyshev", in_features=11, out_features=7, **kwargs):
    return trained_layer(in_features, out_features, basis=basis, **kwargs)


def _inputs(rows, in_features, lead=()):
    """Inputs across and beyond every family's default domain, with exact zeros."""
    torch.manual_seed(1)
    x = torch.rand(*lead, rows, in_features) * 3 - 1.5
    x.view(-1, in_features)[0, :3] = torch.tensor([0.0, 1.0, -1.0])
    return x.requires_grad_(True)


def _node(y: torch.Tensor) -> str:
    return type(y.grad_fn).__name__


def _step(layer, x):
    """Output and the gradients (input first) of a loss weighting each output differently."""
    y = layer(x)
    weights = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)
    parameters = [p for p in layer.parameters() if p.requires_grad]
    return y, torch.autograd.grad((y * weights).sum(), [x, *parameters])


def _assert_matches_float64(layer, x, relative=1e-5):
    y, grads = _step(layer, x)
    assert _node(y) == NODE
    reference = layer.double()
    x64 = x.detach().double().requires_grad_(True)
    y64, grads64 = _step(reference, x64)
    assert _node(y64) != NODE
    scale = float(y64.detach().abs().max())
    torch.testing.assert_close(y.double(), y64, rtol=0, atol=relative * scale)
    for grad, grad64 in zip(grads, grads64, strict=True):
        tolerance = relative * float(grad64.abs().max())
        torch.testing.assert_close(grad.double(), grad64, rtol=0, atol=tolerance)


@pytest.mark.parametrize("basis", FAMILIES)
def test_every_family_matches_the_float64_layer(basis):
    _assert_matches_float64(_layer(basis), _inputs(40, 11))


@pytest.mark.parametrize(
    ("activation", "bias"), [("tanh", True), ("identity", False), (None, True)]
)
def test_base_branches_and_no_bias(activation, bias):
    layer = _layer("rbf", base_activation=activation, bias=bias)
    assert (layer.base_weight is None) == (activation is None)
    _assert_matches_float64(layer, _inputs(33, 11))


def test_leading_dimensions_and_a_first_layer():
    layer = _layer("legendre", in_features=9, out_features=20)
    x = _inputs(5, 9, lead=(2, 3)).detach()
    y = layer(x)
    assert y.shape == (2, 3, 5, 20)
    torch.testing.assert_close(y, layer(x.reshape(-1, 9)).view_as(y))
    y.sum().backward()  # no input gradient asked for: only the parameters'
    assert x.grad is None and layer.weight.grad is not None and layer.bias.grad is not None


def test_an_empty_batch():
    layer = _layer()
    x = torch.zeros(0, 11, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 7) and _node(y) == NODE
    y.sum().backward()
    assert x.grad.shape == (0, 11) and not layer.weight.grad.any()


def test_a_frozen_layer_gives_only_the_input_gradient():
    layer = _layer("fourierkan").requires_grad_(False)
    x = _inputs(20, 11)
    y = layer(x)
    assert _node(y) == NODE
    (grad,) = torch.autograd.grad(y.square().sum(), x)
    x64 = x.detach().double().requires_grad_(True)
    (grad64,) = torch.autograd.grad(layer.double()(x64).square().sum(), x64)
    torch.testing.assert_close(
        grad.double(), grad64, rtol=1e-5, atol=1e-5 * float(grad64.abs().max())
    )


#: (basis, options, the node it takes): the one-node path, and the local B-spline
#: contraction (``layers/local_spline.py``), which shares its dispatch and double backward
PATHS = [
    ("chebyshev", {}, NODE),
    ("rswaf", {}, NODE),
    ("bspline", {}, NODE),
    ("bspline", {"grid_size": 20}, LOCAL),
]


@pytest.mark.parametrize(("basis", "options", "node"), PATHS)
def test_double_backward_matches_the_float64_layer(basis, options, node):
    """A physics-informed loss differentiates du/dx again: under create_graph the backward
    is built from the basis' differentiable operations."""

    def residual_grads(layer, x):
        u = layer(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        return torch.autograd.grad(du.square().sum(), [layer.weight, layer.base_weight])

    layer = _layer(basis, in_features=3, out_features=16, basis_kwargs=options)
    x = _inputs(50, 3)
    assert _node(layer(x)) == node
    grads = residual_grads(layer, x)
    grads64 = residual_grads(layer.double(), x.detach().double().requires_grad_(True))
    for grad, grad64 in zip(grads, grads64, strict=True):
        tolerance = 1e-5 * float(grad64.abs().max())
        torch.testing.assert_close(grad.double(), grad64, rtol=0, atol=tolerance)


@pytest.mark.parametrize(("basis", "options", "node"), [PATHS[0], PATHS[-1]])
def test_parametrised_weights_get_their_gradient(basis, options, node):
    """An edge mask (a parametrisation of weight and base_weight) is honoured: cut edges
    give nothing and get a zero gradient."""
    layer = _layer(basis, in_features=6, out_features=16, basis_kwargs=options)
    mask = torch.ones(16, 6, dtype=torch.bool)
    mask[2, 4] = False
    set_edge_mask(layer, mask)
    x = _inputs(30, 6)
    y = layer(x)
    assert _node(y) == node
    y.square().sum().backward()
    original = layer.parametrizations.weight.original
    assert original.grad[2, 4].abs().max() == 0 and original.grad.abs().sum() > 0


def test_used_only_where_it_applies():
    x = _inputs(20, 11).detach()
    layer = _layer("chebyshev")
    assert _node(layer(x)) == NODE
    assert _node(layer.double()(x.double())) != NODE
    layer.float()
    compiled = _layer(compiled=True)  # not compiled here: only the dispatch is asked
    assert compiled.coefficients.linear_from_inputs(compiled, x) is None
    assert _node(_layer(base_activation="gelu")(x)) != NODE  # no C code for GELU
    trainable = _layer("wavelet", basis_kwargs={"trainable": True})
    assert _node(trainable(x)) != NODE
    assert _node(_layer(coefficients="tucker", coefficients_kwargs={"ranks": 2})(x)) != NODE
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _node(layer(x)) != NODE
    previous = native.set_enabled(False)
    try:
        assert _node(layer(x)) != NODE
    finally:
        native.set_enabled(previous)
    # torch.func: plain differentiable operations, the same values
    params = dict(layer.named_parameters())
    functional = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(functional, layer(x), rtol=1e-5, atol=1e-5)
