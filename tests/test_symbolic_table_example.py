"""examples/symbolic_table.py: its targets, its exact-recovery rule and a quick run."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "symbolic_table.py"


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("symbolic_table", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["symbolic_table"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["symbolic_table"]


def test_truths_are_the_sampled_functions(table):
    """Every target's sympy truth is the function its data is sampled from (float64)."""
    assert len(table.TARGETS) >= 12
    for target in table.TARGETS.values():
        data = table.sample(target, table.Budget(num_train=64, num_test=64))
        x, y = data["test_input"], data["test_label"]
        assert x.dtype == torch.float64 and y.shape == (64, 1)
        low = np.array([lo for _, lo, _ in target.equation.variables])
        high = np.array([hi for _, _, hi in target.equation.variables])
        assert (x.numpy() >= low).all() and (x.numpy() <= high).all()
        truth = sympy.lambdify(target.symbols(), target.truth_expr(), modules="numpy")
        np.testing.assert_allclose(truth(*x.numpy().T), y[:, 0].numpy(), rtol=1e-12, atol=0)
        assert table.test_mse(target.truth_expr(), target.symbols(), data) < 1e-28


def test_same_seed_same_data(table):
    target = table.TARGETS["kan-toy"]
    first, second = (table.sample(target, table.QUICK) for _ in range(2))
    for key in first:
        assert torch.equal(first[key], second[key])
    assert not torch.equal(first["train_input"], first["test_input"])


def test_widths_convert_pykans_mult_notation(table):
    assert table.lightning_kan_widths((2, 5, 1)) == ([2, 5, 1], [0])
    assert table.lightning_kan_widths((2, (0, 1), 1)) == ([2, 1, 1], [1])
    assert table.lightning_kan_widths((2, (1, 1), (0, 1), 1)) == ([2, 2, 1, 1], [1, 1])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.1416, sympy.pi),  # not 22/7, which is as close
        (2.0003, sympy.Integer(2)),
        (-0.5004, sympy.Rational(-1, 2)),
        (0.0796, 1 / (4 * sympy.pi)),
        (0.39894, 1 / sympy.sqrt(2 * sympy.pi)),
        (0.70712, 1 / sympy.sqrt(2)),
        (0.0049, sympy.Integer(0)),
        (-0.0049, sympy.Integer(0)),
    ],
)
def test_snap_finds_the_simple_number(table, value, expected):
    assert sympy.simplify(table.snap(value) - expected) == 0


def test_snap_keeps_other_constants(table):
    """Nothing simple within a relative 1e-3: the float stays; pi is 3e-3 from 3.13."""
    assert table.snap(0.0051) == sympy.Float(0.0051)
    assert table.snap(0.123457) == sympy.Float(0.123457)
    assert table.snap(3.13) != sympy.pi


def test_exact_recovery_rule(table):
    f = sympy.Float

    def exact(formula, name):
        target = table.TARGETS[name]
        points = table.sample(target, table.QUICK)["test_input"][:64].numpy()
        return table.is_exact(formula, target.truth_expr(), target.symbols(), points)

    x, y = table.TARGETS["kan-toy"].symbols()
    noisy = f(1.0001) * sympy.exp(
        f(0.9999) * sympy.sin(f(3.1416) * x + f(0.0002)) + f(1.0002) * (y - f(0.0004)) ** 2
    ) + f(0.0003)
    assert exact(noisy, "kan-toy")
    # a constant of the exponent folded into the prefactor: 0.5 * e^0.6931 = 1
    assert exact(f(0.5) * sympy.exp(sympy.sin(f(3.14159) * x) + y**2 + f(0.693147)), "kan-toy")
    assert not exact(sympy.exp(sympy.sin(3 * x) + y**2), "kan-toy")
    # a shift inside the square: exact as written, not after expanding alone
    (theta,) = table.TARGETS["I.6.20a"].symbols()
    shifted = f(0.39894) * sympy.exp(-((f(0.70711) * theta + f(0.0014)) ** 2)) - f(1.6e-5)
    assert exact(shifted, "I.6.20a")
    assert not exact(f(1.02) * sympy.exp(sympy.sin(sympy.pi * x) + y**2), "kan-toy")
    assert not exact(sympy.exp(sympy.sin(sympy.pi * x)), "kan-toy")
    # pykan's sum-node product: ((x + y)^2 - (x - y)^2) / 4
    square_trick = (
        f(0.2501) * (f(1.0002) * x + f(0.9998) * y) ** 2
        - f(0.2499) * (f(0.9999) * x - f(1.0001) * y) ** 2
    )
    assert exact(square_trick, "xy-sum")
    # factors whose constants only multiply to 1: 13.8 * 0.0725 = 1.0005
    assert exact((f(13.8) * x + f(1e-17)) * (f(0.0725) * y), "xy")
    assert not exact((f(13.8) * x) * (f(0.074) * y), "xy")
    # products through exp(sum of logs) need the positive Feynman variables
    m, g, z = table.TARGETS["I.14.3"].symbols()
    logs = f(1.0002) * sympy.exp(
        f(0.9999) * sympy.log(m) + sympy.log(f(1.0001) * g + f(0.0002)) + sympy.log(z)
    )
    assert exact(logs, "I.14.3")
    # equal only after simplify (no expansion makes them identical)
    assert exact(sympy.sin(x + y) ** 2 + sympy.cos(f(1.0001) * (x + y)) ** 2 - 1 + x * y, "xy")
    # a formula in a variable the truth does not have, or undefined, is never exact
    assert not exact(x * y + sympy.Symbol("w"), "xy")
    assert not exact(x * y + 1 / (x - x), "xy")


