"""Wavelet, Bernstein, Jacobi, Fourier and ReLU-KAN bases, KAGN's trained Gram recurrence,
FasterKAN's trained width and FastKAN's layout, against their published formulas."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import eval_jacobi

from lightning_kan import KAN, KANLinear, lotra
from lightning_kan.bases import (
    Basis,
    BernsteinBasis,
    FourierBasis,
    GramBasis,
    InputNormBasis,
    JacobiBasis,
    LegendreBasis,
    ReLUKANBasis,
    RSWAFBasis,
    WaveletBasis,
    build_basis,
)
from lightning_kan.bases.polynomial import _gram_coefficients
from lightning_kan.interpret import prune
from lightning_kan.layers import KANConv1d, KANConv2d, KANConv3d

#: (id, registered name, options): every new family, and the new options of old ones
CASES = [
    ("mexican_hat", "wavelet", {"wavelet": "mexican_hat", "num_wavelets": 4, "trainable": True}),
    ("morlet", "wavelet", {"wavelet": "morlet", "num_wavelets": 4, "trainable": True}),
    ("dog", "wavelet", {"wavelet": "dog", "num_wavelets": 4, "trainable": True}),
    ("wavelet-fixed", "wavelet", {"num_wavelets": 5}),
    ("bernstein", "bernstein", {"degree": 5}),
    ("jacobi", "jacobi", {"degree": 5, "alpha": 0.5, "beta": 1.5}),
    ("fourierkan", "fourierkan", {"grid_size": 3}),
    ("relukan", "relukan", {"grid_size": 4, "order": 2}),
    ("relukan-trainable", "relukan", {"grid_size": 4, "order": 2, "trainable": True}),
    ("gram-beta", "gram", {"degree": 5, "trainable_beta": True}),
    ("rswaf-width", "rswaf", {"num_centers": 6, "trainable_width": True}),
]
IDS = [case[0] for case in CASES]
#: finite inputs that have broken KAN bases: huge, exact zeros (both signs), tiny, and
#: knots of the ReLU-KAN grid above (grid_range (-1, 1), 4 intervals: -1, -0.5, 0, 0.5, 1)
HARD_INPUTS = [-1e4, -30.0, -1.0, -0.5, -0.0, 0.0, 1e-30, 0.5, 1.0, 30.0, 1e4]


def _basis(name: str, options: dict, in_features: int = 3) -> Basis:
    return build_basis(name, in_features, **options).double()


def _perturb(basis: Basis) -> Basis:
    """Move every trainable basis parameter off its initial value (a generic state)."""
    with torch.no_grad():
        for parameter in basis.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return basis


# ----------------------------------------------------------------- reference values
@pytest.mark.parametrize("wavelet", ["mexican_hat", "morlet", "dog"])
def test_wavelets_match_their_published_formulas(wavelet):
    basis = WaveletBasis(2, wavelet=wavelet, num_wavelets=3, trainable=True).double()
    translation = [[-1.0, 0.25, 2.0], [0.5, 0.0, -0.75]]
    scale = [[0.5, 1.0, 2.0], [1.5, 0.3, 0.8]]
    with torch.no_grad():
        basis.translation.copy_(torch.tensor(translation, dtype=torch.float64))
        basis.log_scale.copy_(torch.tensor(scale, dtype=torch.float64).log())
    x = [[-1.3, 0.7], [0.0, 2.2], [3.1, -0.4]]
    values = basis(torch.tensor(x, dtype=torch.float64))
    for n, row in enumerate(x):
        for i, xi in enumerate(row):
            for k in range(3):
                t = (xi - translation[i][k]) / scale[i][k]
                gauss = math.exp(-t * t / 2)
                expected = {
                    "mexican_hat": 2 / (math.sqrt(3) * math.pi**0.25) * (1 - t * t) * gauss,
                    "morlet": math.cos(5 * t) * gauss,
                    "dog": -t * gauss,
                }[wavelet]
                assert values[n, i, k].item() == pytest.approx(expected, abs=1e-14)


def test_single_wavelet_defaults_are_wavkans_initial_edge():
    basis = WaveletBasis(3, num_wavelets=1, grid_range=(-1.0, 1.0))
    assert torch.equal(basis.translation, torch.zeros(3, 1))  # WavKAN: translation 0
    assert torch.equal(basis.scale, torch.ones(3, 1))  # scale 1


def test_bernstein_matches_the_binomial_formula_and_sums_to_one():
    basis = BernsteinBasis(1, degree=6).double()
    points = [-3.0, -0.4, 0.0, 0.9, 2.5]
    values = basis(torch.tensor(points, dtype=torch.float64)[:, None])[:, 0]
    for row, x in zip(values, points, strict=True):
        s = 1 / (1 + math.exp(-x))
        expected = [math.comb(6, k) * s**k * (1 - s) ** (6 - k) for k in range(7)]
        np.testing.assert_allclose(row.numpy(), expected, rtol=1e-13, atol=1e-15)
    far = basis(torch.tensor([[-1e4], [1e4]], dtype=torch.float64))[:, 0]
    torch.testing.assert_close(far, torch.eye(7, dtype=torch.float64)[[0, 6]], rtol=0, atol=0)
    wide = basis(torch.linspace(-20, 20, 101, dtype=torch.float64)[:, None])
    torch.testing.assert_close(wide.sum(-1), torch.ones(101, 1, dtype=torch.float64))


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 1.5), (-0.5, -0.5), (2.0, -0.7)])
def test_jacobi_matches_scipy(alpha, beta):
    basis = JacobiBasis(2, degree=8, alpha=alpha, beta=beta).double()
    x = torch.tensor([[-2.0, -0.3], [0.0, 0.45], [1.1, 25.0]], dtype=torch.float64)
    values = basis(x)
    s = np.tanh(x.numpy())
    for n in range(9):
        expected = eval_jacobi(n, alpha, beta, s)
        np.testing.assert_allclose(values[..., n].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_jacobi_with_zero_parameters_is_legendre():
    x = torch.randn(30, 3, dtype=torch.float64) * 2
    jacobi = JacobiBasis(3, degree=7, alpha=0.0, beta=0.0).double()
    torch.testing.assert_close(jacobi(x), LegendreBasis(3, degree=7).double()(x))


def test_fourier_features_are_fourierkans_cos_then_sin():
    basis = FourierBasis(2, grid_size=4).double()
    x = torch.tensor([[0.3, -2.0], [5.0, 0.0]], dtype=torch.float64)
    k = torch.arange(1, 5, dtype=torch.float64)
    angles = x[..., None] * k
    torch.testing.assert_close(basis(x), torch.cat([angles.cos(), angles.sin()], -1))
    assert basis.num_functions == 8


@pytest.mark.parametrize(("grid_size", "order"), [(5, 3), (3, 0), (4, 2)])
def test_relukan_matches_the_papers_formula_on_its_grid(grid_size, order):
    g, k = grid_size, order
    basis = ReLUKANBasis(1, grid_size=g, order=k, grid_range=(0.0, 1.0)).double()
    assert basis.num_functions == g + k
    x = np.linspace(-0.3, 1.3, 97)
    low = np.arange(-k, g) / g  # ReLU-KAN's phase_low and phase_high, r = 4 g^2 / (k + 1)^2
    high = low + (k + 1) / g
    r = 4 * g * g / (k + 1) ** 2
    expected = (np.maximum(x[:, None] - low, 0) * np.maximum(high - x[:, None], 0) * r) ** 2
    values = basis(torch.tensor(x)[:, None])[:, 0]  # phases stored in float32, as all knots
    np.testing.assert_allclose(values.numpy(), expected, rtol=0, atol=1e-6)
    peaks = basis(torch.tensor((low + high) / 2)[:, None])[:, 0]
    ones = torch.ones(g + k, dtype=torch.float64)
    torch.testing.assert_close(peaks.diagonal(), ones, atol=1e-6, rtol=0)


def test_trainable_gram_beta_starts_at_gram_and_runs_the_recurrence():
    fixed = GramBasis(2, degree=5).double()
    trained = GramBasis(2, degree=5, trainable_beta=True).double()
    x = torch.randn(20, 2, dtype=torch.float64)
    torch.testing.assert_close(trained(x), fixed(x), rtol=1e-6, atol=1e-6)  # float32 beta
    betas = [0.3, -0.2, 0.5, 0.1]
    with torch.no_grad():
        trained.beta.copy_(torch.tensor(betas))
    s = torch.tanh(x)
    terms = [torch.ones_like(s), s]
    for beta in betas:
        terms.append(s * terms[-1] - beta * terms[-2])
    scale = torch.tensor(_gram_coefficients(5, 32)[1], dtype=torch.float64)
    torch.testing.assert_close(trained(x), torch.stack(terms, -1) * scale)


def test_trainable_rswaf_width_is_fasterkans_inv_denominator():
    fixed = RSWAFBasis(2, num_centers=6).double()
    trained = RSWAFBasis(2, num_centers=6, trainable_width=True).double()
    x = torch.randn(20, 2, dtype=torch.float64)
    torch.testing.assert_close(trained(x), fixed(x))
    assert trained.inv_denominator.item() == pytest.approx(1 / fixed.width)
    with torch.no_grad():
        trained.inv_denominator.fill_(3.0)
    centers = torch.linspace(-2, 2, 6, dtype=torch.float64)
    expected = 1 - torch.tanh((x[..., None] - centers) * 3.0) ** 2
    torch.testing.assert_close(trained(x), expected)


def test_new_options_leave_old_state_dicts_as_they_were():
    assert set(GramBasis(2).state_dict()) == {"normalization_code"}
    assert set(RSWAFBasis(2).state_dict()) == {"centers"}
    layer = KANLinear(3, 2, basis="gram")
    fresh = KANLinear(3, 2, basis="gram", basis_kwargs={"trainable_beta": False})
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(fresh(x), layer(x))
    assert {"beta"} <= {n for n, _ in GramBasis(2, trainable_beta=True).named_parameters()}


# ------------------------------------------------------ properties of every new case
@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
def test_outputs_and_gradients_are_finite_at_hard_inputs(case, name, options):
    for dtype in (torch.float32, torch.float64):
        basis = _perturb(build_basis(name, 2, **options).to(dtype))
        x = torch.tensor(HARD_INPUTS, dtype=dtype)[:, None].expand(-1, 2).clone()
        x.requires_grad_(True)
        values = basis(x)
        assert torch.isfinite(values).all()
        weights = torch.randn_like(values)
        grads = torch.autograd.grad((values * weights).sum(), [x, *basis.parameters()])
        assert all(torch.isfinite(g).all() for g in grads)
        for derivative in basis.derivatives(x.detach()):
            assert torch.isfinite(derivative).all()


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_layers_evaluate_the_basis_in_float32(case, name, options, dtype):
    layer = KANLinear(2, 3, basis=name, basis_kwargs=options).to(dtype)
    x = torch.tensor(HARD_INPUTS, dtype=dtype)[:, None].expand(-1, 2).clone()
    x.requires_grad_(True)
    y = layer(x)
    assert torch.isfinite(y).all()
    grads = torch.autograd.grad(y.float().sum(), [x, *layer.parameters()])
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
def test_gradcheck_and_gradgradcheck_in_float64(case, name, options):
    basis = _perturb(_basis(name, options))
    x = (torch.rand(4, 3, dtype=torch.float64) * 3 - 1.5).requires_grad_(True)
    names = [n for n, _ in basis.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in basis.parameters()]

    def expand(x, *params):
        return torch.func.functional_call(basis, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(expand, (x, *params))
    assert torch.autograd.gradgradcheck(expand, (x, *params))


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
def test_closed_form_derivatives_match_autograd(case, name, options):
    basis = _perturb(_basis(name, options))
    knots = [-1.0, -0.5, 0.0, 0.5, 1.0]  # relukan's knots: one-sided derivatives agree
    x = torch.cat(
        [
            torch.rand(8, 3, dtype=torch.float64) * 4 - 2,
            torch.tensor(knots)[:, None].expand(-1, 3).double(),
        ]
    )
    for order in (1, 2):
        closed = basis.derivatives(x, order)
        reference = Basis.derivatives(basis, x, order)  # the autograd default
        assert len(closed) == len(reference) == order + 1
        for mine, expected in zip(closed, reference, strict=True):
            torch.testing.assert_close(mine, expected, atol=1e-10, rtol=1e-10)
    # differentiable: d/dx of sum_k phi_k' is sum_k phi_k''
    x = x.requires_grad_(True)
    _, first, second = basis.derivatives(x)
    (grad,) = torch.autograd.grad(first.sum(), x)
    torch.testing.assert_close(grad, second.detach().sum(-1))
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        basis.derivatives(x, 3)


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
def test_input_grad_and_expand_into_match_the_forward(case, name, options):
    basis = _perturb(_basis(name, options))
    x = torch.rand(6, 3, dtype=torch.float64) * 4 - 2
    values = basis(x)
    buffer = torch.full((6, 3 * basis.num_functions + 3), float("nan"), dtype=torch.float64)
    out = buffer[:, : 3 * basis.num_functions].view(6, 3, basis.num_functions)
    with torch.no_grad():
        basis.expand_into(x, out)
    torch.testing.assert_close(out, values)
    grad_values = torch.randn_like(values)
    x.requires_grad_(True)
    (expected,) = torch.autograd.grad((basis(x) * grad_values).sum(), x)
    torch.testing.assert_close(basis.input_grad(x.detach(), grad_values), expected)


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
def test_trainable_parameters_are_trained_by_a_layer(case, name, options):
    layer = KANLinear(3, 2, basis=name, basis_kwargs=options)
    trainable = list(layer.basis.parameters())
    assert layer.basis.is_parameter_free == (not trainable)
    if not trainable:
        return
    layer(torch.randn(16, 3)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


# ------------------------------------------- the coefficient protocol: conv, Slim, Meta, LoTRA
def _copy_into_dense(layer: KANLinear) -> KANLinear:
    """A dense KANLinear computing what ``layer`` computes, from its protocol tensors."""
    dense = KANLinear(layer.in_features, layer.out_features, basis=build_basis_like(layer)).double()
    with torch.no_grad():
        dense.weight.copy_(layer.weight)
        dense.base_weight.copy_(layer.base_weight)
        dense.bias.copy_(layer.bias)
    return dense


def build_basis_like(layer: KANLinear) -> Basis:
    name, options = layer._case
    basis = build_basis(name, layer.in_features, **options).double()
    basis.load_state_dict(layer.basis.state_dict())
    return basis


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize(
    "family",
    [("tucker", {"ranks": 2}), ("generated", {"hidden_dim": 4}), ("lotra", None)],
    ids=["slim", "meta", "lotra"],
)
def test_slim_meta_and_lotra_layers_are_the_dense_layer_of_their_tensors(
    case, name, options, family
):
    coefficients, family_options = family
    if coefficients == "lotra":
        layer = KANLinear(4, 3, basis=name, basis_kwargs=options).double()
        x = torch.randn(10, 4, dtype=torch.float64)
        before = layer(x)
        lotra.add_adapter(layer, ranks=[2, 2, 2])
        torch.testing.assert_close(layer(x), before)  # adapters start at zero
        with torch.no_grad():
            for tensor in lotra.adapted_tensors(layer):
                tensor.adapters.adapters["default"].core.normal_()
    else:
        layer = KANLinear(
            4,
            3,
            basis=name,
            basis_kwargs=options,
            coefficients=coefficients,
            coefficients_kwargs=family_options,
        ).double()
    _perturb(layer.basis)
    layer._case = (name, options)
    dense = _copy_into_dense(layer)
    x = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    expected = dense(x)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(*(torch.autograd.grad(v.sum(), x)[0] for v in (y, expected)))


@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("conv_cls", [KANConv1d, KANConv2d, KANConv3d], ids=["1d", "2d", "3d"])
def test_convolutions_equal_kan_linear_per_position_and_pass_gradcheck(
    case, name, options, conv_cls
):
    conv = conv_cls(2, 3, 1, basis=name, basis_kwargs=options).double()
    _perturb(conv.basis)
    linear = KANLinear(2, 3, basis=name, basis_kwargs=options).double()
    linear.basis.load_state_dict(conv.basis.state_dict())
    with torch.no_grad():
        linear.weight.copy_(conv.weight.flatten(2))
        linear.base_weight.copy_(conv.base_weight.flatten(1))
        linear.bias.copy_(conv.bias)
    x = torch.randn(2, 2, *[3] * conv_cls.ndim, dtype=torch.float64)
    torch.testing.assert_close(conv(x), linear(x.movedim(1, -1)).movedim(-1, 1))
    small = conv_cls(2, 2, 2, basis=name, basis_kwargs=options).double()
    x = torch.rand(1, 2, *[2] * conv_cls.ndim, dtype=torch.float64) * 3 - 1.5
    assert torch.autograd.gradcheck(small, (x.requires_grad_(True),))


# ------------------------------------------------------------------ FastKAN's layout
def _fastkan_reference(net: KAN, x: torch.Tensor) -> torch.Tensor:
    """FastKAN's forward written from its formula, on ``net``'s tensors: every layer is
    ``spline_linear(rbf(layernorm(x))) + base_linear(silu(x))`` (the bias in base_linear)."""
    for layer in net.layers:
        norm = layer.basis.norm
        centers = layer.basis.basis.centers.double()
        h = layer.basis.basis.width
        z = F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)
        rbf = torch.exp(-(((z[..., None] - centers) / h) ** 2))
        spline = rbf.flatten(-2) @ layer.weight.flatten(1).T
        x = spline + F.silu(x) @ layer.base_weight.T + layer.bias
    return x


def test_fastkan_layout_equals_fastkan_on_the_same_weights():
    torch.manual_seed(0)
    net = KAN([3, 5, 4, 2], basis="rbf", norm="fastkan").double()
    with torch.no_grad():  # a generic LayerNorm, not the identity it starts as
        for layer in net.layers:
            layer.basis.norm.weight.normal_()
            layer.basis.norm.bias.normal_()
    assert all(isinstance(layer.basis, InputNormBasis) for layer in net.layers)
    x = torch.randn(16, 3, dtype=torch.float64) * 3
    torch.testing.assert_close(net(x), _fastkan_reference(net, x))
    between = KAN([3, 5, 4, 2], basis="rbf", norm="layer").double()
    for mine, theirs in zip(between.layers, net.layers, strict=True):
        mine.load_state_dict(
            {k: v for k, v in theirs.state_dict().items() if not k.startswith("basis.norm")},
            strict=False,
        )
    assert (between(x) - _fastkan_reference(net, x)).abs().max() > 1e-2  # not the same layout


def test_fastkan_layout_refuses_what_a_layernorm_breaks():
    net = KAN([2, 3, 1], norm="fastkan")
    with pytest.raises(TypeError, match="norm='fastkan'"):
        prune(net, torch.randn(20, 2), 1e-2, 1e-2)
    with pytest.raises(ValueError, match="elementwise is False"):
        net.layers[0].basis.derivatives(torch.randn(4, 2))
    with pytest.raises(ValueError, match="'fastkan'"):
        KAN([2, 3, 1], norm="fastkn")


# ----------------------------------------------------------------------- bad options
@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("wavelet", {"wavelet": "meyer"}, "wavelet must be one of"),
        ("wavelet", {"scale": 0.0}, "scale must be a positive finite number"),
        ("wavelet", {"num_wavelets": 0}, "num_wavelets must be a positive integer"),
        ("jacobi", {"alpha": -1.0}, "alpha must be a finite number > -1"),
        ("jacobi", {"beta": float("nan")}, "beta must be a finite number > -1"),
        ("bernstein", {"degree": 0}, "degree must be an integer"),
        ("fourierkan", {"grid_size": -2}, "grid_size must be a positive integer"),
        ("relukan", {"order": -1}, "order must be an integer >= 0"),
        ("relukan", {"grid_range": (1, 1)}, "grid_range must satisfy low < high"),
    ],
)
def test_bad_options_are_refused_by_name(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_basis(name, 2, **options)
