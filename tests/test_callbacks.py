"""GridUpdate and ActivationPlot inside real Lightning fits."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_kan.callbacks import ActivationPlot, GridUpdate
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN, MLP, MetaKAN, SlimKAN
from lightning_kan.plotting import plot_edge_functions
from lightning_kan.tasks import RegressionTask


def fit(tmp_path, net, callbacks, logger=None, epochs=3, initial_grid="cover"):
    task = RegressionTask(
        net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), initial_grid=initial_grid
    )
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
    # initial_grid=None: the fit start leaves the grids alone, so only GridUpdate moves them
    fit(tmp_path, net, [GridUpdate(every_n_epochs=2)], epochs=3, initial_grid=None)
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


def test_activation_plot_without_matplotlib_warns_once_and_fit_completes(tmp_path, no_matplotlib):
    logger = CSVLogger(tmp_path, name="plots")
    with pytest.warns(UserWarning) as record:
        fit(tmp_path, KAN([2, 3, 1]), [ActivationPlot(every_n_epochs=1)], logger=logger)
    about_plots = [w for w in record if "matplotlib" in str(w.message)]
    assert len(about_plots) == 1, [str(w.message) for w in about_plots]
    message = str(about_plots[0].message)
    assert "ActivationPlot" in message and "pip install matplotlib" in message
    assert not (tmp_path / "plots/version_0/activations").exists()


def test_plot_edge_functions_without_matplotlib_names_the_fix(no_matplotlib):
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_edge_functions(KAN([2, 3, 1]), torch.rand(8, 2))


def test_activation_plot_writes_atomically(tmp_path, monkeypatch):
    """A write that fails midway leaves no truncated PNG and no temporary file behind."""
    matplotlib_figure = pytest.importorskip("matplotlib.figure")

    def failing_savefig(self, target, **kwargs):
        data = b"\x89PNG truncated"
        if hasattr(target, "write"):
            target.write(data)
        else:
            with open(target, "wb") as handle:
                handle.write(data)
        raise OSError("no space left on device")

    monkeypatch.setattr(matplotlib_figure.Figure, "savefig", failing_savefig)
    logger = CSVLogger(tmp_path, name="plots")
    with pytest.raises(OSError, match="no space left"):
        fit(tmp_path, KAN([2, 3, 1]), [ActivationPlot(every_n_epochs=5)], logger=logger, epochs=1)
    folder = tmp_path / "plots/version_0/activations"
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs must be an integer >= 1, got 0"),
        ({"max_edges": 0}, "max_edges must be an integer >= 1, got 0"),
        ({"num_samples": 1}, "num_samples must be an integer >= 2, got 1"),
    ],
)
def test_activation_plot_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ActivationPlot(**kwargs)


def test_activation_plot_rejects_networks_without_edge_functions_before_training(tmp_path):
    net = MLP([4], in_features=2, out_features=1)
    initial = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(TypeError, match="needs a KAN or KANLinear"):
        fit(tmp_path, net, [ActivationPlot()], epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), initial, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs must be a positive integer, got 0"),
        ({"num_samples": 1}, "num_samples must be an integer >= 2, got 1"),
        ({"until_epoch": -1}, "until_epoch must be None .* got -1"),
        ({"grid_eps": 0.0}, r"grid_eps must be in \(0, 1\], got 0.0"),
        ({"margin": -0.5}, "margin must be >= 0, got -0.5"),
    ],
)
def test_grid_update_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GridUpdate(**kwargs)


def test_grid_update_reads_pde_collocation_batches(tmp_path):
    """PDE batches are dicts: the knots move to the interior collocation points."""
    from lightning_kan.pde import Elliptic, PDEDataModule, PINNTask

    data = PDEDataModule(Elliptic(), num_interior=64, num_boundary=16, steps_per_epoch=2)
    data.setup("fit")
    net = KAN([2, 3, 1])
    initial = net.layers[0].basis.grid.clone()
    # initial_grid=None: the fit start leaves the grids alone, so only GridUpdate moves them
    task = PINNTask(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), initial_grid=None)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        callbacks=[GridUpdate(every_n_epochs=1, num_samples=64)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, data)
    assert not torch.equal(net.layers[0].basis.grid, initial)


@pytest.mark.parametrize("callback", [GridUpdate, ActivationPlot], ids=lambda c: c.__name__)
def test_callbacks_without_a_datamodule_fail_before_training(tmp_path, callback):
    data = FunctionDataModule("kan-toy", num_train=64, num_val=16, num_test=16, batch_size=16)
    data.setup()
    net = KAN([2, 3, 1])
    initial = [p.detach().clone() for p in net.parameters()]
    task = RegressionTask(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        callbacks=[callback(every_n_epochs=1)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ValueError, match=r"pass a LightningDataModule: trainer.fit\(model, data"):
        trainer.fit(task, train_dataloaders=data.train_dataloader())
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), initial, strict=True))


@pytest.mark.parametrize(
    ("make", "gap"),
    [
        (lambda: KAN([2, 3, 1], basis="chebyshev"), "uses ChebyshevBasis, which has no grid"),
        (lambda: SlimKAN([2, 3, 1]), "computes its coefficients from other parameters"),
        (lambda: MetaKAN([2, 3, 1]), "computes its coefficients from other parameters"),
    ],
    ids=["chebyshev", "slim", "meta"],
)
def test_grid_update_refuses_nets_without_movable_grids_in_setup(tmp_path, make, gap):
    """Fails before the first training step (it used to fail at epoch every_n_epochs)."""
    net = make()
    initial = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match="GridUpdate needs the module's network") as error:
        fit(tmp_path, net, [GridUpdate(every_n_epochs=1)], epochs=2)
    message = str(error.value)
    assert f"in `RegressionTask.net` ({type(net).__name__})" in message and gap in message
    assert "remove GridUpdate from the trainer's callbacks" in message
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), initial, strict=True))


class _NoNet(L.LightningModule):
    """A module that keeps its layers under another name."""

    def __init__(self) -> None:
        super().__init__()
        self.model = KAN([2, 3, 1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("callback", [GridUpdate, ActivationPlot], ids=lambda c: c.__name__)
def test_callbacks_need_a_net_attribute(tmp_path, callback):
    data = FunctionDataModule("kan-toy", num_train=64, num_val=16, num_test=16, batch_size=16)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[callback()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(
        ValueError, match=f"{callback.__name__} needs the module's network as"
    ) as error:
        trainer.fit(_NoNet(), data)
    assert "(HasNet); in the LightningModule (_NoNet) `net` is missing" in str(error.value)
