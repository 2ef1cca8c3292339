"""Symbolic edges: the library, fitting, fixing, formulas (lightning_kan.interpret)."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from lightning_kan.interpret import (
    auto_symbolic,
    fix_symbolic,
    suggest_symbolic,
    symbolic_formula,
    unfix_symbolic,
)
from lightning_kan.interpret.symbolic import import_sympy
from lightning_kan.layers.masks import edge_mask, set_edge_mask
from lightning_kan.layers.symbolic import (
    Reflect,
    Scale,
    available_symbolic,
    get_symbolic,
    register_symbolic,
)
from lightning_kan.nets import KAN, MLP

try:
    import sympy
except ImportError:  # without the [symbolic] extra only the formula tests are skipped
    sympy = None
needs_sympy = pytest.mark.skipif(sympy is None, reason="sympy ([symbolic] extra) not installed")

PYKAN_NAMES = [
    "x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt",
    "x^0.5", "x^1.5", "1/sqrt(x)", "1/x^0.5", "exp", "log", "abs", "sin", "cos", "tan",
    "tanh", "sgn", "arcsin", "arccos", "arctan", "arctanh", "0", "gaussian",
]  # fmt: skip


def _inside(entry, n: int = 200) -> torch.Tensor:
    """``n`` float64 points strictly inside ``entry``'s domain (within [-3, 3])."""
    u = torch.linspace(-3, 3, 4 * n, dtype=torch.float64)
    keep = entry.domain(u, u) & (u.abs() > 0.05) & ((u.abs() - 1).abs() > 0.05)
    return u[keep][:: max(1, int(keep.sum()) // n)]


def _one_edge(name: str, params, dtype=torch.float64) -> KAN:
    net = KAN([1, 1]).to(dtype)
    fix_symbolic(net, 0, 0, 0, name, params=params)
    return net


# ---------------------------------------------------------------------------- library
def test_library_has_pykan_names_and_aliases():
    for name in PYKAN_NAMES:
        get_symbolic(name)
    aliases = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "atanh": "arctanh",
               "x2": "x^2", "x**2": "x^2", " X ^ 3 ": "x^3", "x^0.5": "sqrt",
               "1/x^0.5": "1/sqrt(x)", "sign": "sgn", "ln": "log"}  # fmt: skip
    for alias, name in aliases.items():
        assert get_symbolic(alias).name == name


@needs_sympy
@pytest.mark.parametrize("name", available_symbolic())
def test_torch_and_sympy_functions_agree_in_the_domain(name):
    entry = get_symbolic(name)
    u = _inside(entry)
    symbol = sympy.Symbol("u")
    expression = sympy.sympify(entry.sympy_fn, locals={"x": symbol})
    expected = sympy.lambdify(symbol, expression, "numpy")(u.numpy())
    got = entry.fn(u)
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=torch.float64).expand_as(got))


@pytest.mark.parametrize("name", available_symbolic())
def test_canonical_form_keeps_the_values(name):
    """c f(a x + b) + d and its canonical form agree on samples; symmetric functions end
    with a >= 0, scale-free ones with |a| = 1."""
    entry = get_symbolic(name)
    for a in (-1.7, 0.6, 2.3):
        u = _inside(entry, 50)[10:40]  # an interval inside the domain: x = (u - b) / a
        b, c, d = 0.3, -1.3, 0.4
        x = (u - b) / a
        a2, b2, c2, d2 = entry.canonicalize(a, b, c, d)
        before = c * entry.fn(a * x + b) + d
        after = c2 * entry.fn(a2 * x + b2) + d2
        torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)
        if any(isinstance(t, Reflect) for t in entry.canonical):
            assert a2 >= 0
        if any(isinstance(t, Scale) for t in entry.canonical):
            assert abs(a2) == 1.0


def test_register_symbolic_adds_a_function_and_refuses_clashes():
    entry = register_symbolic("sinc_test", lambda u: torch.sinc(u / math.pi), "sinc(x)", 3)
    assert get_symbolic("SINC_TEST") is entry and "sinc_test" in available_symbolic()
    with pytest.raises(ValueError, match="already name"):
        register_symbolic("sine_alias_test", torch.sin, "sin(x)", 2, aliases=("asin",))


