"""The ``Prune`` callback inside real Lightning fits: cuts, resume, DDP and errors.

The DDP job runs as a script (``python tests/test_prune_callback.py OUT``), as in
tests/test_ddp_callbacks.py: Lightning's launcher re-executes it for the second process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_kan.callbacks import GridUpdate, Prune
from lightning_kan.data import FunctionDataModule
from lightning_kan.interpret import prune
from lightning_kan.layers.masks import edge_mask, set_edge_mask
from lightning_kan.layers.symbolic import symbolic_edges
from lightning_kan.nets import KAN, MLP, SlimKAN
from lightning_kan.tasks import RegressionTask
from lightning_kan.utils import close_process_group


def two_of_five(x: torch.Tensor) -> torch.Tensor:
    """A function of the first 2 of 5 inputs (FunctionDataModule loads it by name)."""
    return torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2


def data_module(batch_size: int = 128) -> FunctionDataModule:
    return FunctionDataModule(
        "test_prune_callback.two_of_five",
        num_variables=5,
        num_train=512,
        num_val=65,
        num_test=64,
        batch_size=batch_size,
    )


def masks_of(net: KAN) -> list[torch.Tensor]:
    return [edge_mask(layer).clone() for layer in net.layers]


class CutEdgesStayZero(Callback):
    """After every training step: each cut edge's effective coefficients are exactly 0,
    and a cut edge never comes back. Records every mask it sees."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.seen: list[list[torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        masks = masks_of(pl_module.net)
        for index, (layer, keep) in enumerate(zip(pl_module.net.layers, masks, strict=True)):
            cut = ~keep
            if layer.weight.detach()[cut].abs().sum() != 0:
                self.violations.append(f"step {trainer.global_step} layer {index} weight")
            if layer.base_weight.detach()[cut].abs().sum() != 0:
                self.violations.append(f"step {trainer.global_step} layer {index} base_weight")
            if self.seen and bool((keep & ~self.seen[-1][index]).any()):
                self.violations.append(f"step {trainer.global_step} layer {index} regrew")
        self.seen.append(masks)


def trainer(tmp_path: Path, epochs: int, callbacks: list, **kwargs) -> L.Trainer:
    options = {"logger": False, "enable_checkpointing": False, **kwargs}
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **options,
    )


def regression_task(net: KAN, lr: float = 1e-2) -> RegressionTask:
    return RegressionTask(net, optimizer=partial(torch.optim.Adam, lr=lr), regularization=1e-2)


def test_prune_cuts_the_dummy_inputs_and_cut_edges_stay_zero(tmp_path):
    L.seed_everything(0)
    net = KAN([5, 3, 1])
    data = data_module()
    probe = CutEdgesStayZero()
    callback = Prune(every_n_epochs=5, start_epoch=9, plot_graph=False)
    run = trainer(tmp_path, 20, [callback, probe])
    run.fit(regression_task(net), data)
    assert callback.pruned_epochs == [9, 14, 19]
    assert probe.violations == []
    first, second = masks_of(net)
    # every edge of the 3 dummy inputs is cut; the 2 real inputs keep edges
    assert not first[:, 2:].any()
    assert first[:, 0].any() and first[:, 1].any()
    # nothing was cut before the end of epoch 9 (4 steps an epoch), something then
    assert all(keep.all() for keep in probe.seen[39]) and not probe.seen[40][0].all()
    # the network ignores the dummy inputs exactly
    x = data.splits["test"].tensors[0]
    moved = x.clone()
    moved[:, 2:] = torch.rand_like(moved[:, 2:]) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), net(moved))
    logged = {key: float(value) for key, value in run.callback_metrics.items()}
    assert logged["prune/layer_0/edges"] == first.sum().item()
    assert logged["prune/layer_1/edges"] == second.sum().item()
    assert logged["prune/edges"] == first.sum().item() + second.sum().item()
    assert logged["prune/boundary_1/nodes"] == second.any(0).sum().item()
    # compacting the result keeps the function and the cuts
    compact = prune(net, x, 0, 0)
    with torch.no_grad():
        torch.testing.assert_close(compact(x), net(x), rtol=0, atol=1e-5)
    assert not edge_mask(compact.layers[0])[:, 2:].any()


def set_known_net(net: KAN) -> None:
    """Zero the only outgoing edge of hidden node 1 (a mult node reading subnodes 1, 2)."""
    with torch.no_grad():
        net.layers[1].weight[:, 1] = 0
        net.layers[1].base_weight[:, 1] = 0


