"""``lightning_kan symbolic`` and the read_formula workflow behind it."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_kan.cli import main
from lightning_kan.interpret.workflow import read_formula, write_formula_report
from lightning_kan.nets import KAN

sympy = pytest.importorskip("sympy")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _toy(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 2 - 1
    return x, torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2


def _trained_toy_kan() -> KAN:
    torch.manual_seed(0)
    net = KAN([2, 3, 1]).double()
    x, y = _toy(512, 0)
    optimizer = torch.optim.LBFGS(net.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return net


def test_read_formula_gives_a_formula_that_computes_the_symbolic_network(tmp_path):
    net = _trained_toy_kan()
    before = copy.deepcopy(net.state_dict())
    report = read_formula(net, _toy(512, 0), _toy(256, 1), fine_tune_steps=20)
    now = net.state_dict()  # untouched:
    assert all(torch.equal(v, now[k]) for k, v in before.items() if isinstance(v, torch.Tensor))
    assert report.widths_before == [2, 3, 1] and report.widths_after[0] == 2
    # the unrounded formula is the symbolic network (float64 round-off)
    assert math.isclose(
        report.mse_formula, report.mse_symbolic_network, rel_tol=1e-6, abs_tol=1e-12
    )
    x_test, _ = _toy(64, 2)
    names = sympy.symbols("x_1 x_2")
    evaluate = sympy.lambdify(names, report.input_formulas[0], "numpy")
    values = np.broadcast_to(evaluate(*x_test.T.numpy()), (64,))
    with torch.no_grad():
        expected = report.network(x_test)[:, 0].numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9)
    assert report.mse_symbolic_network < 1e-2, report.formulas  # sin(pi x) + y^2 is easy
    paths = write_formula_report(report, tmp_path / "out")
    assert paths["formula.txt"].read_text().startswith("y_1 = ")
    assert sympy.latex(report.formulas[0]) in paths["formula.tex"].read_text()
    rows = list(csv.DictReader(paths["symbolic_edges.csv"].open()))
    assert len(rows) == len(report.edges) and {"layer", "i", "o", "name", "r2"} <= set(rows[0])
    saved = torch.load(paths["symbolic_network.pt"], weights_only=True)
    fresh = KAN(saved["widths"], mult_nodes=saved["mult_nodes"]).double()
    fresh.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(fresh(x_test), report.network(x_test), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"fine_tune_steps": -1}, "fine_tune_steps"),
        ({"edge_threshold": -1.0}, "edge_threshold"),
    ],
)
def test_read_formula_bad_options_are_clear_errors(kwargs, phrase):
    net = KAN([2, 2, 1])
    data = _toy(16, 0)
    with pytest.raises(ValueError, match=phrase):
        read_formula(net, (data[0].float(), data[1].float()), data, **kwargs)


def test_read_formula_refuses_data_of_the_wrong_width():
    net = KAN([3, 2, 1])
    with pytest.raises(ValueError, match=r"inputs \(N, 3\)"):
        read_formula(net, _toy(16, 0), _toy(16, 1))


def _fit_quickstart(root: str) -> str:
    """A short quick-start fit (8 epochs); returns its saved config."""
    main(
        [
            "fit",
            "--config",
            f"{root}/configs/quickstart.yaml",
            "--trainer.max_epochs=8",
            "--trainer.enable_progress_bar=false",
        ]
    )
    return "runs/quickstart/version_0/config.yaml"


def test_symbolic_subcommand_writes_the_formula_into_the_run_folder(tmp_path, capsys):
    root = str(ROOT)
    config = _fit_quickstart(root)
    main(["symbolic", "--config", config, "--ckpt_path", "last", "--fine_tune_steps", "5"])
    folder = tmp_path / "runs/quickstart/version_0/symbolic"
    text = (folder / "formula.txt").read_text()
    assert text.startswith("y_1 = ") and "test MSE" in text
    formula = sympy.sympify(text.splitlines()[0].removeprefix("y_1 = "))
    assert {s.name for s in formula.free_symbols} <= {"x", "y"}  # the data's variable names
    assert (folder / "formula.tex").is_file() and (folder / "symbolic_edges.csv").is_file()
    assert "lightning_kan: wrote" in capsys.readouterr().out
    # the test MSEs were logged to the run's CSV logger (a new version folder, like `test`)
    metrics = (tmp_path / "runs/quickstart/version_1/metrics.csv").read_text()
    assert "symbolic/mse_formula" in metrics


def test_symbolic_subcommand_without_a_checkpoint_is_one_paragraph(tmp_path, capsys):
    root = str(ROOT)
    with pytest.raises(SystemExit) as stop:
        main(["symbolic", "--config", f"{root}/configs/quickstart.yaml"])
    assert stop.value.code == 1
    error = capsys.readouterr().err.strip()
    assert "--ckpt_path" in error and "\n" not in error


def test_symbolic_subcommand_refuses_a_network_that_has_no_edges(tmp_path, capsys):
    root = str(ROOT)
    main(
        [
            "fit",
            "--config",
            f"{root}/configs/feynman_mlp.yaml",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    config = next(Path("runs").glob("*/version_0/config.yaml"))
    with pytest.raises(SystemExit) as stop:
        main(["symbolic", "--config", str(config), "--ckpt_path", "last"])
    assert stop.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after "--ckpt_path last is"
    assert error.startswith("lightning_kan: error: read_formula needs a KAN")


def test_fine_tune_fits_the_symbolic_constants_and_never_leaves_nan():
    from lightning_kan.interpret import fix_symbolic
    from lightning_kan.interpret.workflow import fine_tune

    net = KAN([1, 1]).double()
    fix_symbolic(net, 0, 0, 0, "sin", fit=False, params=[2.8, 1.1, 1.9, 0.0])
    x = torch.linspace(-1, 1, 200, dtype=torch.float64).unsqueeze(-1)
    y = 2 * torch.sin(3 * x + 1) - 0.5
    with torch.no_grad():
        initial = float((net(x) - y).square().mean())
    losses = fine_tune(net, x, y, 30)
    assert len(losses) == 3 and losses[-1] < 1e-8 and initial > 1e-2
    # a non-finite loss (here a NaN target) is undone: the weights are as before the call
    state = copy.deepcopy(net.state_dict())
    y[0] = float("nan")
    assert fine_tune(net, x, y, 10) == []
    now = net.state_dict()
    assert all(torch.equal(v, now[k]) for k, v in state.items() if isinstance(v, torch.Tensor))
