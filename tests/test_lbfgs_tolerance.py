"""The L-BFGS phase's stopping tolerances (``lbfgs_tolerance_grad``,
``lbfgs_tolerance_change``): they reach ``torch.optim.LBFGS`` from every task and from
the official-recipe configs, bad values are clear errors, and 1e-32 (the MetaKAN
authors' and pykan's) keeps a step iterating where torch's defaults stop it."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.cli import build_cli
from lightning_kan.nets import KAN
from lightning_kan.tasks import ClassificationTask, LBFGSPhase, PINNTask, RegressionTask

ROOT = Path(__file__).resolve().parents[1]
#: the tolerances of the MetaKAN authors' function_fitting/train.py (and pykan's fit)
OFFICIAL = {"lbfgs_tolerance_grad": 1e-32, "lbfgs_tolerance_change": 1e-32}
TASKS = {
    "regression": lambda **kw: RegressionTask(KAN([2, 1]), **kw),
    "classification": lambda **kw: ClassificationTask(KAN([2, 3]), num_classes=3, **kw),
    "pinn": lambda **kw: PINNTask(KAN([2, 1]), **kw),
}


def lbfgs_of(task: L.LightningModule) -> torch.optim.LBFGS:
    """The L-BFGS optimizer the task's ``configure_optimizers`` builds."""
    optimizers = task.configure_optimizers()
    optimizers = optimizers[0] if isinstance(optimizers, tuple) else optimizers
    (lbfgs,) = [o for o in optimizers if isinstance(o, torch.optim.LBFGS)]
    return lbfgs


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_the_tolerances_reach_torch_lbfgs_from_every_task(kind):
    default = lbfgs_of(TASKS[kind](lbfgs_epochs=1)).defaults
    assert (default["tolerance_grad"], default["tolerance_change"]) == (1e-7, 1e-9)
    chosen = TASKS[kind](lbfgs_epochs=1, lbfgs_tolerance_grad=2e-30, lbfgs_tolerance_change=3e-31)
    assert (chosen.lbfgs.tolerance_grad, chosen.lbfgs.tolerance_change) == (2e-30, 3e-31)
    defaults = lbfgs_of(chosen).defaults
    assert (defaults["tolerance_grad"], defaults["tolerance_change"]) == (2e-30, 3e-31)
    assert defaults["max_iter"] == 20 and defaults["line_search_fn"] == "strong_wolfe"
    assert chosen.hparams["lbfgs_tolerance_grad"] == 2e-30  # saved with the checkpoint


def test_torch_defaults_are_the_phase_defaults():
    """Nothing changes unless set: the phase's defaults are torch.optim.LBFGS's own."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    torch_defaults = torch.optim.LBFGS([parameter]).defaults
    phase = LBFGSPhase(2)
    assert phase.tolerance_grad == torch_defaults["tolerance_grad"]
    assert phase.tolerance_change == torch_defaults["tolerance_change"]
    assert repr(LBFGSPhase(2, tolerance_grad=1e-32)) == (
        "LBFGSPhase(epochs=2, max_iter=20, history_size=50, tolerance_grad=1e-32, "
        "tolerance_change=1e-09)"
    )


@pytest.mark.parametrize("config", ["feynman_kan_official.yaml", "feynman_metakan_official.yaml"])
def test_the_official_recipe_configs_use_the_authors_tolerances(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--config", str(ROOT / "configs" / config)], run=False)
    phase = cli.model.lbfgs
    assert (phase.tolerance_grad, phase.tolerance_change) == (1e-32, 1e-32)
    assert (phase.max_iter, phase.history_size) == (20, 10)


@pytest.mark.parametrize("name", ["lbfgs_tolerance_grad", "lbfgs_tolerance_change"])
@pytest.mark.parametrize("value", [0, -1e-9, 0.0, math.nan, math.inf, True, "1e-32", None])
def test_bad_tolerances_are_clear_errors(name, value):
    message = (
        rf"{name} must be a finite number > 0, got {value!r}.*an L-BFGS step stops iterating"
        r".*torch's default 1e-0[79], or 1e-32 as the MetaKAN authors' code"
    )
    with pytest.raises(ValueError, match=message):
        RegressionTask(KAN([2, 1]), **{name: value})  # checked without a phase too
    with pytest.raises(ValueError, match=message):
        LBFGSPhase(3, **{name.removeprefix("lbfgs_"): value})


def test_cli_bad_tolerance_exits_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs/feynman_kan_official.yaml")
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["--config", config, "--model.init_args.lbfgs_tolerance_grad=-1"], run=False)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "lbfgs_tolerance_grad must be a finite number > 0, got -1" in error
    assert "Traceback" not in error


def fit_teacher(**tolerances: float) -> tuple[int, float]:
    """Three full-batch L-BFGS steps (20 iterations each at most) of a ``KAN([1, 1])``
    on 64 samples of another ``KAN([1, 1])`` (the same grid: a zero loss is reachable);
    L-BFGS' iteration count and the final training MSE."""
    torch.manual_seed(1)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    with torch.no_grad():
        y = KAN([1, 1])(x)
    torch.manual_seed(0)
    task = RegressionTask(KAN([1, 1]), lbfgs_epochs=3, initial_grid=None, **tolerances)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*every epoch uses L-BFGS")
        warnings.filterwarnings("ignore", message=".*does not have many workers")
        trainer.fit(task, DataLoader(TensorDataset(x, y), batch_size=64))
    _, lbfgs = task.optimizers()
    with torch.no_grad():
        mse = (task(x) - y).square().mean().item()
    return lbfgs.state_dict()["state"][0]["n_iter"], mse


def test_tiny_tolerances_keep_lbfgs_iterating_where_torch_defaults_stop():
    """Near the fit, the loss changes by less than torch's 1e-9 within a step, so its
    default stops each step early; with 1e-32 the steps run on (the loss stalls only
    when it repeats exactly) and reach a lower loss."""
    default_iterations, default_mse = fit_teacher()
    official_iterations, official_mse = fit_teacher(**OFFICIAL)
    assert default_iterations < 40 < official_iterations <= 60  # of 3 x 20 at most
    assert official_mse < 0.75 * default_mse
    assert default_mse < 1e-8  # the regime the tolerances matter in: a small loss