# ----------------------------------------------------------------------------- fitting
CASES = [  # name, params [a, b, c, d] as given, expected canonical params, sample range
    ("sin", (3.0, 1.0, 2.0, -0.5), (3.0, 1.0, 2.0, -0.5), (-1.0, 1.0)),
    ("sin", (-3.0, -1.0, -2.0, -0.5), (3.0, 1.0, 2.0, -0.5), (-1.0, 1.0)),  # symmetric twin
    ("x^2", (2.0, -0.4, 0.75, 0.5), (1.0, -0.2, 3.0, 0.5), (-1.0, 1.0)),
    ("exp", (0.7, -0.2, 1.5, 0.3), (0.7, 0.0, 1.5 * math.exp(-0.2), 0.3), (-1.0, 1.0)),
    ("1/x", (2.0, 1.0, 2.0, 1.0), (1.0, 0.5, 1.0, 1.0), (0.1, 2.0)),
]


@pytest.mark.parametrize(("name", "params", "expected", "bounds"), CASES)
def test_suggest_symbolic_recovers_function_and_constants(name, params, expected, bounds):
    net = _one_edge(name, params)
    torch.manual_seed(0)
    low, high = bounds
    x = torch.rand(1000, 1, dtype=torch.float64) * (high - low) + low
    best = suggest_symbolic(net, 0, 0, 0, x)[0]
    assert best.name == name
    assert best.r2 == pytest.approx(1.0, abs=1e-12)
    for got, want in zip((best.a, best.b, best.c, best.d), expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    entry = get_symbolic(name)
    fitted = best.c * entry.fn(best.a * x + best.b) + best.d
    torch.testing.assert_close(fitted, net(x).detach(), rtol=0, atol=1e-9)


def test_suggest_symbolic_lists_only_functions_valid_on_the_range():
    """Every suggestion keeps a*x+b in its domain on the samples and is finite there."""
    net = _one_edge("sin", (3.0, 1.0, 2.0, -0.5))
    x = torch.linspace(-1, 1, 300, dtype=torch.float64)[:, None]
    fits = suggest_symbolic(net, 0, 0, 0, x, library=available_symbolic(), top_k=100)
    assert {"log", "sqrt", "arcsin", "1/x"} <= {fit.name for fit in fits}
    for fit in fits:
        entry = get_symbolic(fit.name)
        ends = torch.tensor([fit.a * -1.0 + fit.b, fit.a * 1.0 + fit.b], dtype=torch.float64)
        assert bool(entry.domain(ends.min().view(1), ends.max().view(1))), fit
        values = fit.c * entry.fn(fit.a * x + fit.b) + fit.d
        assert torch.isfinite(values).all() and 0.0 <= fit.r2 <= 1.0, fit
    scores = [fit.score for fit in fits]
    assert scores == sorted(scores, reverse=True) or max(scores) - scores[0] <= 1e-6


def test_constant_samples_give_finite_results():
    net = _one_edge("0", (1.0, 0.0, 0.0, 0.7))  # the edge is the constant 0.7
    x = torch.rand(200, 1, dtype=torch.float64)
    fits = suggest_symbolic(net, 0, 0, 0, x, library=available_symbolic(), top_k=100)
    assert fits[0].name == "0" and fits[0].d == pytest.approx(0.7)
    for fit in fits:
        assert fit.r2 == 1.0 and all(math.isfinite(v) for v in (fit.a, fit.b, fit.c, fit.d))
    same_x = torch.full((50, 1), 0.3, dtype=torch.float64)  # a constant input
    net = _one_edge("sin", (3.0, 1.0, 2.0, -0.5))
    for fit in suggest_symbolic(net, 0, 0, 0, same_x, top_k=100):
        assert fit.r2 == 1.0 and math.isfinite(fit.score)


# ------------------------------------------------------------------- fixing, formulas
KNOWN = {  # layer, i, o -> name, [a, b, c, d]
    (0, 0, 0): ("sin", (3.0, 1.0, 2.0, -0.5)),
    (0, 1, 0): ("x^2", (1.0, 0.5, 1.5, 0.0)),
    (0, 0, 1): ("x", (1.0, 0.0, -1.0, 0.0)),
    (0, 1, 1): ("exp", (2.0, 0.0, 0.5, 1.0)),
    (1, 0, 0): ("tanh", (0.5, 0.0, 2.0, 0.0)),
    (1, 1, 0): ("x^2", (1.0, 0.0, 0.25, 0.0)),
}


def _known_net() -> KAN:
    net = KAN([2, 2, 1]).double()
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.zero_()
        net.layers[0].bias[1] = 0.25
    for (layer, i, o), (name, params) in KNOWN.items():
        fix_symbolic(net, layer, i, o, name, params=params)
    return net


def _known_formula(x1, x2):
    h1 = (
        2 * sympy.sin(3 * x1 + 1)
        - sympy.Rational(1, 2)
        + sympy.Rational(3, 2) * (x2 + sympy.Rational(1, 2)) ** 2
    )
    h2 = -x1 + sympy.exp(2 * x2) / 2 + 1 + sympy.Rational(1, 4)
    return 2 * sympy.tanh(h1 / 2) + h2**2 / 4


@needs_sympy
def test_fixed_net_gives_back_its_functions_and_formula():
    net = _known_net()
    torch.manual_seed(0)
    x = torch.rand(1000, 2, dtype=torch.float64) * 2 - 1
    for (layer, i, o), (name, params) in KNOWN.items():
        best = suggest_symbolic(net, layer, i, o, x)[0]
        canonical = get_symbolic(name).canonicalize(*params)
        assert best.name == name, (layer, i, o, best)
        assert [best.a, best.b, best.c, best.d] == pytest.approx(list(canonical), abs=1e-4)
    x1, x2 = sympy.symbols("x_1 x_2")
    (formula,) = symbolic_formula(net)
    assert sympy.simplify(sympy.nsimplify(formula, rational=True) - _known_formula(x1, x2)) == 0
    (named,) = symbolic_formula(net, variables=["p", "q"], simplify=False)
    assert named.free_symbols == set(sympy.symbols("p q"))


@needs_sympy
def test_formula_equals_network_in_float64_and_rounding_stays_close():
    torch.manual_seed(1)
    net = KAN([3, 4, 2]).double()
    x = torch.rand(500, 3, dtype=torch.float64) * 2 - 1
    table = auto_symbolic(net, x)
    assert len(table) == 3 * 4 + 4 * 2 and all(row["fixed"] for row in table)
    symbols = sympy.symbols("x_1:4")
    exact = symbolic_formula(net, simplify=False, digits=None)
    values = [sympy.lambdify(symbols, f, "numpy")(*x.T.numpy()) for f in exact]
    expected = net(x).detach()
    for k, value in enumerate(values):
        got = torch.as_tensor(value, dtype=torch.float64).expand(len(x))
        torch.testing.assert_close(got, expected[:, k], rtol=0, atol=1e-10)
    rounded = symbolic_formula(net, simplify=False, digits=6)
    for k, formula in enumerate(rounded):
        got = torch.as_tensor(sympy.lambdify(symbols, formula, "numpy")(*x.T.numpy()))
        assert (got - expected[:, k]).abs().max() <= 1e-3 * (1 + expected[:, k].abs().max())


@needs_sympy
def test_formula_understands_multiplication_nodes():
    """[2, 2, 1] with one mult node: sum node = x1 + 1, mult node = x1 * (x2 - 2)."""
    net = KAN([2, 2, 1], mult_nodes=1).double()
    assert net.layers[0].out_features == 3
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.zero_()
    fix_symbolic(net, 0, 0, 0, "x", params=(1, 0, 1, 1))  # subnode 0 = x1 + 1
    fix_symbolic(net, 0, 0, 1, "x", params=(1, 0, 1, 0))  # subnode 1 = x1
    fix_symbolic(net, 0, 1, 2, "x", params=(1, 0, 1, -2))  # subnode 2 = x2 - 2
    set_edge_mask(net.layers[0], torch.tensor([[False, False], [False, False], [False, False]]))
    fix_symbolic(net, 1, 0, 0, "x", params=(1, 0, 3, 0))
    fix_symbolic(net, 1, 1, 0, "x", params=(1, 0, 1, 0))
    x1, x2 = sympy.symbols("x_1 x_2")
    (formula,) = symbolic_formula(net)
    assert sympy.simplify(formula - (3 * (x1 + 1) + x1 * (x2 - 2))) == 0
    x = torch.rand(64, 2, dtype=torch.float64)
    torch.testing.assert_close(net(x)[:, 0].detach(), 3 * (x[:, 0] + 1) + x[:, 0] * (x[:, 1] - 2))


def test_symbolic_network_round_trips_through_a_state_dict():
    net = _known_net()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    fresh = KAN([2, 2, 1]).double()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.rand(100, 2, dtype=torch.float64)
    assert torch.equal(fresh(x), net(x))
    for old, new in zip(net.layers, fresh.layers, strict=True):
        assert torch.equal(edge_mask(old), edge_mask(new))
        assert torch.equal(old.symbolic.active, new.symbolic.active)
        assert [old.symbolic.name(o, i) for o, i in [(0, 0), (0, 1)]] == [
            new.symbolic.name(o, i) for o, i in [(0, 0), (0, 1)]
        ]


def test_symbolic_network_copies_and_runs_in_float32():
    net = _known_net().float()
    x = torch.rand(100, 2)
    out = net(x)
    assert out.dtype == torch.float32 and net.layers[0].symbolic.affine.dtype == torch.float32
    assert torch.equal(copy.deepcopy(net)(x), out)
    reference = _known_net()(x.double()).float()
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)


