"""The eager fused expansion in row chunks (``CHUNK_VALUES``) computes what plain autograd
of the basis' ``forward`` computes: values, input and weight gradients, double backward,
for every registered basis, with ragged last chunks and leading batch dimensions."""

from __future__ import annotations

import pytest
import torch

from lightning_kan import KANLinear
from lightning_kan.bases import available_bases, build_basis
from lightning_kan.layers import expansion

IN_FEATURES = 3


@pytest.fixture
def small_chunks(monkeypatch):
    """Two rows per chunk, whatever the thread count."""
    monkeypatch.setattr(expansion, "_chunk_rows", lambda row_values: 2)


def test_chunk_rows_hold_chunk_values_per_thread(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert expansion._chunk_rows(1000) == expansion.CHUNK_VALUES * 3 // 1000
    assert expansion._chunk_rows(10 * expansion.CHUNK_VALUES) == 1  # a wide row: one a chunk


def _plain(layer: KANLinear, x: torch.Tensor) -> torch.Tensor:
    features = expansion._plain_expansion(x, layer.basis, layer.activation)
    return layer.coefficients.linear(layer, features)


def _perturbed_layer(name: str) -> KANLinear:
    torch.manual_seed(0)
    layer = KANLinear(IN_FEATURES, 2, basis=name).double()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return layer


@pytest.mark.parametrize("name", available_bases())
def test_chunked_layer_matches_plain_autograd(name, small_chunks):
    layer = _perturbed_layer(name)
    assert layer.basis.is_parameter_free
    x = (torch.rand(3, 5, IN_FEATURES, dtype=torch.float64) * 3 - 1.5).requires_grad_(True)
    chunk_rows = []
    expand_into = layer.basis.expand_into
    layer.basis.expand_into = lambda rows, out: (
        chunk_rows.append(len(rows)) or expand_into(rows, out)
    )
    y, expected = layer(x), _plain(layer, x)
    assert chunk_rows == [2] * 7 + [1]  # 15 rows: 7 full chunks and a ragged one
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(y)
    targets = (x, layer.weight, layer.base_weight, layer.bias)
    grads = torch.autograd.grad(y, targets, grad_out)
    expected_grads = torch.autograd.grad(expected, targets, grad_out)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["bernstein", "bspline", "chebyshev", "rbf", "rswaf", "wavelet"])
def test_chunked_layer_gradcheck_and_gradgradcheck(name, small_chunks):
    layer = _perturbed_layer(name)
    x = (torch.rand(5, IN_FEATURES, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_chunks_cover_an_adapted_bspline_grid(small_chunks):
    layer = _perturbed_layer("bspline")
    layer.update_grid(torch.randn(200, IN_FEATURES, dtype=torch.float64) ** 3)
    assert not layer.basis.is_uniform
    x = (torch.randn(7, IN_FEATURES, dtype=torch.float64)).requires_grad_(True)
    y, expected = layer(x), _plain(layer, x)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", available_bases())
def test_expand_into_writes_every_value_of_an_uninitialised_buffer(name):
    """The layer's buffer is ``torch.empty``: NaN garbage in it must not survive."""
    basis = build_basis(name, IN_FEATURES).double()
    x = torch.rand(4, IN_FEATURES, dtype=torch.float64) * 3 - 1.5
    out = torch.full((4, IN_FEATURES, basis.num_functions), float("nan"), dtype=torch.float64)
    with torch.no_grad():
        basis.expand_into(x, out)
    torch.testing.assert_close(out, basis(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rbf", "rswaf"])
def test_radial_input_grad_is_the_closed_form(name):
    """``sum_k g_k phi_k'`` equals autograd of the forward (the closed form, not autograd)."""
    basis = build_basis(name, IN_FEATURES, width=0.7).double()
    x = torch.rand(6, IN_FEATURES, dtype=torch.float64) * 4 - 2
    grad_values = torch.randn(6, IN_FEATURES, basis.num_functions, dtype=torch.float64)
    x_in = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((basis(x_in) * grad_values).sum(), x_in)
    torch.testing.assert_close(basis.input_grad(x, grad_values), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["bspline", "rbf", "chebyshev", "wavelet"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_input_without_grad_takes_no_autograd_node_and_the_same_values(name, dtype):
    """A first layer's expansion (``x`` needs no gradient) runs without the custom
    function: same buffer as with it, no graph; under autocast still evaluated in fp32."""
    torch.manual_seed(0)
    basis = build_basis(name, IN_FEATURES)
    x = (torch.rand(7, IN_FEATURES, dtype=dtype) * 4 - 2).to(dtype)
    activation = KANLinear(IN_FEATURES, 2).activation
    plain = expansion.expand_features(x, basis, activation)
    graph = expansion.expand_features(x.clone().requires_grad_(), basis, activation)
    assert plain.grad_fn is None and not plain.requires_grad
    assert graph.grad_fn is not None
    torch.testing.assert_close(plain, graph.detach(), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = expansion.expand_features(x, basis, activation)
    assert under_autocast.dtype == dtype
    torch.testing.assert_close(under_autocast, plain, rtol=0, atol=0)


def test_autocast_enabled_reads_the_cpu_state():
    assert not expansion.autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert expansion.autocast_enabled("cpu")
