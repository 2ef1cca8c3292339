"""benchmarks/pde_vs_pina.py: its smallest run, its table, and that both libraries get
the same problem (PINA's rows only where ``pina`` imports)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pde_vs_pina.py"
SMALLEST = ["--steps", "2", "--interior", "32", "--boundary", "16", "--test-points", "5"]
OURS = ["plain", "r3", "annealing", "causal", "hard", "mlp"]
#: trainable parameters of the [2, 16, 16, 1] KANs with 6 functions per edge (304 edges,
#: (K + 1) weights each, 33 biases) and of the [2, 64, 64, 64, 1] MLP
KAN_PARAMETERS = 304 * 7 + 33
MLP_PARAMETERS = (2 * 64 + 64) + 2 * (64 * 64 + 64) + (64 + 1)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("pde_vs_pina", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pde_vs_pina"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["pde_vs_pina"]


def needs_pina(bench) -> None:
    if not bench.pina_available():
        pytest.skip("pina-mathlab is not installed (a benchmark-only dependency)")


def _rows(lines: list[str]) -> list[list[str]]:
    """The table's data rows, split into cells."""
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| problem")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_smallest_run_of_our_methods(bench, tmp_path):
    output = tmp_path / "table.md"
    lines = bench.main([*SMALLEST, "--methods", *OURS, "--output", str(output)])
    assert output.read_text() == "\n".join(lines) + "\n"
    rows = _rows(lines)
    # five rows per problem, and causal weighting on Burgers (the time-dependent one) only
    assert [(row[0].split()[0], row[1]) for row in rows] == [
        (problem, bench.METHODS[key].label)
        for problem in ("helmholtz", "allen_cahn", "burgers")
        for key in OURS
        if key != "causal" or problem == "burgers"
    ]
    for row in rows:
        assert len(row) == 8 and row[2] == "lightning_kan" and row[4] == "2"
        expected = MLP_PARAMETERS if "MLP" in row[1] else KAN_PARAMETERS
        assert int(row[3]) == expected
        assert math.isfinite(float(row[5])) and float(row[5]) > 0
    assert lines[0].startswith("Budget per row: 2 steps; 32 interior + 16 boundary points")
    # no PINA rows asked for, so no verdict lines
    assert not any(line.startswith("- ") for line in lines)


def test_smallest_run_with_pina(bench, tmp_path):
    needs_pina(bench)
    methods = ["plain", "pina-kan", "pina-mlp"]
    lines = bench.main([*SMALLEST, "--methods", *methods, "--output", str(tmp_path / "t.md")])
    rows = _rows(lines)
    assert len(rows) == 9
    for row in rows:
        assert row[4] == "2"
    pina = [row for row in rows if row[2] == "pina"]
    # PINA's KAN is sized to our Chebyshev KAN, its MLP is ours
    assert sorted(int(row[3]) for row in pina) == [KAN_PARAMETERS] * 3 + [MLP_PARAMETERS] * 3
    verdicts = [line.split(":")[0] for line in lines if line.startswith("- ")]
    problems = [row[0] for row in rows if row[1] == bench.METHODS["plain"].label]
    # one KAN verdict and one overall per problem (no lightning_kan MLP row was run)
    assert verdicts == [f"- {p}, {n}" for p in problems for n in ("KAN", "any network")]


@pytest.mark.parametrize("name", ["helmholtz", "allen_cahn", "burgers"])
def test_pina_residual_is_ours(bench, name):
    """The residual written with PINA's operators equals ``problem.residual`` (float64)."""
    needs_pina(bench)
    from pina import LabelTensor

    spec = bench.PROBLEMS[name]
    problem = spec.build()
    torch.manual_seed(0)
    net = bench.MLP([2, 8, 8, 1], activation="tanh").double()
    points = problem.sample_interior(40, torch.Generator().manual_seed(1)).double()
    ours = problem.residual(net, points.clone().requires_grad_(True))
    labelled = LabelTensor(points.clone(), list(spec.variables)).requires_grad_(True)
    output = LabelTensor(net(labelled.as_subclass(torch.Tensor)), ["u"])
    theirs = bench.pina_residual(problem)(labelled, output)
    assert ours.abs().max() > 1e-3  # a residual that could differ
    torch.testing.assert_close(theirs, ours, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["helmholtz", "burgers"])