def test_formula_mse_is_the_lambdified_error(table):
    target = table.TARGETS["xy"]
    data = table.sample(target, table.QUICK)
    x, y = target.symbols()
    expected = float(((data["test_input"].prod(1) + 0.5 - data["test_label"][:, 0]) ** 2).mean())
    assert table.test_mse(x * y + sympy.Float(0.5), [x, y], data) == pytest.approx(expected)
    assert table.test_mse(sympy.Float(0.25), [x, y], data) == pytest.approx(
        float(((0.25 - data["test_label"]) ** 2).mean())
    )
    assert table.test_mse(1 / (x - x), [x, y], data) == math.inf


def _check_row(row, network_rtol: float) -> None:
    assert row.error == ""
    assert row.formula
    # the formula is the symbolic network it was read from
    assert row.mse_formula == pytest.approx(row.mse_network, rel=network_rtol, abs=1e-14)
    assert math.isfinite(row.mse_spline) and row.seconds > 0


def test_quick_run_lightning_kan(table, tmp_path, capsys):
    """The lightning_kan side end to end on one function: the table file is what is printed."""
    out = tmp_path / "table.md"
    argv = ["--functions", "kan-toy", "--libraries", "lightning_kan", "--quick", "--jobs", "1"]
    threads = torch.get_num_threads()
    rows = table.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    # the float64 jobs leave this process as they found it
    assert torch.get_default_dtype() == torch.float32
    assert torch.get_num_threads() == threads
    assert [(row.function, row.library) for row in rows] == [("kan-toy", "lightning_kan")]
    _check_row(rows[0], 1e-6)
    text = out.read_text()
    assert printed == text
    assert "| kan-toy | `exp(sin(pi*x) + y**2)` | lightning_kan |" in text
    exact = int(rows[0].exact)
    assert f"| lightning_kan | {exact}/1 | {100 * exact}% |" in text


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_quick_run_pykan(table):
    """pykan's side (skipped without pykan): same workflow, formula read from its model."""
    pytest.importorskip("kan")
    row = table.run_job("pykan", "xy", table.QUICK)
    _check_row(row, 1e-6)
    assert row.widths == "[2, 1, 1]"


def test_arguments_are_checked(table, capsys):
    with pytest.raises(SystemExit):
        table.parse_args(["--steps", "0"])
    assert "--steps must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        table.parse_args(["--functions", "no-such-function"])


def test_lbfgs_fit_undoes_a_non_finite_step(table):
    """A stage whose loss turns non-finite leaves the network at its last finite state."""
    from lightning_kan.nets import KAN

    torch.manual_seed(0)
    net = KAN([2, 3, 1]).double()
    data = table.sample(table.TARGETS["kan-toy"], table.QUICK)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    broken = dict(data, train_label=data["train_label"].clone())
    broken["train_label"][0] = math.nan
    table.lbfgs_fit(net, broken, steps=3)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    table.lbfgs_fit(net, data, steps=3, lamb=1e-3, update_grid=True)
    with torch.no_grad():
        after = float((net(data["train_input"]) - data["train_label"]).square().mean())
    assert after < float(data["train_label"].var())  # it trained
