"""Forward-mode jets (``lightning_kan.layers.jet``) against nested autograd, in float64.

Every basis' and activation's closed-form derivatives agree with the autograd default;
a jet's value, gradient and second derivatives, and the parameter gradients of a PINN
loss built from it, agree with nested autograd to 1e-10 for KAN/MLP/Slim/Meta/LoTRA
nets and ``HardDirichlet``; unsupported layers are refused by name and ``PINNTask``
falls back to autograd for them.
"""

from __future__ import annotations

import pytest
import torch
from conftest import BASES
from torch import nn

from lightning_kan.bases import Basis, build_basis
from lightning_kan.layers.activations import elementwise_derivatives, resolve_activation
from lightning_kan.layers.jet import (
    Jet,
    JetUnsupported,
    jet_forward,
    jet_gaps,
    propagate,
    supports_jet,
)
from lightning_kan.layers.masks import set_edge_mask
from lightning_kan.layers.symbolic import symbolic_edges
from lightning_kan.lotra import add_adapter
from lightning_kan.nets import KAN, MLP, MetaKAN, SlimKAN
from lightning_kan.pde import (
    Burgers,
    Elliptic,
    HardDirichlet,
    Helmholtz,
    SteadyAllenCahn,
    TimeAllenCahn,
)
from lightning_kan.tasks.pinn import PINNTask

TOL = 1e-10
#: both diagonal entries, a mixed pair and the Laplacian as one summed entry
PAIRS = [(0, 0), (1, 1), (0, 1), [(0, 0), (1, 1)]]
PROBLEMS = [Elliptic(p=0.7), Helmholtz(a1=1.0, a2=2.0, k=1.5), SteadyAllenCahn(eps=0.3)]
PROBLEMS += [TimeAllenCahn(eps=0.2), Burgers(nu=0.1)]


def assert_agree(ours: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to ``TOL`` times the expected tensor's scale (at least 1): float64 round-off
    grows with the magnitude of losses and gradients."""
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(ours, expected, rtol=0, atol=TOL * scale)


def as_entry(item) -> list[tuple[int, int]]:
    """A pair ``(a, b)`` or a list of pairs (summed) as a list of pairs."""
    return [tuple(item)] if isinstance(item[0], int) else [tuple(pair) for pair in item]


def nested_autograd(net, x: torch.Tensor, pairs) -> tuple[torch.Tensor, ...]:
    """``u (N, C)``, ``grad (N, C, d)``, ``second (N, C, m)`` by nested autograd (each
    entry of ``pairs`` a pair or a list of pairs whose second derivatives it sums)."""
    x = x.detach().clone().requires_grad_()
    u = net(x)
    grads, seconds = [], []
    for c in range(u.shape[1]):
        (g,) = torch.autograd.grad(u[:, c].sum(), x, create_graph=True)
        grads.append(g)
        seconds.append(
            torch.stack(
                [
                    sum(
                        torch.autograd.grad(g[:, a].sum(), x, create_graph=True)[0][:, b]
                        for a, b in as_entry(item)
                    )
                    for item in pairs
                ],
                dim=-1,
            )
        )
    return u, torch.stack(grads, 1), torch.stack(seconds, 1)


def assert_jet_matches(net, x: torch.Tensor, pairs=PAIRS) -> None:
    jet = jet_forward(net, x, pairs)
    u, grad, second = nested_autograd(net, x, pairs)
    assert_agree(jet.value, u)
    assert_agree(jet.grad, grad)
    assert_agree(jet.second, second)
    for m, item in enumerate(pairs):
        entry = [(b, a) for a, b in as_entry(item)]  # either order
        assert_agree(jet.d2(*entry), second[..., m])
        if len(entry) == 1:
            assert_agree(jet.d2(*entry[0]), second[..., m])


def points(n: int = 13, d: int = 2, scale: float = 1.2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=generator, dtype=torch.float64) * 2 - 1) * scale


def randomise(net: nn.Module, scale: float = 0.3) -> nn.Module:
    """Non-trivial trainable parameters (LoTRA cores start at zero, biases at zero)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in net.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * scale)
    return net


