"""Every task fits the B-spline grids to the first training inputs when a fit starts
(``initial_grid="cover"``, the default: every layer of dense, Slim and Meta KANs, uniform
knots, hidden grids never narrower than built; ``"inputs"``: the first layer at its input
quantiles; ``"all"``: every layer at its input quantiles, pykan's), the same on 2 DDP
processes, never again on resume, and not at all with ``initial_grid=None``.

The DDP job runs as a script (``python tests/test_initial_grid.py OUT``), as in
tests/test_ddp_callbacks.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_kan.callbacks.grid_update import (
    HIDDEN_MARGIN,
    INITIAL_GRID_SAMPLES,
    INITIAL_GRIDS,
    fit_grids,
)
from lightning_kan.data import FunctionDataModule
from lightning_kan.layers import KANLinear
from lightning_kan.layers.masks import set_edge_mask
from lightning_kan.nets import KAN, MetaKAN, SlimKAN
from lightning_kan.pde import Elliptic, PDEDataModule
from lightning_kan.tasks import ClassificationTask, PINNTask, RegressionTask
from lightning_kan.utils import close_process_group

#: SGD at rate 0 leaves every weight exactly as the fit start made it (grids are buffers)
FROZEN = partial(torch.optim.SGD, lr=0.0)


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = {
        "max_epochs": 1,
        "limit_train_batches": 1,
        "limit_val_batches": 0,
        "logger": False,
        "enable_checkpointing": False,
        **kwargs,
    }
    return L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def raw_feynman(**kwargs) -> FunctionDataModule:
    """I.6.20a without normalisation: theta on [1, 3], outside the built [-1, 1] grid."""
    return FunctionDataModule(
        "I.6.20a", normalize_inputs=False, num_train=1500, batch_size=100, **kwargs
    )


def first_inputs(data: L.LightningDataModule) -> torch.Tensor:
    """The first INITIAL_GRID_SAMPLES training inputs, read as the fit start reads them."""
    data.setup("fit")
    batches = []
    with torch.random.fork_rng(devices=[]):
        for batch in data.train_dataloader():
            batches.append(batch["interior"] if isinstance(batch, dict) else batch[0])
            if sum(len(b) for b in batches) >= INITIAL_GRID_SAMPLES:
                break
    return torch.cat(batches)[:INITIAL_GRID_SAMPLES]


def assert_grids_span_layer_inputs(net: KAN, x: torch.Tensor) -> None:
    """Every layer's grid spans exactly [min, max] of what that layer sees on ``x``
    (pykan's rule: the blended uniform and quantile knots share their end points)."""
    with torch.no_grad():
        for layer, layer_input in net._layer_inputs(x):
            low, high = layer.basis.grid_bounds
            torch.testing.assert_close(low, layer_input.min(0).values, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(high, layer_input.max(0).values, rtol=1e-6, atol=1e-6)
            assert not layer.basis.is_uniform


NETS = {
    "dense": lambda: KAN([1, 3, 2, 1]),
    "slim": lambda: SlimKAN([1, 3, 2, 1], ranks=2),
    "meta": lambda: MetaKAN([1, 3, 2, 1], hidden_dim=8),
}


@pytest.mark.parametrize("kind", sorted(NETS))
def test_fit_start_fits_every_layer_grid_to_the_data(kind, tmp_path):
    torch.manual_seed(0)
    net = NETS[kind]()
    data = raw_feynman()
    x = first_inputs(data)
    assert float(x.min()) > 1.0 - 1e-3 and float(x.max()) < 3.0 + 1e-3  # theta on [1, 3]
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN, initial_grid="all"), data)
    assert_grids_span_layer_inputs(net, x)