def test_fine_tuning_reduces_the_loss_and_cut_edges_stay_zero():
    torch.manual_seed(0)
    x = torch.rand(256, 2, dtype=torch.float64) * 2 - 1
    target = 2 * torch.sin(3 * x[:, :1] + 1) + 0.5 * x[:, 1:] ** 2
    net = KAN([2, 2, 1]).double()
    fix_symbolic(net, 0, 0, 0, "sin", params=(2.5, 0.8, 1.5, 0.1))
    fix_symbolic(net, 0, 1, 0, "x^2", params=(1.0, 0.1, 0.3, 0.0))
    set_edge_mask(net.layers[0], torch.tensor([[False, False], [False, False]]))  # node 1 cut
    fix_symbolic(net, 1, 0, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    set_edge_mask(net.layers[1], torch.tensor([[False, False]]))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.03)

    def loss() -> torch.Tensor:
        return (net(x) - target).square().mean()

    start = loss().item()
    for _ in range(150):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 1e-4 * start
    a, b = net.layers[0].symbolic.affine[0, 0, :2].tolist()  # sin's argument is 3 x + 1
    assert (a, b) == (pytest.approx(3.0, abs=1e-2), pytest.approx(1.0, abs=1e-2))
    first = net.layers[0]
    numeric = first.edge_activations(x) - first.symbolic.edge_values(x)
    assert torch.equal(numeric, torch.zeros_like(numeric))  # every numeric edge is cut
    assert torch.equal(
        first.symbolic.edge_values(x)[:, 1], torch.zeros(256, 2, dtype=torch.float64)
    )
    assert torch.equal(
        net.layers[1].edge_activations(first(x))[:, 0, 1], torch.zeros(256, dtype=torch.float64)
    )