def test_prune_cuts_a_dead_mult_node_with_all_its_edges(tmp_path):
    L.seed_everything(0)
    net = KAN([2, 2, 1], mult_nodes=1)  # node 0 sums subnode 0, node 1 = subnode 1 * 2
    assert net.subnodes(1) == [(0,), (1, 2)]
    set_known_net(net)
    # lr 0: the weights stay as set; edge_threshold 0 cuts no edge on its own
    task = RegressionTask(net, optimizer=partial(torch.optim.SGD, lr=0.0))
    callback = Prune(every_n_epochs=1, edge_threshold=0, node_threshold=1e-8, plot_graph=False)
    run = trainer(tmp_path, 1, [callback])
    run.fit(task, data_module_2d())
    first, second = masks_of(net)
    assert torch.equal(first, torch.tensor([[True, True], [False, False], [False, False]]))
    assert torch.equal(second, torch.tensor([[True, False]]))
    logged = {key: float(value) for key, value in run.callback_metrics.items()}
    assert logged["prune/layer_0/edges"] == 2 and logged["prune/layer_1/edges"] == 1
    assert logged["prune/boundary_1/nodes"] == 1


def data_module_2d() -> FunctionDataModule:
    return FunctionDataModule("kan-toy", num_train=128, num_val=32, num_test=32, batch_size=64)


def test_prune_refuses_to_disconnect_a_hidden_layer(tmp_path):
    L.seed_everything(0)
    task = RegressionTask(KAN([2, 2, 1]), optimizer=partial(torch.optim.SGD, lr=0.0))
    callback = Prune(every_n_epochs=1, node_threshold=1e9, plot_graph=False)
    with pytest.raises(ValueError, match=r"node_threshold=1000000000.0 would cut every node"):
        trainer(tmp_path, 1, [callback]).fit(task, data_module_2d())


def test_resume_from_last_ckpt_keeps_the_masks_and_the_schedule(tmp_path):
    L.seed_everything(0)
    net = KAN([5, 3, 1])
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first_prune = Prune(every_n_epochs=5, start_epoch=4, until_epoch=9, plot_graph=False)
    trainer(tmp_path, 10, [first_prune, checkpoints], enable_checkpointing=True).fit(
        regression_task(net), data_module()
    )
    saved = masks_of(net)
    assert not saved[0].all()  # some edges are cut

    class MasksAtStart(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            self.masks = masks_of(pl_module.net)

    fresh = KAN([5, 3, 1])  # no masks: the checkpoint brings them
    second_prune = Prune(every_n_epochs=5, start_epoch=4, until_epoch=9, plot_graph=False)
    start, probe = MasksAtStart(), CutEdgesStayZero()
    resumed = trainer(tmp_path, 13, [second_prune, start, probe], enable_checkpointing=True)
    resumed.fit(regression_task(fresh), data_module(), ckpt_path=tmp_path / "ckpt/last.ckpt")
    assert second_prune.pruned_epochs == [4, 9]  # the schedule state came back
    assert resumed.global_step == 13 * 4  # Adam's restored state matched the parameters
    for got, expected in zip(start.masks, saved, strict=True):
        assert torch.equal(got, expected)
    for got, expected in zip(masks_of(fresh), saved, strict=True):
        assert torch.equal(got, expected)
    assert probe.violations == []


def test_prune_logs_the_graph_for_csv_logs(tmp_path):
    pytest.importorskip("matplotlib")
    L.seed_everything(0)
    logger = CSVLogger(tmp_path, name="run")
    callback = Prune(every_n_epochs=2, start_epoch=1)
    trainer(tmp_path, 4, [callback], logger=logger).fit(
        regression_task(KAN([5, 3, 1])), data_module()
    )
    pngs = sorted(p.name for p in (tmp_path / "run/version_0/prune").glob("*.png"))
    assert pngs == ["epoch=1-step=8-graph.png", "epoch=3-step=16-graph.png"]
    metrics = (tmp_path / "run/version_0/metrics.csv").read_text().splitlines()[0]
    assert "prune/layer_0/edges" in metrics and "prune/boundary_1/nodes" in metrics


def test_prune_logs_tensorboard_graphs_and_counts_symbolic_edges_as_kept(tmp_path):
    pytest.importorskip("matplotlib")
    accumulator_module = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    L.seed_everything(0)
    net = KAN([5, 3, 1])
    symbolic_edges(net.layers[1]).set_edge(0, 2, "x")
    keep = edge_mask(net.layers[1])
    keep[0, 2] = False
    set_edge_mask(net.layers[1], keep)
    logger = TensorBoardLogger(tmp_path, name="tb")
    # thresholds of 0 cut nothing new: every edge is kept, one of them symbolic
    callback = Prune(every_n_epochs=1, edge_threshold=0, node_threshold=0)
    run = trainer(tmp_path, 1, [callback], logger=logger)
    run.fit(regression_task(net), data_module())
    assert float(run.callback_metrics["prune/layer_1/edges"]) == 3
    assert float(run.callback_metrics["prune/edges"]) == 15 + 3
    accumulator = accumulator_module.EventAccumulator(str(tmp_path / "tb/version_0"))
    accumulator.Reload()
    assert "prune/graph" in accumulator.Tags()["images"]


def test_prune_state_dict_round_trip():
    callback = Prune()
    callback.pruned_epochs = [3, 8]
    other = Prune()
    other.load_state_dict(callback.state_dict())
    assert other.pruned_epochs == [3, 8]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n_epochs": 0}, r"every_n_epochs must be an integer >= 1 .*got 0"),
        ({"every_n_epochs": 2.0}, r"every_n_epochs must be an integer >= 1 .*got 2.0"),
        ({"start_epoch": -1}, r"start_epoch must be an integer >= 0 .*got -1"),
        ({"start_epoch": 5, "until_epoch": 4}, r"until_epoch must be an integer >= 5 .*got 4"),
        ({"edge_threshold": -0.1}, r"edge_threshold must be a finite number >= 0, got -0.1"),
        ({"node_threshold": float("nan")}, r"node_threshold must be a finite .*got nan"),
        ({"edge_threshold": True}, r"edge_threshold must be a finite number >= 0, got True"),
        ({"num_samples": 1}, r"num_samples must be an integer >= 2 .*got 1"),
        ({"plot_graph": "yes"}, r"plot_graph must be True or False, got 'yes'"),
        ({"beta": 0}, r"beta must be a number > 0, got 0"),
    ],
)
def test_prune_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Prune(**kwargs)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MLP([4], in_features=2, out_features=1), r"Prune needs a KAN .*got MLP"),
        (
            lambda: SlimKAN([2, 3, 1], ranks=1),
            r"Prune needs a KAN .*computes its coefficients with Tucker",
        ),
        (lambda: KAN([2, 3, 1], norm="layer"), r"Prune needs a KAN .*Build the KAN with norm"),
    ],
)
def test_prune_refuses_non_dense_nets_before_training(tmp_path, make, match):
    task = RegressionTask(make())
    with pytest.raises(TypeError, match=match):
        trainer(tmp_path, 1, [Prune()]).fit(task, data_module_2d())
    assert task.global_step == 0