def assert_grids_cover_layer_inputs(net: KAN, x: torch.Tensor, built: list) -> None:
    """``"cover"``'s rule, exactly: uniform knots; the first layer's grid spans its inputs'
    [min, max]; a hidden layer's spans [min - m s, max + m s] (s = max - min, m the margin)
    united with its built range ``built[l] = (low, high)``."""
    with torch.no_grad():
        for index, (layer, layer_input) in enumerate(net._layer_inputs(x)):
            low, high = layer_input.min(0).values, layer_input.max(0).values
            if index > 0:
                margin = HIDDEN_MARGIN * (high - low)
                low = torch.minimum(low - margin, built[index][0])
                high = torch.maximum(high + margin, built[index][1])
            fitted_low, fitted_high = layer.basis.grid_bounds
            torch.testing.assert_close(fitted_low, low, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fitted_high, high, rtol=1e-5, atol=1e-5)
            assert layer.basis.is_uniform
            spacing = layer.basis.grid.double().diff(dim=-1)  # the flag tells the truth
            torch.testing.assert_close(
                spacing, spacing[:, :1].expand_as(spacing), rtol=1e-5, atol=1e-6
            )


def built_bounds(net: KAN) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [tuple(b.clone() for b in layer.basis.grid_bounds) for layer in net.layers]


@pytest.mark.parametrize("kind", sorted(NETS))
def test_by_default_every_layer_grid_covers_what_it_sees(kind, tmp_path):
    """Raw theta on [1, 3] (outside the built [-1, 1]) and hidden activations both inside
    and outside the built range (scaled base weights widen them in some features)."""
    torch.manual_seed(0)
    net = NETS[kind]()
    with torch.no_grad():
        net.layers[0].base_weight.mul_(torch.tensor([[0.1], [3.0], [1.0]]))
    built = built_bounds(net)
    data = raw_feynman()
    x = first_inputs(data)
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN), data)
    assert_grids_cover_layer_inputs(net, x, built)
    grown = [bool((layer.basis.grid_bounds[1] > 1.0 + 1e-6).any()) for layer in net.layers[1:]]
    kept = [bool((layer.basis.grid_bounds[1] == 1.0).any()) for layer in net.layers[1:]]
    assert any(grown) and any(kept)  # both sides of the union are exercised
    for layer, (low, high) in zip(net.layers[1:], built[1:], strict=True):
        fitted_low, fitted_high = layer.basis.grid_bounds
        assert bool((fitted_low <= low).all() and (fitted_high >= high).all())  # never narrower


def test_cover_on_a_pinn_follows_the_interior_collocation_points(tmp_path):
    torch.manual_seed(0)
    net = KAN([2, 4, 1])
    built = built_bounds(net)
    data = PDEDataModule(Elliptic(), num_interior=300, num_boundary=40, steps_per_epoch=5)
    x = first_inputs(data)
    trainer(tmp_path).fit(PINNTask(net, optimizer=FROZEN), data)
    assert_grids_cover_layer_inputs(net, x, built)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_inputs_fits_only_the_layer_that_reads_the_data(kind, tmp_path):
    torch.manual_seed(0)
    net = NETS[kind]()
    data = raw_feynman()
    x = first_inputs(data)
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN, initial_grid="inputs"), data)
    low, high = net.layers[0].basis.grid_bounds
    torch.testing.assert_close(low, x.min(0).values, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(high, x.max(0).values, rtol=1e-6, atol=1e-6)
    assert not net.layers[0].basis.is_uniform  # quantile knots
    assert all(layer.basis.is_uniform for layer in net.layers[1:])


@pytest.mark.parametrize("kind", sorted(NETS))
def test_fitting_twice_with_cover_changes_nothing(kind):
    torch.manual_seed(0)
    net = NETS[kind]()
    x = torch.rand(256, 1) * 4 - 1
    fit_grids(net, x)
    fitted = {key: value.clone() for key, value in net.state_dict().items()}
    fit_grids(net, x)
    for key, value in net.state_dict().items():
        assert torch.equal(value, fitted[key]), key


@pytest.mark.parametrize("rule", ["cover", "inputs"])
def test_dense_refit_keeps_the_network_function_on_the_samples(rule, tmp_path):
    """Dense layers refit their coefficients: inside [-1, 1] (where the built grid already
    covers the data) the network computes nearly the same function after the fit."""
    torch.manual_seed(0)
    net = KAN([2, 3, 1])
    data = FunctionDataModule("kan-toy", num_train=512, batch_size=64)
    x = first_inputs(data)
    built = net.layers[0].basis.grid.clone()
    with torch.no_grad():
        before = net(x)
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN, initial_grid=rule), data)
    with torch.no_grad():
        after = net(x)
    assert not torch.equal(net.layers[0].basis.grid, built)
    assert net.layers[0].basis.is_uniform is (rule == "cover")
    assert float((after - before).abs().max()) < 0.05 * float(before.abs().max())