def test_unfix_restores_the_numeric_edge_exactly():
    torch.manual_seed(0)
    net = KAN([2, 3, 1]).double()
    x = torch.rand(50, 2, dtype=torch.float64)
    before = net(x).detach()
    fit = fix_symbolic(net, 0, 1, 2, "sin", x=x)
    assert fit.name == "sin" and 0.0 <= fit.r2 <= 1.0
    assert not bool(edge_mask(net.layers[0])[2, 1])
    unfix_symbolic(net, 0, 1, 2)
    assert torch.equal(net(x), before)


def test_auto_symbolic_skips_cut_edges_and_honours_the_threshold():
    torch.manual_seed(0)
    net = KAN([2, 3, 1]).double()
    keep = torch.ones(3, 2, dtype=torch.bool)
    keep[1, 0] = False
    set_edge_mask(net.layers[0], keep)
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    threads = torch.get_num_threads()
    none = auto_symbolic(net, x, r2_threshold=1.5)
    assert torch.get_num_threads() == threads  # the fit's one-thread section is undone
    assert len(none) == 5 + 3 and not any(row["fixed"] for row in none)
    assert (0, 0, 1) not in {(row["layer"], row["i"], row["o"]) for row in none}
    assert net.layers[0].symbolic is None and all(0 <= row["r2"] <= 1 for row in none)
    table = auto_symbolic(net, x, library=["x", "x^2", "sin"])
    assert all(row["fixed"] and row["name"] in ("x", "x^2", "sin") for row in table)
    for row in table:
        symbolic = net.layers[row["layer"]].symbolic
        assert symbolic.name(row["o"], row["i"]) == row["name"]
        assert symbolic.affine[row["o"], row["i"]].tolist() == [row[k] for k in "abcd"]
    assert auto_symbolic(net, x) == []  # nothing numeric is left
    assert symbolic.edge_label(0, 0)  # plain text for plots


