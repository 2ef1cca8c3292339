"""``split_linear``: the dense layer's two-GEMM contraction equals the packed GEMM, in
values, first and second derivatives, and is used exactly where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from lightning_kan import KANLinear, native
from lightning_kan.layers.coefficients import Coefficients
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.split_linear import split_linear

OUT, IN, K = 3, 4, 5


def _inputs(dtype: torch.dtype, bias: bool, lead: tuple[int, ...] = (6,)):
    torch.manual_seed(0)
    features = torch.randn(*lead, IN * K + IN, dtype=dtype, requires_grad=True)
    weight = torch.randn(OUT, IN, K, dtype=dtype, requires_grad=True)
    base_weight = torch.randn(OUT, IN, dtype=dtype, requires_grad=True)
    b = torch.randn(OUT, dtype=dtype, requires_grad=True) if bias else None
    return features, weight, base_weight, b


def _packed(features, weight, base_weight, bias):
    return F.linear(features, torch.cat([weight.reshape(OUT, -1), base_weight], -1), bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(6,), (2, 3), (1,)])
def test_matches_the_packed_gemm_in_values_and_gradients(bias, lead):
    inputs = _inputs(torch.float64, bias, lead)
    tensors = [t for t in inputs if t is not None]
    grad_y = torch.randn(*lead, OUT, dtype=torch.float64)
    expected = _packed(*inputs)
    expected_grads = torch.autograd.grad(expected, tensors, grad_y)
    got = split_linear(*inputs)
    got_grads = torch.autograd.grad(got, tensors, grad_y)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
        assert g.is_contiguous()


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_and_gradgradcheck_float64(bias):
    inputs = tuple(t for t in _inputs(torch.float64, bias) if t is not None)

    def fn(*tensors):
        features, weight, base_weight, *rest = tensors
        return split_linear(features, weight, base_weight, rest[0] if rest else None)

    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_only_some_inputs_need_grad():
    """A frozen layer (no parameter grads) and a first layer (no feature grad)."""
    features, weight, base_weight, bias = _inputs(torch.float64, True)
    frozen = [weight.detach(), base_weight.detach(), bias.detach()]
    (grad_features,) = torch.autograd.grad(split_linear(features, *frozen).sum(), [features])
    (expected,) = torch.autograd.grad(_packed(features, *frozen).sum(), [features])
    torch.testing.assert_close(grad_features, expected)
    data = features.detach()
    grads = torch.autograd.grad(split_linear(data, weight, base_weight, bias).sum(), [weight])
    torch.testing.assert_close(
        grads[0], torch.autograd.grad(_packed(data, weight, base_weight, bias).sum(), [weight])[0]
    )


def _grad_fn_name(layer: KANLinear, x: torch.Tensor) -> str:
    return type(layer(x).grad_fn).__name__


def test_kan_linear_uses_it_where_it_applies_and_the_packed_gemm_elsewhere():
    layer = KANLinear(IN, OUT)
    x = torch.rand(5, IN)
    # float32 with C kernels: expansion and GEMMs in one node (layers/native_linear.py)
    assert _grad_fn_name(layer, x) == (
        "_NativeLinearBackward" if native.available() else "_SplitLinearBackward"
    )
    assert _grad_fn_name(layer.double(), x.double()) == "_SplitLinearBackward"
    layer.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "Split" not in _grad_fn_name(layer, x)
    assert "Split" not in _grad_fn_name(KANLinear(IN, OUT, base_activation=None), x)
    # under torch.func the plain ops run (no custom Function): same values
    params = dict(layer.named_parameters())
    functional = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(functional, layer(x))
    jac = torch.func.jacrev(lambda inp: torch.func.functional_call(layer, params, (inp,)))(x)
    assert torch.isfinite(jac).all()


def test_layer_training_step_matches_the_packed_path():
    """A float32 KANLinear's output and parameter gradients equal the packed GEMM's."""
    torch.manual_seed(1)
    layer = KANLinear(IN, OUT, basis_kwargs={"grid_size": 7})
    x = (torch.rand(9, IN) * 2 - 1).requires_grad_(True)
    y = layer(x)
    grads = torch.autograd.grad(y.square().sum(), [x, *layer.parameters()])
    features = expand_features(x, layer.basis, layer.activation)
    reference = Coefficients.linear(layer.coefficients, layer, features)
    expected = torch.autograd.grad(reference.square().sum(), [x, *layer.parameters()])
    torch.testing.assert_close(y, reference)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
