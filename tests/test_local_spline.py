"""The local B-spline contraction (``layers/local_spline.py``, C ``lk_spline_linear``): a
uniform-grid B-spline layer computed from each input's ``k + 1`` non-zero values equals
the dense expansion and GEMM (in float64, an independent path) in values, parameter and
input gradients and second derivatives, is deterministic across thread counts, and is used
exactly where it applies. Each C build this CPU runs is checked (the ``build`` fixture).
Its double backward and an edge mask on its weights are tested with the one-node path
that shares them (``test_native_linear.py``)."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import trained_layer

from lightning_kan import KANLinear, native
from lightning_kan.layers import local_spline

pytestmark = pytest.mark.skipif(not native.available(), reason="C kernels not built")


def _layer(in_features=70, out_features=37, grid_size=20, spline_order=3, **kwargs):
    options = {"grid_size": grid_size, "spline_order": spline_order}
    return trained_layer(in_features, out_features, basis_kwargs=options, **kwargs)


def _inputs(rows, in_features, lead=()):
    """Inputs inside and outside the grid, on knots and at its ends."""
    torch.manual_seed(1)
    x = torch.rand(*lead, rows, in_features) * 3 - 1.5
    flat = x.view(-1, in_features)
    n = min(in_features, 4)  # grid ends and knots (spacing 0.1), far outside the grid
    flat[0, :n] = torch.tensor([1.0, -1.0, 0.1, 0.0])[:n]
    flat[1, : n - 1] = torch.tensor([1e4, -1e4, 0.95])[: n - 1]
    return x.requires_grad_(True)


def _grad_fn_names(y: torch.Tensor) -> set[str]:
    names, stack = set(), [y.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def _uses_local(layer: KANLinear, x: torch.Tensor) -> bool:
    return "_LocalSplineLinearBackward" in _grad_fn_names(layer(x))


def _step(layer, x):
    """Output and the gradients of a loss that weights every output differently."""
    y = layer(x)
    weights = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)
    parameters = [p for p in layer.parameters() if p.requires_grad]
    return y, torch.autograd.grad((y * weights).sum(), [x, *parameters])


@pytest.mark.parametrize(
    ("activation", "out_features", "spline_order", "rows"),
    [
        ("silu", 64, 3, 70),
        ("silu", 37, 3, 33),
        ("tanh", 130, 2, 40),
        ("identity", 10, 1, 65),
        (None, 16, 5, 9),
    ],
)
def test_matches_the_dense_float64_path(build, activation, out_features, spline_order, rows):
    layer = _layer(out_features=out_features, spline_order=spline_order, base_activation=activation)
    x = _inputs(rows, 70)
    assert _uses_local(layer, x)
    y, grads = _step(layer, x)
    reference = layer.double()  # float64 takes the dense expansion and GEMM
    x64 = x.detach().double().requires_grad_(True)
    assert not _uses_local(reference, x64)
    y64, grads64 = _step(reference, x64)
    scale = y64.abs().max()
    torch.testing.assert_close(y.double(), y64, rtol=0, atol=2e-6 * float(scale))
    for grad, grad64 in zip(grads, grads64, strict=True):
        tolerance = 2e-6 * float(grad64.abs().max())
        torch.testing.assert_close(grad.double(), grad64, rtol=0, atol=tolerance)


def test_leading_dimensions_and_inputs_that_need_no_gradient():
    layer = _layer(in_features=9, out_features=20)
    x = _inputs(5, 9, lead=(2, 3)).detach()
    y = layer(x)
    assert y.shape == (2, 3, 5, 20)
    torch.testing.assert_close(y, layer(x.reshape(-1, 9)).view_as(y))
    y.sum().backward()  # no input gradient asked for: only the parameters'
    assert x.grad is None and layer.weight.grad is not None


def test_an_empty_batch():
    layer = _layer(in_features=8, out_features=20)
    x = torch.zeros(0, 8, requires_grad=True)
    assert _uses_local(layer, x)
    y = layer(x)
    assert y.shape == (0, 20)
    y.sum().backward()
    assert x.grad.shape == (0, 8) and not layer.weight.grad.any()


def test_nan_inputs_give_nan_rows_only():
    layer = _layer(in_features=8, out_features=20)
    x = torch.rand(40, 8) * 2 - 1
    x[3, 5] = float("nan")
    y = layer(x)
    assert torch.isnan(y[3]).all() and torch.isfinite(y[torch.arange(40) != 3]).all()


def test_results_do_not_depend_on_the_thread_count(build):
    """Forward rows and backward inputs are each computed by one thread in a fixed order."""
    layer = _layer(in_features=70, out_features=40)
    x = _inputs(300, 70)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1, grads1 = _step(layer, x)
        torch.set_num_threads(2)
        y2, grads2 = _step(layer, x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(y1, y2)
    for grad1, grad2 in zip(grads1, grads2, strict=True):
        assert torch.equal(grad1, grad2)


def test_used_only_where_it_applies():
    x = _inputs(20, 70).detach()
    assert _uses_local(_layer(), x)
    # too dense: K = 8 functions for 4 non-zero ones (the dense GEMM is faster there)
    assert not _uses_local(_layer(grid_size=5), x)
    # the compiled expansion was asked for (not compiled here: only the dispatch is asked)
    compiled = _layer(compiled=True)
    assert compiled.coefficients.linear_from_inputs(compiled, x) is None
    # an activation without a C code; float64
    assert not _uses_local(_layer(base_activation="gelu"), x)
    assert not _uses_local(_layer().double(), x.double())
    # a non-uniform grid (after a grid update)
    layer = _layer()
    layer.update_grid(torch.randn(200, 70))
    assert not layer.basis.is_uniform and not _uses_local(layer, x)
    # autocast, the C kernels switched off
    layer = _layer()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _uses_local(layer, x)
    previous = native.set_enabled(False)
    try:
        assert not _uses_local(layer, x)
    finally:
        native.set_enabled(previous)
    # torch.func: plain differentiable operations, the same values
    params = dict(layer.named_parameters())
    functional = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(functional, layer(x), rtol=1e-5, atol=1e-5)


def test_threshold_counts_functions_per_non_zero_one():
    basis = _layer(grid_size=9).basis  # K = 12 = 3 x (k + 1): the local path
    assert local_spline.local_spline_applies(basis, basis.native_kernel())
    basis = _layer(grid_size=8).basis
    assert not local_spline.local_spline_applies(basis, basis.native_kernel())