def test_edge_label_is_plain_text():
    net = _one_edge("sin", (3.0, 1.0, 2.0, -0.5))
    assert net.layers[0].symbolic.edge_label(0, 0) == "2*sin(3*x+1)-0.5"
    net = _one_edge("x^2", (1.0, -0.25, 1.0, 0.0))
    assert net.layers[0].symbolic.edge_label(0, 0) == "(x-0.25)^2"


# ------------------------------------------------------------------------- bad inputs
@needs_sympy
def test_bad_inputs_give_clear_errors():
    net = KAN([2, 3, 1]).double()
    x = torch.rand(20, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="did you mean 'sin'"):
        fix_symbolic(net, 0, 0, 0, "sine")
    with pytest.raises(ValueError, match="layer=2 is out of range"):
        suggest_symbolic(net, 2, 0, 0, x)
    with pytest.raises(ValueError, match="i=-1 is out of range"):
        suggest_symbolic(net, 0, -1, 0, x)
    with pytest.raises(ValueError, match="o=3 is out of range"):
        fix_symbolic(net, 0, 0, 3, "sin")
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        suggest_symbolic(net, 0, 0, 0, torch.rand(20, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2"):
        suggest_symbolic(net, 0, 0, 0, x[:1])
    with pytest.raises(ValueError, match="library must be a non-empty list"):
        suggest_symbolic(net, 0, 0, 0, x, library="sin")
    with pytest.raises(ValueError, match="weight_simple"):
        auto_symbolic(net, x, weight_simple=2)
    with pytest.raises(ValueError, match="params must be 4 finite numbers"):
        fix_symbolic(net, 0, 0, 0, "sin", params=(1, 2, 3))
    with pytest.raises(ValueError, match="cannot represent"):
        fix_symbolic(net, 0, 0, 0, "log", x=x - 2, fit=False, params=(1, 0, 1, 0))
    with pytest.raises(ValueError, match=r"9 kept edges are still numeric.*layers\[0\] i=0"):
        symbolic_formula(net)
    fix_symbolic(net, 0, 0, 0, "sin")
    for digits in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="digits must be a positive int"):
            symbolic_formula(net, digits=digits)
    with pytest.raises(ValueError, match="variables must list 2 names"):
        symbolic_formula(net, variables=["a"])
    with pytest.raises(TypeError, match="needs a KAN"):
        suggest_symbolic(MLP([2, 3, 1]), 0, 0, 0, x)
    with pytest.raises(TypeError, match="norm=None"):
        symbolic_formula(KAN([2, 3, 1], norm="layer"))


def test_missing_sympy_names_the_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "sympy":
            raise ImportError("No module named 'sympy'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r'pip install "lightning-kan\[symbolic\]"'):
        import_sympy("symbolic_formula")


@pytest.mark.slow
def test_auto_symbolic_fixes_every_edge_of_a_4_8_8_1_network():
    """Every edge of the issue's speed case is fixed (its timing: benchmarks/interpret.py)."""
    torch.manual_seed(0)
    net = KAN([4, 8, 8, 1])
    x = torch.rand(1000, 4) * 2 - 1
    table = auto_symbolic(net, x)
    assert len(table) == 4 * 8 + 8 * 8 + 8 and all(row["fixed"] for row in table)
