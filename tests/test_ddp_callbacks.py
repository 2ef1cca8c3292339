"""lightning_kan's callbacks (all but the checkpoint one), epoch metrics and PINN L-BFGS
under 2-process DDP on CPU (gloo).

One script run (``python tests/test_ddp_callbacks.py OUT``), as a user runs a training
script: Lightning's DDP launcher re-executes it once for the second process, and the
three jobs below run one after the other in both processes. Each process saves what it
ended with; the tests compare the processes and check the logged epoch metrics against
the same metrics computed here over the whole split.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_kan.callbacks import ActivationPlot, GridUpdate
from lightning_kan.data import FunctionDataModule, ImageDataModule
from lightning_kan.nets import KAN
from lightning_kan.pde import Elliptic, PDEDataModule, PINNTask
from lightning_kan.tasks import ClassificationTask, RegressionTask
from lightning_kan.utils import close_process_group

NUM_VAL = 201  # odd: a padding DistributedSampler would count one sample twice


def trainer(**kwargs) -> L.Trainer:
    """A quiet 2-process CPU DDP trainer."""
    defaults = {"logger": False, "enable_checkpointing": False}
    return L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        enable_progress_bar=False,
        enable_model_summary=False,
        **{**defaults, **kwargs},
    )


def state_of(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def whole_split_scores(net: torch.nn.Module, data: FunctionDataModule) -> dict[str, float]:
    """MSE, relative L2 and R2 of ``net`` over the whole validation split, by hand."""
    x, y = data.splits["val"].tensors
    with torch.no_grad():
        error = (net(x) - y).double()
    y = y.double()
    return {
        "val/mse": error.square().mean().item(),
        "val/rel_l2": (error.norm() / y.norm()).item(),
        "val/r2": (1 - error.square().sum() / (y - y.mean()).square().sum()).item(),
    }


def fit_with_callbacks(out: Path, rank_file: str) -> int:
    """GridUpdate every epoch and ActivationPlot after epoch 2 and at the end, 2 epochs."""
    L.seed_everything(0)
    net = KAN([2, 3, 1])
    initial_grid = net.layers[0].basis.grid.clone()
    # initial_grid=None: the grid moves only by GridUpdate, which this job checks
    task = RegressionTask(net, optimizer=partial(torch.optim.Adam, lr=1e-2), initial_grid=None)
    data = FunctionDataModule("kan-toy", num_train=256, num_val=NUM_VAL, num_test=64, batch_size=32)
    run = trainer(
        max_epochs=2,
        logger=CSVLogger(out, name="ddp"),
        callbacks=[GridUpdate(every_n_epochs=1), ActivationPlot(every_n_epochs=2)],
    )
    run.fit(task, data)
    logged = {k: v.item() for k, v in run.callback_metrics.items() if k.startswith("val/")}
    result = {
        "state": state_of(net),
        "grid_moved": not torch.equal(net.layers[0].basis.grid, initial_grid),
        "logged": logged,
        "reference": whole_split_scores(net, data),
    }
    torch.save(result, out / rank_file.format(job="fit", rank=run.global_rank))
    return run.global_rank


def validate_classifier(out: Path, rank_file: str) -> None:
    """Validation shards of 73 and 72 digits in batches of 72: 2 batches on one process,
    1 on the other."""
    L.seed_everything(0)
    net = KAN([64, 10])
    data = ImageDataModule("digits", flatten=True, batch_size=18, val_fraction=145 / 1438)
    run = trainer()
    (metrics,) = run.validate(ClassificationTask(net, num_classes=10), data)
    images, labels = data.splits["val"].tensors
    with torch.no_grad():
        accuracy = (net(images).argmax(1) == labels).double().mean().item()
    result = {"logged": metrics["val/accuracy"], "reference": accuracy, "size": len(labels)}
    torch.save(result, out / rank_file.format(job="classify", rank=run.global_rank))


def fit_pinn_with_lbfgs(out: Path, rank_file: str) -> None:
    """One Adam epoch, then two L-BFGS epochs (each process on its own fixed points)."""
    L.seed_everything(0)
    net = KAN([2, 4, 1], basis="chebyshev", basis_kwargs={"degree": 3})
    task = PINNTask(net, lbfgs_epochs=2, lbfgs_max_iter=5)
    data = PDEDataModule(Elliptic(), num_interior=64, num_boundary=16, steps_per_epoch=2)
    run = trainer(max_epochs=3, limit_val_batches=0)
    run.fit(task, data)
    torch.save(state_of(net), out / rank_file.format(job="pinn", rank=run.global_rank))


def run_jobs(out: Path) -> None:
    rank_file = "{job}-rank{rank}.pt"
    fit_with_callbacks(out, rank_file)
    validate_classifier(out, rank_file)
    fit_pinn_with_lbfgs(out, rank_file)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, str]:
    """Run the jobs once on 2 processes; the folder of their results and their stderr."""
    out = tmp_path_factory.mktemp("ddp")
    result = subprocess.run(
        [sys.executable, __file__, str(out)],
        cwd=out,
        env=dict(os.environ, PYTHONWARNINGS="default"),
        capture_output=True,
        text=True,
        timeout=240,  # a collective reached by one process only would hang
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stderr


def load_ranks(out: Path, job: str) -> list[dict]:
    return [torch.load(out / f"{job}-rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def assert_same_state(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_callbacks_and_epoch_metrics_under_two_process_ddp(ddp_run):
    out, stderr = ddp_run
    # every epoch metric is synchronised across processes: Lightning has nothing to warn
    assert "sync_dist=True" not in stderr, stderr[-4000:]
    ranks = load_ranks(out, "fit")
    # GridUpdate moved the grids, identically on both processes, and so are the weights
    assert ranks[0]["grid_moved"] and ranks[1]["grid_moved"]
    assert_same_state(ranks[0]["state"], ranks[1]["state"])
    # the logged val metrics are those of the whole split (each sample counted once)
    for rank in ranks:
        assert set(rank["logged"]) >= {"val/loss", "val/mse", "val/rel_l2", "val/r2"}
        reference = rank["reference"]
        for key in ("val/mse", "val/rel_l2", "val/r2"):
            assert abs(rank["logged"][key] - reference[key]) <= 1e-6 * abs(reference[key]), key
        # val/loss (the MSE, averaged over processes by Lightning) is the whole-split MSE
        loss_error = abs(rank["logged"]["val/loss"] - reference["val/mse"])
        assert loss_error <= 1e-6 * reference["val/mse"]
    # ActivationPlot: rank 0 wrote the periodic and the final plots, atomically
    assert sorted(p.name for p in (out / "ddp/version_0/activations").iterdir()) == [
        "epoch=1-step=8-layer=0.png",
        "epoch=1-step=8-layer=1.png",
        "final-step=8-layer=0.png",
        "final-step=8-layer=1.png",
    ]


@pytest.mark.slow
def test_uneven_validation_shards_neither_hang_nor_bias_the_metric(ddp_run):
    out, _ = ddp_run
    for saved in load_ranks(out, "classify"):
        assert saved["size"] == 145
        assert abs(saved["logged"] - saved["reference"]) < 1e-6


@pytest.mark.slow
def test_pinn_lbfgs_phase_keeps_the_processes_identical(ddp_run):
    out, _ = ddp_run
    first, second = load_ranks(out, "pinn")
    assert_same_state(first, second)


if __name__ == "__main__":
    run_jobs(Path(sys.argv[1]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