def test_set_grid_range_is_the_least_squares_optimum():
    """The refit onto the new uniform knots is the least-squares best fit of the old edge
    functions on the samples plus points spread over the new range (numpy lstsq on the
    new basis matrix, computed independently); the old functions beyond the old grid are
    their constant extension."""
    torch.manual_seed(0)
    layer = KANLinear(2, 3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn_like(layer.weight))
    samples = torch.rand(300, 2, dtype=torch.float64) * 1.6 - 0.8
    low = torch.tensor([-2.0, -0.9], dtype=torch.float64)
    high = torch.tensor([1.5, 0.9], dtype=torch.float64)
    probes = low + torch.linspace(0, 1, 16 * 5 + 1, dtype=torch.float64).unsqueeze(-1) * (
        high - low
    )
    points = torch.cat([samples, probes])
    old_edges = torch.einsum("nik,oik->noi", layer.basis(points), layer.weight).detach()
    layer.set_grid_range(low, high, samples)
    assert layer.basis.is_uniform
    torch.testing.assert_close(layer.basis.grid_bounds[0], low)
    torch.testing.assert_close(layer.basis.grid_bounds[1], high)
    new_values = layer.basis(points).detach().numpy()  # (N, I, K)
    for i in range(2):
        best, *_ = np.linalg.lstsq(new_values[:, i], old_edges[:, :, i].numpy(), rcond=None)
        np.testing.assert_allclose(layer.weight[:, i].detach().numpy(), best.T, atol=1e-6)


@pytest.mark.parametrize(
    "low, high",
    [(1.0, -1.0), (0.0, 0.0), (float("nan"), 1.0), (torch.zeros(3), torch.ones(3))],
    ids=["reversed", "empty", "nan", "wrong-size"],
)
def test_set_grid_range_refuses_bad_bounds(low, high):
    layer = KANLinear(2, 1)
    with pytest.raises(ValueError, match=r"set_grid_range needs finite bounds with low < high"):
        layer.set_grid_range(torch.as_tensor(low), torch.as_tensor(high), torch.rand(8, 2))


def test_the_off_switch_keeps_everything(tmp_path):
    torch.manual_seed(0)
    net = KAN([1, 3, 1])
    built = {key: value.clone() for key, value in net.state_dict().items()}
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN, initial_grid=None), raw_feynman())
    for key, value in net.state_dict().items():
        assert torch.equal(value, built[key]), key
    assert all(layer.basis.is_uniform for layer in net.layers)


def test_pinn_grids_follow_the_interior_collocation_points(tmp_path):
    torch.manual_seed(0)
    net = KAN([2, 4, 1])
    data = PDEDataModule(Elliptic(), num_interior=300, num_boundary=40, steps_per_epoch=5)
    x = first_inputs(data)
    assert len(x) == INITIAL_GRID_SAMPLES  # interior points of 4 batches (of 5)
    trainer(tmp_path).fit(PINNTask(net, optimizer=FROZEN, initial_grid="all"), data)
    assert_grids_span_layer_inputs(net, x)