def non_uniform(basis) -> None:
    knots = basis.grid.clone()
    spacing = knots[:, 1:2] - knots[:, :1]
    knots = (
        knots + torch.rand(knots.shape, generator=torch.Generator().manual_seed(3)) * 0.3 * spacing
    )
    basis.set_knots(knots.sort(dim=-1).values.to(basis.grid.dtype))


# ------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("name", sorted(BASES))
def test_basis_derivatives_match_the_autograd_default(name):
    basis = build_basis(name, 3, **BASES[name]).double()
    x = points(40, 3, scale=1.6)  # inside and outside the grids
    for order in (1, 2):
        ours, reference = basis.derivatives(x, order=order), Basis.derivatives(basis, x, order)
        assert len(ours) == order + 1
        for value, expected in zip(ours, reference, strict=True):
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("spline_order", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("uniform", [True, False])
def test_bspline_derivatives_every_order_and_grid(spline_order, uniform):
    basis = build_basis("bspline", 2, grid_size=4, spline_order=spline_order).double()
    if not uniform:
        non_uniform(basis)
    assert basis.is_uniform is uniform
    x = points(60, 2, scale=1.3)
    for value, expected in zip(basis.derivatives(x), Basis.derivatives(basis, x), strict=True):
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", ["bspline", "chebyshev"])
def test_derivatives_pass_gradcheck(name):
    basis = build_basis(name, 2, **BASES[name]).double()
    x = points(6, 2, scale=0.9).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: basis.derivatives(t), (x,))
    if name == "bspline":
        non_uniform(basis)
        assert torch.autograd.gradcheck(lambda t: basis.derivatives(t), (x,))


def test_minmax_bases_are_not_elementwise_and_refuse_derivatives():
    basis = build_basis("legendre", 3, degree=4, normalization="minmax")
    assert basis.elementwise is False
    assert build_basis("legendre", 3, degree=4).elementwise is True
    with pytest.raises(ValueError, match="elementwise is False"):
        basis.derivatives(torch.randn(4, 3))
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        build_basis("chebyshev", 3).derivatives(torch.randn(4, 3), order=3)


@pytest.mark.parametrize("name", ["silu", "gelu", "tanh", "identity"])
def test_activation_closed_forms_match_autograd(name):
    activation = resolve_activation(name)
    assert activation.elementwise
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)
    generic = elementwise_derivatives(lambda t: activation(t), x)  # autograd of the function
    for value, expected in zip(activation.derivatives(x), generic, strict=True):
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "module", [nn.SiLU(), nn.Tanh(), nn.GELU(), nn.ReLU(), nn.Sigmoid(), nn.GELU("tanh")]
)
def test_module_derivatives_match_autograd(module):
    x = torch.linspace(-3, 3, 31, dtype=torch.float64) + 0.01  # not at ReLU's kink
    generic = elementwise_derivatives(lambda t: module(t), x)
    for value, expected in zip(elementwise_derivatives(module, x), generic, strict=True):
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-14)


def test_callable_activations():
    prelu = resolve_activation(nn.PReLU(init=0.2).double())
    assert prelu.elementwise
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    _, slope, curvature = prelu.derivatives(x)
    torch.testing.assert_close(slope, torch.where(x > 0, 1.0, 0.2).double())
    assert torch.equal(curvature, torch.zeros_like(x))
    assert not resolve_activation(torch.sin).elementwise  # unknown function: not assumed


# ------------------------------------------------------------------------ jets
@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("base_activation", ["silu", "gelu", "tanh", "identity", "none"])
def test_kan_jet_every_basis_and_activation(name, base_activation):
    net = KAN([2, 4, 3, 2], basis=name, basis_kwargs=BASES[name], base_activation=base_activation)
    assert_jet_matches(randomise(net.double()), points())


def test_kan_jet_non_uniform_grid_no_bias_three_inputs():
    net = KAN([3, 4, 1], basis="bspline", bias=False).double()
    for layer in net.layers:
        non_uniform(layer.basis)
    assert_jet_matches(randomise(net), points(9, 3), pairs=[(0, 0), (1, 2), (2, 2)])


