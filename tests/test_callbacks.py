"""GridUpdate and ActivationPlot inside real Lightning fits."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_kan.callbacks import ActivationPlot, GridUpdate
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN, MLP
from lightning_kan.plotting import plot_edge_functions
from lightning_kan.tasks import RegressionTask


def fit(tmp_path, net, callbacks, logger=None, epochs=3):
    task = RegressionTask(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    data = FunctionDataModule("kan-toy", num_train=256, num_val=64, num_test=64, batch_size=64)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=logger or False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, data)
    return trainer


def test_grid_update_moves_the_knots_on_schedule(tmp_path):
    net = KAN([2, 3, 1])
    initial = net.layers[0].basis.grid.clone()
    fit(tmp_path, net, [GridUpdate(every_n_epochs=2)], epochs=3)
    assert not torch.equal(net.layers[0].basis.grid, initial)
    assert not net.layers[0].basis.is_uniform


def test_grid_update_rejects_networks_without_grids(tmp_path):
    with pytest.raises(ValueError, match="needs the module's network"):
        fit(tmp_path, MLP([4], in_features=2, out_features=1), [GridUpdate()], epochs=1)


def test_activation_plot_writes_pngs_for_csv_logs(tmp_path):
    pytest.importorskip("matplotlib")
    logger = CSVLogger(tmp_path, name="plots")
    fit(tmp_path, KAN([2, 3, 1]), [ActivationPlot(every_n_epochs=2)], logger=logger)
    pngs = sorted((tmp_path / "plots/version_0/activations").glob("*.png"))
    # after epoch index 1 (every 2nd epoch) and at the end of fit, two layers each
    assert [p.name for p in pngs] == [
        "epoch=1-step=8-layer=0.png",
        "epoch=1-step=8-layer=1.png",
        "final-step=12-layer=0.png",
        "final-step=12-layer=1.png",
    ]


def test_activation_plot_logs_tensorboard_figures(tmp_path):
    pytest.importorskip("matplotlib")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    logger = TensorBoardLogger(tmp_path, name="tb")
    fit(tmp_path, KAN([2, 3, 1]), [ActivationPlot(every_n_epochs=5)], logger=logger, epochs=1)
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tb/version_0"))
    accumulator.Reload()
    assert {"activations/layer_0", "activations/layer_1"} <= set(accumulator.Tags()["images"])


def test_plot_edge_functions_draws_every_shown_edge():
    pytest.importorskip("matplotlib")
    figures = plot_edge_functions(KAN([3, 10, 1]), torch.rand(64, 3), max_edges=4)
    assert len(figures) == 2
    assert len(figures[0].axes) == 4 * 3 and len(figures[1].axes) == 1 * 4


def test_existing_lightning_project_example_runs(tmp_path, monkeypatch):
    """examples/existing_lightning_project.py: lightning_kan inside a plain Lightning project."""
    import runpy
    from pathlib import Path

    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parents[1] / "examples/existing_lightning_project.py"
    namespace = runpy.run_path(str(example))
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="ex"),
        callbacks=[GridUpdate(every_n_epochs=1), ActivationPlot(every_n_epochs=1)],
        enable_progress_bar=False,
    )
    trainer.fit(namespace["DigitsModel"](), namespace["DigitsData"]())
    assert trainer.callback_metrics["val/accuracy"] > 0.5
    assert list((tmp_path / "ex/version_0/activations").glob("*.png"))