def test_a_fitted_grid_is_kept_and_a_net_without_splines_reads_no_data(tmp_path):
    torch.manual_seed(0)
    net = KAN([1, 3, 1])
    net.update_grid(torch.linspace(-5, 5, 64).unsqueeze(-1))  # fitted already: not uniform
    fitted = net.layers[0].basis.grid.clone()
    trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN), raw_feynman())
    assert torch.equal(net.layers[0].basis.grid, fitted)

    class CountingData(FunctionDataModule):
        calls = 0

        def train_dataloader(self):
            CountingData.calls += 1
            return super().train_dataloader()

    chebyshev = KAN([1, 3, 1], basis="chebyshev")
    data = CountingData("I.6.20a", normalize_inputs=False, num_train=200, batch_size=100)
    trainer(tmp_path).fit(RegressionTask(chebyshev, optimizer=FROZEN), data)
    assert CountingData.calls == 1  # Lightning's own call only


def test_a_masked_layer_keeps_its_grid_and_is_named_once(tmp_path):
    torch.manual_seed(0)
    net = KAN([1, 3, 1])
    keep = torch.ones(1, 3, dtype=torch.bool)
    keep[0, 1] = False
    set_edge_mask(net.layers[1], keep)
    built = net.layers[1].basis.grid.clone()
    with pytest.warns(UserWarning, match=r"except in 1 layer\(s\).*`layers.1` \(KANLinear"):
        task = RegressionTask(net, optimizer=FROZEN, initial_grid="all")
        trainer(tmp_path).fit(task, raw_feynman())
    assert torch.equal(net.layers[1].basis.grid, built)
    assert not net.layers[0].basis.is_uniform  # the other layer was fitted


def test_dataloaders_instead_of_a_datamodule_keep_the_grid_with_a_warning(tmp_path):
    net = KAN([1, 3, 1])
    built = net.layers[0].basis.grid.clone()
    data = raw_feynman()
    data.setup("fit")
    with pytest.warns(UserWarning, match="this fit got dataloaders"):
        trainer(tmp_path).fit(RegressionTask(net, optimizer=FROZEN), data.train_dataloader())
    assert torch.equal(net.layers[0].basis.grid, built)