@pytest.mark.parametrize("activation", ["silu", "relu", "gelu", "tanh"])
def test_mlp_jet(activation):
    assert_jet_matches(MLP([2, 8, 8, 1], activation=activation).double(), points())


@pytest.mark.parametrize(
    "net",
    [
        lambda: SlimKAN([2, 5, 4, 1], ranks=2, basis="chebyshev"),
        lambda: MetaKAN([2, 5, 4, 1], basis="bspline"),
        lambda: KAN([2, 6, 4, 1], mult_nodes=2),
        lambda: KAN([2, 5, 1], base_activation=nn.PReLU(init=0.3)),
    ],
    ids=["slim", "meta", "mult_nodes", "prelu"],
)
def test_jet_through_coefficient_families_and_nodes(net):
    assert_jet_matches(randomise(net().double()), points())


def test_jet_through_lotra_adapters_and_masked_edges():
    net = randomise(KAN([2, 5, 3, 1], basis="chebyshev").double())
    add_adapter(net, ranks=2, clip_ranks=True)
    randomise(net)  # the adapters' zero cores become non-zero
    keep = torch.ones(3, 5, dtype=torch.bool)
    keep[0, 1] = keep[2, 4] = False
    set_edge_mask(net.layers[1], keep)
    assert_jet_matches(net, points())


def test_jet_through_hard_dirichlet_and_eval_batch_norm():
    problem = Helmholtz(a1=1.0, a2=2.0)
    net = HardDirichlet(randomise(KAN([2, 4, 1], basis="rbf").double()), problem)
    assert_jet_matches(net, points())
    kan = randomise(KAN([2, 4, 3, 1], norm="batch").double())
    kan.train()(points(32))  # running statistics
    assert not supports_jet(kan)
    kan.eval()
    assert supports_jet(kan)
    assert_jet_matches(kan, points())


def test_input_jet_is_implicit_and_checked():
    x = points(5)
    jet = Jet.input(x, [(1, 0), (0, 1)])
    assert jet.grad_rows is None and jet.second_rows is None and jet.entries == (((0, 1),),)
    torch.testing.assert_close(jet.grad, torch.eye(2, dtype=x.dtype).expand(5, 2, 2))
    with pytest.raises(KeyError, match=r"\(0, 0\)"):
        jet.d2(0, 0)
    laplacian = Jet.input(x, [(0, 0), (1, 1)])  # two entries: d2 of both sums them
    torch.testing.assert_close(laplacian.d2((0, 0), (1, 1)), x.new_zeros(5, 2))
    with pytest.raises(ValueError, match="not a valid pair"):
        Jet.input(x, [(0, 2)])
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        Jet.input(x[0], [])


# -------------------------------------------------------------------- refusals
def test_unsupported_layers_are_named():
    cases = {
        "LayerNorm": KAN([2, 3, 1], norm="layer"),
        "not elementwise": KAN(
            [2, 3, 1], basis="legendre", basis_kwargs={"normalization": "minmax"}
        ),
        "symbolic edges": KAN([2, 3, 1]),
        "not known to be elementwise": KAN([2, 3, 1], base_activation=torch.sin),
        "no forward-mode derivative rule": nn.Sequential(nn.Linear(2, 3), nn.Softmax(-1)),
    }
    symbolic_edges(cases["symbolic edges"].layers[1])
    for phrase, net in cases.items():
        gaps = jet_gaps(net)
        assert any(phrase in gap for gap in gaps), (phrase, gaps)
        with pytest.raises(JetUnsupported, match=phrase) as error:
            jet_forward(net, torch.randn(4, 2), PAIRS)
        assert "derivatives='autograd'" in str(error.value) and "\n" not in str(error.value)
    assert supports_jet(KAN([2, 3, 1])) and supports_jet(MLP([2, 3, 1]))


# ------------------------------------------------------------- problems, PINN loss
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
def test_residual_from_jet_is_zero_on_the_exact_solution(problem):
    x = points(20) * 0.4 + 0.5 if isinstance(problem, Elliptic) else points(20) * 0.9
    jet = propagate(problem.exact, Jet.input(x, problem.second_derivatives))  # by autograd
    residual = problem.residual_from_jet(x, jet)
    assert residual.shape == (20, 1)
    torch.testing.assert_close(residual, torch.zeros_like(residual), rtol=0, atol=1e-10)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("kind", ["chebyshev", "bspline", "mlp", "hard"])
