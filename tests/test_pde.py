"""PDE problems: residuals vanish on exact solutions; the PINN pipeline on tiny runs."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lightning_kan.nets import KAN
from lightning_kan.pde import (
    Burgers,
    Elliptic,
    Helmholtz,
    PDEDataModule,
    PINNTask,
    SteadyAllenCahn,
    TimeAllenCahn,
)
from lightning_kan.tasks import RelativeL2Error

PROBLEMS = [
    Elliptic(p=0.0),
    Elliptic(p=2.5),
    Helmholtz(a1=1, a2=4),
    Helmholtz(a1=2, a2=3, k=5),
    SteadyAllenCahn(eps=0.1),
    SteadyAllenCahn(eps=0.5),
    TimeAllenCahn(eps=0.2),
    Burgers(nu=0.05),
    Burgers(nu=0.3),
]


@pytest.mark.parametrize("problem", PROBLEMS, ids=repr)
def test_residual_vanishes_on_the_exact_solution(problem):
    generator = torch.Generator().manual_seed(0)
    x = problem.sample_interior(500, generator).double().requires_grad_(True)
    residual = problem.residual(problem.exact, x)
    scale = problem.exact(x).abs().max().item() + 1.0
    assert residual.abs().max().item() < 1e-10 * scale * 100


@pytest.mark.parametrize("problem", PROBLEMS, ids=repr)
def test_residual_detects_a_wrong_solution(problem):
    x = problem.sample_interior(200, torch.Generator().manual_seed(1)).double().requires_grad_(True)
    residual = problem.residual(lambda points: problem.exact(points) + 0.1 * points[:, :1] ** 2, x)
    assert residual.abs().max().item() > 1e-3


def test_boundary_points_lie_on_data_faces():
    problem = TimeAllenCahn()
    points = problem.sample_boundary(1000, torch.Generator().manual_seed(0))
    on_x_faces = points[:, 0].abs() == 1.0
    on_initial = points[:, 1] == 0.0
    assert (on_x_faces | on_initial).all()
    assert not (points[:, 1] == 1.0).any()  # the final time carries no data


def test_relative_l2_against_a_hand_computed_value():
    metric = RelativeL2Error()
    metric.update(torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]]))
    metric.update(torch.tensor([[0.0]]), torch.tensor([[0.0]]))
    # sqrt(((1-3)^2 + (2-4)^2) / (3^2 + 4^2)) = sqrt(8 / 25)
    assert abs(metric.compute().item() - (8 / 25) ** 0.5) < 1e-6


def test_collocation_points_are_seeded_and_resampled_per_epoch():
    data = PDEDataModule(Elliptic(), num_interior=50, num_boundary=10, steps_per_epoch=2)
    loader = data.train_dataloader()
    first = [batch["interior"] for batch in loader]
    again = [batch["interior"] for batch in data.train_dataloader()]
    torch.testing.assert_close(first[0], again[0])
    loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(loader))["interior"], first[0])


def test_pinn_pipeline_trains_and_reports_relative_l2(tmp_path):
    torch.manual_seed(0)
    data = PDEDataModule(
        Elliptic(p=1.0),
        num_interior=256,
        num_boundary=128,
        steps_per_epoch=10,
        test_points_per_dim=21,
    )
    net = KAN([2, 8, 1], basis="chebyshev", basis_kwargs={"degree": 5})
    task = PINNTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    (before,) = trainer.validate(task, data, verbose=False)
    trainer.fit(task, data)
    assert {"train/grad_norm", "train/residual", "train/boundary"} <= set(trainer.callback_metrics)
    (after,) = trainer.validate(task, data, verbose=False)
    assert set(after) >= {"val/rel_l2", "val/mse", "val/loss"}
    # compared with sin(pi x) sin(pi y) on the test grid, the error falls with training
    assert after["val/rel_l2"] < 0.5 * before["val/rel_l2"], (before, after)


def test_cli_pde_fit_then_plot_example(tmp_path, monkeypatch):
    """configs/pde_elliptic.yaml through the CLI, then examples/pde_plot.py on the run."""
    import runpy
    import sys
    from pathlib import Path

    from lightning_kan.cli import main

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(root / "configs/pde_elliptic.yaml"),
            "--trainer.max_epochs=2",
            "--trainer.check_val_every_n_epoch=1",
            "--model.init_args.lbfgs_epochs=1",  # Adam, then L-BFGS, through the CLI
            "--model.init_args.lbfgs_max_iter=3",
            "--data.init_args.num_interior=100",
        ]
    )
    run = tmp_path / "runs/pde_elliptic/version_0"
    monkeypatch.setattr(sys, "argv", ["pde_plot.py", str(run), "--points", "21"])
    runpy.run_path(str(root / "examples/pde_plot.py"), run_name="__main__")
    assert (run / "solution.png").stat().st_size > 10_000


def _lbfgs_run(tmp_path, max_epochs: int, callbacks=(), **fit_kwargs) -> tuple[PINNTask, L.Trainer]:
    """A tiny elliptic PINN: Adam (lr halved per epoch), the last 2 epochs L-BFGS."""
    torch.manual_seed(0)
    data = PDEDataModule(
        Elliptic(p=1.0),
        num_interior=128,
        num_boundary=64,
        steps_per_epoch=2,
        test_points_per_dim=11,
    )
    net = KAN([2, 4, 1], basis="chebyshev", basis_kwargs={"degree": 3})
    task = PINNTask(
        net,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
        lbfgs_epochs=2,
        lbfgs_max_iter=5,
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,  # tasks call self.log only on the steps the logger writes
        callbacks=list(callbacks),
    )
    trainer.fit(task, data, **fit_kwargs)
    return task, trainer


def test_lbfgs_after_adam_lowers_the_loss_and_resumes(tmp_path):
    import copy

    from lightning.pytorch.callbacks import LambdaCallback, ModelCheckpoint

    nets = {}  # the network at the start of each epoch
    snapshot = LambdaCallback(
        on_train_epoch_start=lambda trainer, task: nets.setdefault(
            trainer.current_epoch, copy.deepcopy(task.net)
        )
    )
    every_epoch = ModelCheckpoint(tmp_path / "checkpoints", save_top_k=-1, every_n_epochs=1)
    task, trainer = _lbfgs_run(tmp_path / "a", max_epochs=4, callbacks=[snapshot, every_epoch])
    adam, lbfgs = task.optimizers()
    assert adam.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**2)  # stepped per Adam epoch
    assert lbfgs.state_dict()["state"][0]["n_iter"] > 5  # L-BFGS ran from epoch 2 on
    assert "train/grad_norm" in trainer.callback_metrics
    batch = task._lbfgs_batch

    def loss_on_fixed_batch(net: torch.nn.Module) -> float:
        x = batch["interior"].clone().requires_grad_(True)
        residual = task.problem.residual(net, x).square().mean()
        boundary = net(batch["boundary"]) - task.problem.boundary_values(batch["boundary"])
        return (residual + task.boundary_weight * boundary.square().mean()).item()

    # 2 Adam epochs leave the loss > 100; 20 L-BFGS steps bring it down by 10x or more
    assert loss_on_fixed_batch(task.net) < 0.1 * loss_on_fixed_batch(nets[2])

    # resuming from the checkpoint written after the first L-BFGS epoch ends the same
    (checkpoint,) = (tmp_path / "checkpoints").glob("epoch=2-*.ckpt")
    assert "pinn_lbfgs_batch" in torch.load(checkpoint, weights_only=True)
    resumed, _ = _lbfgs_run(tmp_path / "b", max_epochs=4, ckpt_path=str(checkpoint))
    torch.testing.assert_close(resumed._lbfgs_batch["interior"], batch["interior"])
    for name, value in task.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=1e-4, atol=1e-5)


def test_lbfgs_epochs_need_a_finite_max_epochs(tmp_path):
    with pytest.raises(ValueError, match=r"lbfgs_epochs=2 .*max_epochs, which is -1"):
        _lbfgs_run(tmp_path, max_epochs=-1)
    with pytest.warns(UserWarning, match="every epoch uses L-BFGS"):
        task, _ = _lbfgs_run(tmp_path, max_epochs=1)  # L-BFGS only
    assert task._lbfgs_batch is not None
    with pytest.raises(ValueError, match="lbfgs_epochs must be an integer >= 0, got -1"):
        PINNTask(KAN([2, 1]), lbfgs_epochs=-1)
