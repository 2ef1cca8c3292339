"""RunSummary at the end of a fit; ModelCheckpoint's metrics of the best checkpoint; the
edge plots' least size and one image per step for loggers with a step axis."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from test_lightning import ROOT, run_console

from lightning_kan.callbacks import ActivationPlot, ModelCheckpoint, RunSummary
from lightning_kan.callbacks.summary import describe_run
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN
from lightning_kan.plotting import MIN_FIGURE_HEIGHT, plot_edge_functions
from lightning_kan.tasks import RegressionTask


def fit(tmp_path, callbacks, logger, epochs=3) -> L.Trainer:
    torch.manual_seed(0)
    task = RegressionTask(KAN([2, 3, 1]), optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    data = FunctionDataModule("kan-toy", num_train=256, num_val=64, num_test=64, batch_size=64)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(task, data)
    return trainer


def val_rows(metrics_csv) -> list[dict[str, float]]:
    with open(metrics_csv) as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/loss")]
    return [{k: float(v) for k, v in row.items() if k.startswith("val/") and v} for row in rows]


def test_best_checkpoint_keeps_the_metrics_of_its_epoch(tmp_path):
    checkpoint = ModelCheckpoint(monitor="val/loss", save_last=True)
    trainer = fit(tmp_path, [checkpoint], CSVLogger(tmp_path, name="run"), epochs=4)
    rows = val_rows(tmp_path / "run/version_0/metrics.csv")
    assert len(rows) == 4  # one validation per epoch
    epoch = min(range(4), key=lambda e: rows[e]["val/loss"])
    best = rows[epoch]
    assert f"epoch={epoch}-" in checkpoint.best_model_path
    assert math.isclose(float(checkpoint.best_model_score), best["val/loss"], rel_tol=1e-6)
    recorded = {k: v for k, v in checkpoint.best_model_metrics.items() if k.startswith("val/")}
    assert recorded.keys() == best.keys() == {"val/loss", "val/mse", "val/rel_l2", "val/r2"}
    for key, value in best.items():
        assert math.isclose(recorded[key], value, rel_tol=1e-6), key
    assert trainer.global_step == 16


def test_summary_lines_name_the_files_of_the_run(tmp_path):
    checkpoint = ModelCheckpoint(monitor="val/loss", save_last=True)
    plots = ActivationPlot(every_n_epochs=2)
    trainer = fit(tmp_path, [RunSummary(), checkpoint, plots], CSVLogger(tmp_path, name="run"))
    run = tmp_path / "run/version_0"
    lines = describe_run(trainer, trainer.log_dir)
    metrics = checkpoint.best_model_metrics
    scores = ", ".join(
        f"{k}={metrics[k]:.4g}" for k in ("val/loss", "val/mse", "val/r2", "val/rel_l2")
    )
    assert lines == [
        "fit ended after 3 epochs (12 steps)",
        f"best checkpoint: {checkpoint.best_model_path} ({scores})",
        f"last checkpoint: {run / 'checkpoints/last.ckpt'}",
        f"metrics: {run / 'metrics.csv'}",
        f"plots: {run / 'activations'}",
    ]
    assert (run / "checkpoints/last.ckpt").is_file() and (run / "metrics.csv").is_file()


def test_summary_without_a_monitor_or_plots(tmp_path):
    checkpoint = ModelCheckpoint()  # Lightning's default: the newest epoch, no monitor
    trainer = fit(tmp_path, [checkpoint], CSVLogger(tmp_path, name="run"), epochs=1)
    run = tmp_path / "run/version_0"
    assert describe_run(trainer, trainer.log_dir) == [
        "fit ended after 1 epochs (4 steps)",
        f"checkpoint: {run / 'checkpoints/epoch=0-step=4.ckpt'}",
        f"metrics: {run / 'metrics.csv'}",
    ]


@pytest.mark.slow
def test_the_cli_prints_the_summary_after_fit(tmp_path):
    """The shipped quick start config prints it (RunSummary is first in its callbacks)."""
    result = run_console(
        "fit",
        "--config",
        str(ROOT / "configs/quickstart.yaml"),
        "--trainer.max_epochs=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stderr[result.stderr.index("lightning_kan: fit ended") :].splitlines()
    run = "runs/quickstart/version_0"
    assert summary[0] == "lightning_kan: fit ended after 2 epochs (20 steps)"
    assert summary[1].startswith(f"  best checkpoint: {run}/checkpoints/epoch=1-step=20.ckpt (")
    assert "val/loss=" in summary[1] and "val/rel_l2=" in summary[1]
    assert summary[2:5] == [
        f"  last checkpoint: {run}/checkpoints/last.ckpt",
        f"  metrics: {run}/metrics.csv",
        f"  plots: {run}/activations",
    ]
    assert sorted(p.name for p in (tmp_path / run / "activations").iterdir()) == [
        "final-step=20-layer=0.png",
        "final-step=20-layer=1.png",
    ]


def test_an_output_layer_strip_is_at_least_240_px_tall():
    pytest.importorskip("matplotlib")
    net = KAN([2, 5, 1])
    first, last = plot_edge_functions(net, torch.rand(64, 2) * 2 - 1)
    assert MIN_FIGURE_HEIGHT == 2.4
    assert last.get_size_inches() * 100 == pytest.approx([850, 240])  # PNG pixels at 100 dpi
    assert first.get_size_inches() * 100 == pytest.approx([340, 715])  # 5 rows: unchanged


def test_tensorboard_gets_one_image_per_step(tmp_path):
    """A fit of a multiple of every_n_epochs epochs: the last epoch's plot and the
    end-of-fit one would share a step; only the first is logged."""
    pytest.importorskip("matplotlib")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = fit(tmp_path, [ActivationPlot(every_n_epochs=2)], logger, 4)
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tb/version_0"), {"images": 0})
    accumulator.Reload()
    for tag in ("activations/layer_0", "activations/layer_1"):
        assert [event.step for event in accumulator.Images(tag)] == [8, 16], tag
    run = tmp_path / "tb/version_0"
    assert describe_run(trainer, trainer.log_dir)[1:] == [
        f"checkpoint: {run / 'checkpoints/epoch=3-step=16.ckpt'}",  # Lightning's default one
        f"metrics and plots: TensorBoard events in {run} (tensorboard --logdir {tmp_path})",
    ]


def test_tensorboard_gets_the_final_plot_at_its_own_step(tmp_path):
    pytest.importorskip("matplotlib")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    fit(tmp_path, [ActivationPlot(every_n_epochs=2)], TensorBoardLogger(tmp_path, name="tb"), 3)
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tb/version_0"), {"images": 0})
    accumulator.Reload()
    assert [event.step for event in accumulator.Images("activations/layer_0")] == [8, 12]


def test_the_main_validation_metric_is_on_the_progress_bar(tmp_path):
    """PINNTask shows val/rel_l2 (ClassificationTask: val/accuracy) beside the losses."""
    from lightning_kan.pde import Elliptic, PDEDataModule, PINNTask
    from lightning_kan.tasks import ClassificationTask

    data = PDEDataModule(Elliptic(), num_interior=32, num_boundary=16, steps_per_epoch=2)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(PINNTask(KAN([2, 3, 1], basis="chebyshev")), data)
    assert "val/rel_l2" in trainer.progress_bar_metrics
    assert "val/rel_l2" in trainer.callback_metrics  # still logged as a metric
    assert ClassificationTask.progress_bar_metric == "accuracy"
