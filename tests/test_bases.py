"""Basis families against closed forms and independent implementations."""

import math

import numpy as np
import pytest
import torch
from conftest import BASES

from lightning_kan.bases import (
    Basis,
    BSplineBasis,
    ChebyshevBasis,
    GaussianRBFBasis,
    GramBasis,
    LegendreBasis,
    RSWAFBasis,
    available_bases,
    build_basis,
    register_basis,
)


def cox_de_boor(x: np.ndarray, knots: np.ndarray, order: int) -> np.ndarray:
    """Textbook dense Cox-de Boor recursion in float64: (N,) -> (N, len(knots) - order - 1)."""
    x = x[:, None]
    values = ((x >= knots[:-1]) & (x < knots[1:])).astype(np.float64)
    for p in range(1, order + 1):
        left = (x - knots[: -(p + 1)]) / (knots[p:-1] - knots[: -(p + 1)])
        right = (knots[p + 1 :] - x) / (knots[p + 1 :] - knots[1:-p])
        values = left * values[:, :-1] + right * values[:, 1:]
    return values


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("grid_size", [1, 4, 7])
@pytest.mark.parametrize("uniform", [True, False])
def test_bspline_matches_cox_de_boor(order, grid_size, uniform):
    basis = BSplineBasis(
        3, grid_size=grid_size, spline_order=order, grid_range=(-1.5, 2.0)
    ).double()
    if not uniform:
        steps = torch.rand(3, grid_size + 2 * order + 1, dtype=torch.float64) + 0.2
        basis.set_knots(steps.cumsum(-1) - 3.0)
    low, high = basis.grid_bounds
    samples = low + (high - low) * torch.rand(400, 3, dtype=torch.float64)
    values = basis(samples)
    assert values.shape == (400, 3, grid_size + order)
    for i in range(3):
        expected = cox_de_boor(samples[:, i].numpy(), basis.grid[i].numpy(), order)
        np.testing.assert_allclose(values[:, i].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_bspline_partition_of_unity_inside_grid(order):
    basis = BSplineBasis(4, grid_size=6, spline_order=order, grid_range=(-2.0, 3.0)).double()
    samples = torch.linspace(-2.0, 3.0, 1001, dtype=torch.float64).unsqueeze(-1).expand(-1, 4)
    torch.testing.assert_close(basis(samples).sum(-1), torch.ones(1001, 4, dtype=torch.float64))


def test_bspline_is_constant_outside_its_grid():
    basis = BSplineBasis(2, grid_size=5).double()
    inside_edges = torch.stack(basis.grid_bounds, dim=-1)  # (1, 2): low of x_0, high of x_1
    inside_edges = torch.stack([inside_edges[0, 0], inside_edges[1, 1]]).unsqueeze(0)
    far = torch.tensor([[-1e6, 1e6], [-3.0, 7.5]], dtype=torch.float64)
    expected = basis(inside_edges).expand(2, -1, -1)
    torch.testing.assert_close(basis(far), expected)
    far.requires_grad_(True)
    (grad,) = torch.autograd.grad(basis(far).sum(), far)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_bspline_uniform_flag_survives_state_dict():
    basis = BSplineBasis(2, grid_size=4)
    knots = torch.tensor([[-3, -2, -1.5, -1, 0, 0.2, 0.5, 1, 2, 3, 4]] * 2, dtype=torch.float32)
    basis.set_knots(knots)
    fresh = BSplineBasis(2, grid_size=4)
    assert fresh.is_uniform
    fresh.load_state_dict(basis.state_dict())
    assert not fresh.is_uniform
    x = torch.randn(50, 2)
    torch.testing.assert_close(fresh(x), basis(x))


def test_chebyshev_matches_trigonometric_form_inside():
    basis = ChebyshevBasis(3, degree=9).double()
    x = torch.empty(500, 3, dtype=torch.float64).uniform_(-3, 3)
    s = torch.tanh(x).clamp(-1 + 1e-12, 1 - 1e-12)
    expected = torch.stack([torch.cos(n * torch.acos(s)) for n in range(10)], dim=-1)
    torch.testing.assert_close(basis(x), expected, atol=1e-10, rtol=0)


def test_chebyshev_gradient_finite_where_acos_is_singular():
    basis = ChebyshevBasis(1, degree=6).double()
    x = torch.tensor([[-40.0], [40.0], [1e4]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(basis(x).sum(), x)
    assert torch.isfinite(grad).all()


def test_legendre_matches_numpy_and_is_per_sample():
    basis = LegendreBasis(4, degree=6, normalization="minmax").double()
    x = torch.randn(32, 4, dtype=torch.float64)
    values = basis(x)
    low, high = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    s = (2 * (x - low) / (high - low).clamp_min(1e-2) - 1).numpy()
    for n in range(7):
        coefficients = np.zeros(n + 1)
        coefficients[n] = 1
        np.testing.assert_allclose(
            values[..., n].numpy(), np.polynomial.legendre.legval(s, coefficients), atol=1e-12
        )
    # per sample, never per batch: a sample's values do not depend on its batch
    torch.testing.assert_close(basis(x[:1]), values[:1])


def test_gram_polynomials_are_orthonormal_on_their_points():
    basis = GramBasis(1, degree=6, num_points=12, normalization="tanh").double()
    points = torch.linspace(-1, 1, 12, dtype=torch.float64)
    # the squashed inputs are the points themselves (tanh never reaches +-1 exactly)
    values = torch.stack(basis._terms(points), dim=-1)
    gram = values.T @ values / 12
    torch.testing.assert_close(gram, torch.eye(7, dtype=torch.float64), atol=1e-10, rtol=0)


def test_radial_bases_closed_forms():
    x = torch.randn(20, 3, dtype=torch.float64)
    rbf = GaussianRBFBasis(3).double()
    centers = torch.linspace(-2, 2, 8, dtype=torch.float64)
    h = 4 / 7
    torch.testing.assert_close(rbf(x), torch.exp(-(((x[..., None] - centers) / h) ** 2)))
    rswaf = RSWAFBasis(3, width=0.5).double()
    torch.testing.assert_close(rswaf(x), 1 - torch.tanh((x[..., None] - centers) / 0.5) ** 2)


@pytest.mark.parametrize("name", sorted(BASES))
def test_every_basis_gradcheck_and_gradgradcheck(name):
    basis = build_basis(name, 3, **BASES[name]).double()
    x = (torch.rand(4, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(basis, (x,))
    assert torch.autograd.gradgradcheck(basis, (x,))


@pytest.mark.parametrize("name", sorted(BASES))
def test_input_grad_hook_matches_autograd(name):
    basis = build_basis(name, 3, **BASES[name]).double()
    if name == "bspline":
        steps = torch.rand(3, basis.grid.shape[1], dtype=torch.float64) + 0.1
        basis.set_knots(steps.cumsum(-1) - 1.5)  # non-uniform path too
    x = (torch.rand(6, 3, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)
    grad_values = torch.randn(6, 3, basis.num_functions, dtype=torch.float64)
    (expected,) = torch.autograd.grad(basis(x), x, grad_values)
    with torch.no_grad():
        torch.testing.assert_close(basis.input_grad(x, grad_values), expected)


def test_registry_accepts_user_basis():
    @register_basis("test_fourier")
    class FourierBasis(Basis):
        def __init__(self, in_features, harmonics=3):
            super().__init__(in_features)
            self.num_functions = 2 * harmonics
            self.register_buffer("freq", torch.arange(1, harmonics + 1, dtype=torch.float32))

        def forward(self, x):
            angles = x.unsqueeze(-1) * self.freq.to(x.dtype)
            return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    assert "test_fourier" in available_bases()
    basis = build_basis("test_fourier", 2, harmonics=2)
    assert basis.num_functions == 4
    with pytest.raises(ValueError, match="already registered"):
        register_basis("test_fourier")(ChebyshevBasis)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("splines", {}, "unknown basis 'splines'"),
        ("bspline", {"grid_size": 0}, "grid_size must be a positive integer, got 0"),
        ("bspline", {"spline_order": 8}, r"spline_order must be an integer in \[0, 7\], got 8"),
        ("bspline", {"spline_order": -1}, "got -1"),
        ("bspline", {"grid_range": (1.0, -1.0)}, "low < high"),
        ("bspline", {"degree": 3}, r"does not take \['degree'\]"),
        ("chebyshev", {"degree": 0}, r"degree must be an integer in \[1, 32\], got 0"),
        ("legendre", {"degree": 40}, "got 40"),
        ("gram", {"degree": 5, "num_points": 4}, "num_points must be an integer > degree"),
        ("rbf", {"num_centers": 0}, "num_centers must be a positive integer, got 0"),
        ("rswaf", {"width": -1.0}, "width must be positive, got -1.0"),
        ("chebyshev", {"normalization": "batch"}, "normalization must be 'tanh' or 'minmax'"),
    ],
)
def test_bad_basis_arguments_name_the_value(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_basis(name, 3, **kwargs)


def test_minmax_needs_two_features():
    with pytest.raises(ValueError, match="in_features >= 2"):
        LegendreBasis(1, normalization="minmax")


def test_instance_for_other_width_is_rejected():
    with pytest.raises(ValueError, match="in_features=3 but the layer has in_features=4"):
        build_basis(BSplineBasis(3), 4)


def test_all_builtin_bases_registered():
    assert {"bspline", "chebyshev", "rbf", "rswaf", "legendre", "gram"} <= set(available_bases())
    assert math.isclose(GaussianRBFBasis(1).width, 4 / 7)


@pytest.mark.parametrize("name", ["chebyshev", "legendre", "gram"])
@pytest.mark.parametrize("degree", [1, 2, 3, 6])
def test_polynomial_closed_form_input_grad_matches_autograd_twice(name, degree):
    """The tanh three-term families differentiate in closed form (PINN double backward)."""
    basis = build_basis(name, 3, degree=degree, normalization="tanh").double()
    x = (torch.rand(5, 3, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)
    grad_values = torch.randn(5, 3, degree + 1, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(basis(x), x, grad_values, create_graph=True)
    torch.testing.assert_close(basis.input_grad(x, grad_values), expected)
    assert torch.autograd.gradgradcheck(basis.input_grad, (x, grad_values))
