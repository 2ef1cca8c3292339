"""Tasks together: the L-BFGS phase (``LBFGSPhase``) in RegressionTask, its checkpoints
and configuration, and ``PINNTask`` at its new home with the old import paths."""

from __future__ import annotations

import copy
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import LambdaCallback, ModelCheckpoint

from lightning_kan.cli import build_cli, main
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN
from lightning_kan.tasks import LBFGSPhase, RegressionTask

ROOT = Path(__file__).resolve().parents[1]


def fit_regression(
    tmp_path: Path,
    max_epochs: int,
    lbfgs_epochs: int,
    num_train: int = 128,
    batch_size: int = 128,
    callbacks=(),
    **fit_kwargs,
) -> tuple[RegressionTask, FunctionDataModule, L.Trainer]:
    """A [2, 5, 1] KAN on the quickstart function; Adam (lr halved every 4 epochs), the
    last ``lbfgs_epochs`` epochs L-BFGS."""
    L.seed_everything(0, verbose=False)
    data = FunctionDataModule(
        "kan-toy", num_train=num_train, num_val=32, num_test=32, batch_size=batch_size
    )
    task = RegressionTask(
        KAN([2, 5, 1]),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        lr_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=4, gamma=0.5),
        lbfgs_epochs=lbfgs_epochs,
        lbfgs_max_iter=10,
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
        callbacks=list(callbacks),
    )
    trainer.fit(task, data, **fit_kwargs)
    return task, data, trainer


def train_mse(task: RegressionTask, data: FunctionDataModule) -> float:
    x, y = data.splits["train"].tensors
    with torch.no_grad():
        return (task(x) - y.reshape(len(y), -1)).square().mean().item()


def test_regression_lbfgs_phase_fits_far_below_adam_alone(tmp_path):
    adam, data, _ = fit_regression(tmp_path, max_epochs=20, lbfgs_epochs=0)
    refined, _, trainer = fit_regression(tmp_path, max_epochs=20, lbfgs_epochs=3)
    first, lbfgs = refined.optimizers()
    assert lbfgs.state_dict()["state"][0]["n_iter"] > 10  # L-BFGS ran in epochs 17-19
    assert first.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**4)  # 17 Adam epochs
    # 20 full-batch Adam steps leave MSE ~1 on exp(sin(pi x) + y^2); 17 + 3 L-BFGS: < 1e-2
    assert train_mse(refined, data) < 0.01 * train_mse(adam, data)
    assert {"train/loss", "train/mse"} <= set(trainer.callback_metrics)


def test_regression_resume_in_the_lbfgs_phase_repeats_the_run_exactly(tmp_path):
    every_epoch = ModelCheckpoint(tmp_path / "checkpoints", save_top_k=-1, every_n_epochs=1)
    # two batches per epoch: the phase keeps the first of epoch 3, the checkpoint keeps it
    with pytest.warns(UserWarning, match="L-BFGS fits one fixed batch.* out of 2 per epoch"):
        whole, _, _ = fit_regression(
            tmp_path / "a", 6, lbfgs_epochs=3, batch_size=64, callbacks=[every_epoch]
        )
    (checkpoint,) = (tmp_path / "checkpoints").glob("epoch=3-*.ckpt")  # first L-BFGS epoch
    saved = torch.load(checkpoint, weights_only=True)
    assert len(saved["optimizer_states"]) == 2 and "lbfgs_batch" in saved
    resumed, _, _ = fit_regression(
        tmp_path / "b", 6, lbfgs_epochs=3, batch_size=64, ckpt_path=str(checkpoint)
    )
    for name, value in whole.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(resumed.lbfgs.batch, whole.lbfgs.batch, rtol=0, atol=0)