def test_pinn_loss_and_parameter_gradients_match_autograd(problem, kind):
    if kind == "mlp":
        net = MLP([2, 6, 6, 1], activation="tanh")
    else:
        net = KAN([2, 5, 4, 1], basis="bspline" if kind == "bspline" else "chebyshev")
    net = randomise(net.double())
    if kind == "hard":
        net = HardDirichlet(net, problem)
    x = (points(25) + 1) / 2 if isinstance(problem, Elliptic) else points(25, scale=0.95)
    params = [p for p in net.parameters() if p.requires_grad]
    jet = jet_forward(net, x.clone().requires_grad_(), problem.second_derivatives)
    loss_jet = problem.residual_from_jet(x, jet).square().mean()
    loss_ref = problem.residual(net, x.clone().requires_grad_()).square().mean()
    assert_agree(loss_jet, loss_ref)
    options = {"allow_unused": True, "materialize_grads": True}  # Elliptic ignores u's bias
    grads_jet = torch.autograd.grad(loss_jet, params, **options)
    grads_ref = torch.autograd.grad(loss_ref, params, **options)
    for ours, expected in zip(grads_jet, grads_ref, strict=True):
        assert_agree(ours, expected)


def test_an_inherited_jet_residual_is_not_used_for_a_new_residual():
    class Shifted(Helmholtz):
        def residual(self, u_fn, x):
            return super().residual(u_fn, x) + 1.0

    assert Helmholtz().has_jet_residual and not Shifted().has_jet_residual


def _task_loss(net, problem, derivatives, calls):
    task = PINNTask(net, problem=problem, derivatives=derivatives)
    original = problem.residual

    def counted(u_fn, x):
        calls.append(derivatives)
        return original(u_fn, x)

    problem.residual = counted
    batch = {"interior": points(16, seed=4) * 0.9, "boundary": points(8, seed=5).clamp(-1, 1)}
    try:
        return task.training_loss(batch, record=False)
    finally:
        del problem.residual


def test_pinn_task_uses_the_jet_by_default_and_falls_back():
    problem = Helmholtz(a1=1.0, a2=2.0)
    net = randomise(KAN([2, 4, 1], basis="chebyshev").double())
    calls: list[str] = []
    auto = _task_loss(net, problem, "auto", calls)
    jet = _task_loss(net, problem, "jet", calls)
    reference = _task_loss(net, problem, "autograd", calls)
    assert calls == ["autograd"]  # the jet modes never ran nested autograd
    assert_agree(auto, reference)
    assert_agree(jet, reference)
    layer_norm = KAN([2, 4, 3, 1], norm="layer").double()
    _task_loss(layer_norm, problem, "auto", calls)
    assert calls == ["autograd", "auto"]  # auto fell back
    with pytest.raises(
        JetUnsupported, match=r"PINNTask\(derivatives='jet'\).*norms\.0 \(LayerNorm\)"
    ):
        _task_loss(layer_norm, problem, "jet", calls)
    with pytest.raises(ValueError, match="derivatives must be one of"):
        PINNTask(net, derivatives="forward")


def test_jet_residual_keeps_the_x_graph_for_the_gradient_term():
    """gPINN differentiates the residual in x: the jet path keeps x's graph for it."""
    problem = Burgers(nu=0.1)
    net = randomise(KAN([2, 4, 1], basis="chebyshev").double())
    batch = {"interior": points(16, seed=4) * 0.9, "boundary": points(8, seed=5)}
    losses = [
        PINNTask(net, problem=problem, derivatives=mode, gradient_weight=2.0).training_loss(
            {key: value.clone() for key, value in batch.items()}, record=False
        )
        for mode in ("jet", "autograd")
    ]
    assert_agree(losses[0], losses[1])
    params = list(net.parameters())
    for ours, expected in zip(
        torch.autograd.grad(losses[0], params), torch.autograd.grad(losses[1], params), strict=True
    ):
        assert_agree(ours, expected)
