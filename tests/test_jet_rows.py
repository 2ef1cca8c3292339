"""The KAN layer's jet kernels (``lightning_kan.layers.jet``): the hand-written backward of
``_JetRows`` against autograd (``gradcheck``/``gradgradcheck`` in float64), both the wide
and the narrow layer path against nested autograd, first-order jets, and the bases'
closed-form derivatives on transposed (points-innermost) inputs, the layout the jet
passes between layers.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BASES
from test_jet import assert_agree, assert_jet_matches, nested_autograd, points, randomise

from lightning_kan.bases import Basis, build_basis
from lightning_kan.layers.jet import _JetRows, _stacked_rows, jet_forward
from lightning_kan.nets import KAN


def _rows_inputs(base: bool, entries: bool, second: bool, identity: bool = False):
    """Random float64 inputs of ``_JetRows``: K = 3 functions, I = 4, d = 2, m = 2, N = 5
    (the input's identity rows for ``identity``: I = d = 2, constant rows and pairs)."""
    generator = torch.Generator().manual_seed(0)

    def rand(*shape, grad=True):
        t = torch.randn(*shape, generator=generator, dtype=torch.float64)
        return t.requires_grad_(grad)

    inputs, d, n = 4 if not identity else 2, 2, 5
    grad = torch.eye(d, dtype=torch.float64).unsqueeze(-1) if identity else rand(inputs, d, n)
    pairs = None
    if entries:
        pairs = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64).unsqueeze(-1)
        pairs = pairs if identity else rand(inputs, 2, n)
    return (
        rand(3, 3 * inputs + (inputs if base else 0)),  # packed (O, (K + 1) I)
        rand(3, inputs, n),
        rand(1, inputs, n) if base else None,
        rand(3, inputs, n) if entries else None,
        rand(1, inputs, n) if base and entries else None,
        grad,
        pairs,
        rand(inputs, 2, n) if entries and second and not identity else None,
    )


@pytest.mark.parametrize(
    "base, entries, second, identity",
    [
        (True, True, True, False),
        (False, True, True, False),
        (True, True, False, False),
        (True, False, False, False),
        (True, True, False, True),
    ],
    ids=["all", "no-base", "no-second-rows", "first-order", "identity-input"],
)
def test_jet_rows_backward_passes_gradcheck_and_gradgradcheck(base, entries, second, identity):
    inputs = _rows_inputs(base, entries, second, identity)
    assert torch.autograd.gradcheck(_JetRows.apply, inputs)
    assert torch.autograd.gradgradcheck(_JetRows.apply, inputs)


def test_jet_rows_equal_the_composed_products():
    """The forward is the GEMM of the stacked rows, which are the products written out."""
    packed, slope, base_slope, curvature, base_curvature, grad, pairs, second = _rows_inputs(
        True, True, True
    )
    slopes, curvatures = torch.cat([slope, base_slope]), torch.cat([curvature, base_curvature])
    expected_rows = torch.cat(
        [
            slopes.unsqueeze(2) * grad,
            curvatures.unsqueeze(2) * pairs + slopes.unsqueeze(2) * second,
        ],
        dim=2,
    )  # (K + 1, I, d + m, N)
    with torch.no_grad():
        parts = [(slope, curvature), (base_slope, base_curvature)]
        rows = _stacked_rows(parts, grad, pairs, second)
        torch.testing.assert_close(rows, expected_rows, rtol=0, atol=1e-14)
        out = _JetRows.apply(
            packed, slope, base_slope, curvature, base_curvature, grad, pairs, second
        )
    expected = torch.einsum("oc,crn->orn", packed, expected_rows.flatten(0, 1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["chebyshev", "bspline", "rbf"])
@pytest.mark.parametrize("widths", [[2, 12, 9, 1], [2, 3, 2]], ids=["wide", "narrow"])
def test_wide_and_narrow_layer_paths_match_nested_autograd(name, widths):
    """``[2, 12, 9, 1]`` takes the wide path (one GEMM per order) in its hidden layers,
    ``[2, 3, 2]`` the narrow one (edge slopes first) in every layer, with the Laplacian."""
    net = randomise(KAN(widths, basis=name, basis_kwargs=BASES[name]).double())
    assert_jet_matches(net, points(11), pairs=[[(0, 0), (1, 1)]])


def test_first_order_jet_matches_autograd():
    net = randomise(KAN([2, 12, 9, 2], basis="chebyshev").double())
    x = points(9)
    jet = jet_forward(net, x)
    u, grad, _ = nested_autograd(net, x, [(0, 0)])
    assert jet.second_rows is None and jet.entries == ()
    assert_agree(jet.value, u)
    assert_agree(jet.grad, grad)


@pytest.mark.parametrize("name", sorted(BASES))
def test_derivatives_of_a_transposed_input_equal_the_contiguous_ones(name):
    """Layers after the first see points-innermost inputs (a transposed view); the closed
    forms must not depend on the layout (they compute in memory order)."""
    basis = build_basis(name, 3, **BASES[name]).double()
    x = points(20, 3, scale=1.4)
    transposed = x.t().contiguous().t()
    assert transposed.stride() == (1, 20)
    for ours, expected in zip(
        basis.derivatives(transposed), Basis.derivatives(basis, x), strict=True
    ):
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("spline_order", [0, 2, 3])
def test_uniform_bspline_derivatives_pass_gradgradcheck(spline_order):
    """The local polynomials' hand-written backward (the next order's values) and its
    double backward (gPINN) against finite differences, inside and outside the grid."""
    basis = build_basis("bspline", 2, grid_size=3, spline_order=spline_order).double()
    x = torch.tensor([[-1.3, 0.2], [0.45, -0.7], [0.9, 1.2]], dtype=torch.float64)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: basis.derivatives(t), (x,))
    assert torch.autograd.gradgradcheck(lambda t: basis.derivatives(t), (x,))