def test_both_libraries_train_the_same_mlp_identically(bench, name):
    """Same points, loss, optimizer, seed: PINNTask and PINA's solver move the same MLP to
    the same parameters (so the table compares networks and tools, not set-ups)."""
    needs_pina(bench)
    spec = bench.PROBLEMS[name]
    budget = bench.Budget(interior=48, boundary=16, steps=3, seconds=None, test_points=5)
    ours = bench.run_ours(bench.METHODS["mlp"], spec.build(), budget)
    theirs = bench.run_pina(bench.METHODS["pina-mlp"], spec.build(), spec.variables, budget)
    assert ours.steps == theirs.steps == 3
    first = torch.cat([p.detach().flatten() for p in ours.net.parameters()])
    second = torch.cat([p.detach().flatten() for p in theirs.net.parameters()])
    assert first.shape == second.shape == (MLP_PARAMETERS,)
    torch.testing.assert_close(second, first, rtol=0, atol=1e-6)
    assert theirs.rel_l2 == pytest.approx(ours.rel_l2, rel=1e-5)


def test_a_time_budget_stops_both_libraries(bench):
    """``seconds`` stops a fit after the step that passes it: with a budget below one
    step, exactly one step."""
    spec = bench.PROBLEMS["allen_cahn"]
    budget = bench.Budget(interior=32, boundary=16, steps=None, seconds=1e-9, test_points=5)
    assert bench.run_ours(bench.METHODS["plain"], spec.build(), budget).steps == 1
    if bench.pina_available():
        pina = bench.run_pina(bench.METHODS["pina-kan"], spec.build(), spec.variables, budget)
        assert pina.steps == 1


def test_the_verdicts_say_where_we_are_not_lower(bench):
    def result(error: float) -> object:
        return bench.Result(error, 1, 1, 1.0, torch.nn.Identity())

    kan, mlp = bench.METHODS["plain"], bench.METHODS["mlp"]
    pina_kan, pina_mlp = bench.METHODS["pina-kan"], bench.METHODS["pina-mlp"]
    rows = [
        ("a", kan, result(0.1)),
        ("a", mlp, result(0.5)),
        ("a", pina_kan, result(0.2)),
        ("a", pina_mlp, result(0.4)),
        ("b", kan, result(0.3)),
        ("b", pina_kan, result(0.2)),
    ]
    verdicts = [line for line in bench.table(rows) if line.startswith("- ")]
    assert verdicts == [
        f"- a, KAN: best lightning_kan row ({kan.label}, 1.00e-01) is lower than the best "
        f"PINA row ({pina_kan.label}, 2.00e-01).",
        f"- a, MLP: best lightning_kan row ({mlp.label}, 5.00e-01) is NOT lower than the "
        f"best PINA row ({pina_mlp.label}, 4.00e-01).",
        f"- a, any network: best lightning_kan row ({kan.label}, 1.00e-01) is lower than the "
        f"best PINA row ({pina_kan.label}, 2.00e-01).",
        f"- b, KAN: best lightning_kan row ({kan.label}, 3.00e-01) is NOT lower than the best "
        f"PINA row ({pina_kan.label}, 2.00e-01).",
        f"- b, any network: best lightning_kan row ({kan.label}, 3.00e-01) is NOT lower than "
        f"the best PINA row ({pina_kan.label}, 2.00e-01).",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "0"], "--steps must be a positive number of steps, got 0"),
        (["--seconds", "-1"], "--seconds must be a positive training time per row, got -1.0"),
    ],
)
def test_a_budget_that_trains_nothing_is_refused(bench, arguments, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(arguments)
    assert message in capsys.readouterr().err