def test_an_lbfgs_step_records_its_starting_point_once(tmp_path):
    """train/mse of an L-BFGS epoch (one step) is the fixed batch's MSE before the step,
    not a mean over the line search's evaluations."""
    start = {}
    snapshot = LambdaCallback(
        on_train_epoch_start=lambda trainer, task: start.setdefault("net", copy.deepcopy(task.net))
    )
    with pytest.warns(UserWarning, match="every epoch uses L-BFGS"):
        task, _, trainer = fit_regression(tmp_path, 1, lbfgs_epochs=1, callbacks=[snapshot])
    x, y = task.lbfgs.batch
    with torch.no_grad():
        before = (start["net"](x) - y.reshape(len(y), -1)).square().mean().item()
    assert trainer.callback_metrics["train/mse"].item() == pytest.approx(before, rel=1e-5)
    assert train_mse(task, trainer.datamodule) < 0.5 * before  # the step itself moved on


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lbfgs_epochs": -1}, "lbfgs_epochs must be an integer >= 0, got -1"),
        ({"lbfgs_epochs": True}, "lbfgs_epochs must be an integer >= 0, got True"),
        ({"lbfgs_epochs": 2, "lbfgs_max_iter": 0}, "lbfgs_max_iter must be an integer >= 1"),
        ({"lbfgs_history_size": 2.5}, r"lbfgs_history_size must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_lbfgs_arguments_are_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        RegressionTask(KAN([2, 1]), **arguments)
    with pytest.raises(ValueError, match="lbfgs_epochs must be an integer >= 1, got 0"):
        LBFGSPhase(epochs=0)


def test_no_lbfgs_phase_keeps_automatic_optimisation():
    task = RegressionTask(KAN([2, 1]))
    assert task.lbfgs is None and task.automatic_optimization
    phase = LBFGSPhase(3, history_size=10)
    assert repr(phase) == (
        "LBFGSPhase(epochs=3, max_iter=20, history_size=10, tolerance_grad=1e-07, "
        "tolerance_change=1e-09)"
    )


def test_cli_builds_and_fits_a_regression_lbfgs_phase(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quickstart = ["--config", str(ROOT / "configs/quickstart.yaml")]
    cli = build_cli(
        [*quickstart, "--model.init_args.lbfgs_epochs=2", "--model.init_args.lbfgs_history_size=7"],
        run=False,  # no subcommand then
    )
    phase = cli.model.lbfgs
    assert (phase.epochs, phase.max_iter, phase.history_size) == (2, 20, 7)
    assert not cli.model.automatic_optimization
    main(
        [
            "fit",
            *quickstart,
            "--trainer.max_epochs=2",
            "--trainer.callbacks=[]",
            "--model.init_args.lbfgs_epochs=1",
            "--model.init_args.lbfgs_max_iter=3",
            "--data.init_args.num_train=200",
            "--data.init_args.batch_size=200",
        ]
    )
    run = tmp_path / "runs/quickstart/version_0"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["init_args"]["lbfgs_epochs"] == 1
    (checkpoint,) = (run / "checkpoints").glob("*.ckpt")
    saved = torch.load(checkpoint, weights_only=True)
    assert len(saved["optimizer_states"]) == 2 and saved["lbfgs_batch"][0].shape == (200, 2)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("lbfgs_epochs=-1", "lbfgs_epochs must be an integer >= 0, got -1"),
        ("lbfgs_max_iter=many", "lbfgs_max_iter"),
    ],
)
def test_cli_bad_lbfgs_values_exit_with_a_message(
    override, expected, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    quickstart = str(ROOT / "configs/quickstart.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", quickstart, f"--model.init_args.{override}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


def test_pinn_task_lives_with_the_tasks_and_keeps_its_old_paths():
    """Importing the tasks first (tasks.pinn imports pde.problems) is not circular, and
    every old name is the same class (this process imported the pde package first)."""
    import lightning_kan.pde
    import lightning_kan.pde.task
    import lightning_kan.tasks

    pinn = lightning_kan.tasks.PINNTask
    assert pinn is lightning_kan.pde.PINNTask is lightning_kan.pde.task.PINNTask
    assert issubclass(pinn, lightning_kan.tasks.KANTask)
    code = (
        "import lightning_kan.tasks as tasks\n"
        "from lightning_kan.pde import PINNTask\n"
        "assert tasks.PINNTask is PINNTask\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