def test_prune_refuses_grid_updates_in_the_same_fit(tmp_path):
    with pytest.raises(ValueError, match=r"GridUpdate cannot refit masked coefficients"):
        trainer(tmp_path, 1, [GridUpdate(), Prune()]).fit(
            RegressionTask(KAN([2, 3, 1])), data_module_2d()
        )


def test_prune_needs_a_datamodule(tmp_path):
    data = data_module_2d()
    data.setup("fit")
    with pytest.raises(ValueError, match=r"Prune reads training inputs from the trainer's"):
        trainer(tmp_path, 1, [Prune()]).fit(
            RegressionTask(KAN([2, 3, 1])), train_dataloaders=data.train_dataloader()
        )


# ---------------------------------------------------------------------- 2-process DDP
def ddp_job(out: Path) -> None:
    """Fit on 2 processes with Prune; each process saves its masks and weights."""
    L.seed_everything(0)
    net = KAN([5, 3, 1])
    run = L.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=CSVLogger(out, name="ddp"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Prune(every_n_epochs=4, start_epoch=7)],
    )
    run.fit(regression_task(net, lr=2e-2), data_module(batch_size=64))
    state = {key: value.detach().clone() for key, value in net.state_dict().items()}
    logged = {k: v.item() for k, v in run.callback_metrics.items() if k.startswith("prune/")}
    result = {"masks": masks_of(net), "state": state, "logged": logged}
    torch.save(result, out / f"rank{run.global_rank}.pt")


@pytest.mark.slow
def test_prune_under_two_process_ddp_gives_identical_masks(tmp_path):
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONWARNINGS="default"),
        capture_output=True,
        text=True,
        timeout=240,  # a collective reached by one process only would hang
    )
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for a, b in zip(first["masks"], second["masks"], strict=True):
        assert torch.equal(a, b)
    assert first["state"].keys() == second["state"].keys()
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key]), key
    assert not first["masks"][0].all()  # edges were cut
    assert first["logged"]["prune/layer_0/edges"] == first["masks"][0].sum().item()
    assert first["logged"] == second["logged"]
    pngs = sorted(p.name for p in (tmp_path / "ddp/version_0/prune").glob("*.png"))
    assert pngs == ["epoch=11-step=48-graph.png", "epoch=7-step=32-graph.png"]


if __name__ == "__main__":
    ddp_job(Path(sys.argv[1]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