def test_a_resumed_fit_keeps_the_checkpoint_grids(tmp_path):
    """The checkpoint holds built [-1, 1] grids (first fit without the fit); a resumed fit
    with initial_grid='all' keeps them: Lightning restores before on_fit_start."""
    torch.manual_seed(0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = RegressionTask(KAN([1, 3, 1]), initial_grid=None)
    trainer(tmp_path, callbacks=[checkpoints], enable_checkpointing=True).fit(first, raw_feynman())
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = RegressionTask(KAN([1, 3, 1]))
    trainer(tmp_path, max_epochs=2).fit(
        resumed, raw_feynman(), ckpt_path=tmp_path / "ckpt" / "last.ckpt"
    )
    for layer in (0, 1):
        key = f"net.layers.{layer}.basis.grid"
        assert torch.equal(resumed.state_dict()[key], saved[key]), key
    # a task loaded from the checkpoint keeps its grids in a new fit as well
    loaded = RegressionTask.load_from_checkpoint(
        tmp_path / "ckpt" / "last.ckpt", net=KAN([1, 3, 1]), weights_only=True
    )
    trainer(tmp_path).fit(loaded, raw_feynman())
    assert torch.equal(loaded.net.layers[0].basis.grid, saved["net.layers.0.basis.grid"])


def test_cover_fitted_grids_reload_uniform_and_are_not_fitted_again(tmp_path):
    """A checkpoint of a default fit holds uniform fitted grids: a resumed fit keeps them
    and finds them uniform (the fast path), as does a fresh network loading them."""
    torch.manual_seed(0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = RegressionTask(KAN([1, 3, 1]), optimizer=FROZEN)
    trainer(tmp_path, callbacks=[checkpoints], enable_checkpointing=True).fit(first, raw_feynman())
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(saved["net.layers.0.basis.grid"], KAN([1, 3, 1]).layers[0].basis.grid)
    # other samples: a second fit would move the first layer's grid
    other = FunctionDataModule("I.6.20a", normalize_inputs=False, num_train=1500, seed=1)
    resumed = RegressionTask(KAN([1, 3, 1]), optimizer=FROZEN)
    trainer(tmp_path, max_epochs=2).fit(resumed, other, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    for layer in (0, 1):
        assert torch.equal(
            resumed.net.layers[layer].basis.grid, saved[f"net.layers.{layer}.basis.grid"]
        )
        assert resumed.net.layers[layer].basis.is_uniform


def test_resuming_reproduces_the_uninterrupted_run(tmp_path):
    def fit(max_epochs: int, ckpt_path: Path | None = None) -> RegressionTask:
        torch.manual_seed(0)
        task = RegressionTask(KAN([1, 3, 1]), optimizer=partial(torch.optim.Adam, lr=1e-2))
        run = trainer(
            tmp_path,
            max_epochs=max_epochs,
            limit_train_batches=3,
            callbacks=[ModelCheckpoint(dirpath=tmp_path / f"ckpt{max_epochs}", save_last=True)],
            enable_checkpointing=True,
        )
        run.fit(task, raw_feynman(), ckpt_path=ckpt_path)
        return task

    straight = fit(3)
    fit(1)
    resumed = fit(3, ckpt_path=tmp_path / "ckpt1" / "last.ckpt")
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


@pytest.mark.parametrize("value", ["quantile", "Data", "Cover", True, 0])
def test_bad_initial_grid_values_are_refused(value):
    with pytest.raises(ValueError, match=rf"initial_grid must be 'cover' .* got {value!r}"):
        RegressionTask(KAN([1, 1]), initial_grid=value)
    with pytest.raises(ValueError, match="initial_grid: null"):
        ClassificationTask(KAN([2, 2]), num_classes=2, initial_grid=value)
    with pytest.raises(ValueError, match=rf"which must be one of 'cover', .* got {value!r}"):
        fit_grids(KAN([1, 1]), torch.rand(4, 1), value)


def test_every_task_fits_with_cover_by_default():
    assert INITIAL_GRIDS[0] == "cover"
    tasks = [
        RegressionTask(KAN([1, 1])),
        ClassificationTask(KAN([2, 2]), num_classes=2),
        PINNTask(KAN([2, 1]), problem=Elliptic()),
    ]
    assert [task.initial_grid for task in tasks] == ["cover"] * 3


# --------------------------------------------------------------------- 2-process DDP


def ddp_job(out: Path) -> None:
    """Each process draws its own data set (seed = its rank), so without the broadcast
    their first inputs and grids would differ; DDP makes the nets' start equal."""
    rank = int(os.environ.get("LOCAL_RANK", 0))
    L.seed_everything(rank)
    net = KAN([1, 3, 1])
    data = FunctionDataModule("I.6.20a", normalize_inputs=False, batch_size=100, seed=rank)
    run = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    own = first_inputs(data)  # this process's first inputs (its own shuffle)
    run.fit(RegressionTask(net, optimizer=FROZEN), data)
    grids = {k: v.clone() for k, v in net.state_dict().items() if k.endswith("basis.grid")}
    torch.save({"grids": grids, "own": own}, out / f"rank{run.global_rank}.pt")


@pytest.mark.slow
def test_ddp_processes_fit_the_same_grids_to_rank_zeros_inputs(tmp_path):
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(first["own"], second["own"])  # the data sets differ
    for key, grid in first["grids"].items():
        assert torch.equal(second["grids"][key], grid), key
    low, high = first["grids"]["layers.0.basis.grid"][:, [3, 8]].unbind(-1)
    own = first["own"]
    assert torch.equal(low, own.min(0).values) and torch.equal(high, own.max(0).values)


if __name__ == "__main__":
    ddp_job(Path(sys.argv[1]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
