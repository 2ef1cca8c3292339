"""Pointwise PINN loss weights (SA-PINN, RBA) and the gradient-enhanced (gPINN) term."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.nets import KAN
from lightning_kan.pde import Burgers, Helmholtz, PDEDataModule
from lightning_kan.pde.weighting import (
    SA_MASKS,
    ResidualAttention,
    SelfAdaptiveWeighting,
    WeightingContext,
    get_loss_weighting,
    residual_gradient_loss,
)
from lightning_kan.tasks import PINNTask
from lightning_kan.utils import close_process_group

ROOT = Path(__file__).resolve().parents[1]
PI = math.pi


def bound(weighting, count: int):
    weighting.bind_data(SimpleNamespace(num_fixed_points=count))
    return weighting


def context(index, update: bool = True) -> WeightingContext:
    return WeightingContext([], index=torch.tensor(index), update=update)


def trainer(tmp_path: Path, max_epochs: int, callbacks=(), **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        log_every_n_steps=1,
        **kwargs,
    )


def fixed_data(**kwargs) -> PDEDataModule:
    options = dict(num_interior=32, num_boundary=16, steps_per_epoch=2, test_points_per_dim=5)
    return PDEDataModule(Helmholtz(a2=1.0), resample=False, **{**options, **kwargs})


def task(**kwargs) -> PINNTask:
    torch.manual_seed(0)
    return PINNTask(KAN([2, 4, 1], basis="chebyshev"), **kwargs)


# ---- the data module's fixed, indexed sets --------------------------------------------


def test_fixed_batches_carry_indices_that_cover_the_set_once():
    module = PDEDataModule(
        Helmholtz(),
        num_interior=8,
        num_boundary=4,
        steps_per_epoch=3,
        resample=False,
        test_points_per_dim=3,
    )
    assert module.num_fixed_points == 24
    batches = list(module.train_dataloader())
    for step, batch in enumerate(batches):
        assert torch.equal(batch["interior_index"], torch.arange(8) + 8 * step)
    again = list(module.train_dataloader())  # the same sets every epoch
    for a, b in zip(batches, again, strict=True):
        assert torch.equal(a["interior"], b["interior"])
    resampled = PDEDataModule(Helmholtz(), num_interior=8, num_boundary=4, test_points_per_dim=3)
    adaptive = PDEDataModule(
        Helmholtz(),
        num_interior=8,
        num_boundary=4,
        test_points_per_dim=3,
        resample=False,
        adaptive=True,
    )
    for changing in (resampled, adaptive):
        assert changing.num_fixed_points is None
        assert "interior_index" not in next(iter(changing.train_dataloader()))


@pytest.mark.parametrize("weighting", ["rba", "self_adaptive"])
@pytest.mark.parametrize("options", [{}, {"adaptive": True}], ids=["resample", "adaptive"])
def test_pointwise_weights_refuse_points_that_change(tmp_path, weighting, options):
    module = PDEDataModule(
        Helmholtz(), num_interior=16, num_boundary=8, test_points_per_dim=3, **options
    )
    with pytest.raises(ValueError, match=r"points must stay the same.*resample=False"):
        trainer(tmp_path, 1).fit(task(loss_weighting=weighting), module)


# ---- RBA ------------------------------------------------------------------------------


def test_rba_update_equals_the_formula_on_a_planted_residual():
    rba = bound(ResidualAttention(gamma=0.9, eta=0.5, init=2.0), 6)
    index = [5, 0, 2, 3]
    residuals = [
        torch.tensor([[0.5], [-2.0], [1.0], [0.0]], dtype=torch.float64),
        torch.tensor([[4.0], [1.0], [-1.0], [2.0]], dtype=torch.float64),
    ]
    expected = torch.full((6,), 2.0, dtype=torch.float64)
    for residual in residuals:
        residual.requires_grad_(True)
        boundary = torch.tensor(0.25, dtype=torch.float64)
        loss, logs = rba(residual, None, boundary, 3.0, context(index))
        size = residual.detach().abs().reshape(-1)
        expected[index] = 0.9 * expected[index] + 0.5 * size / size.max()
        assert torch.equal(rba.weights, expected)
        mine = (expected[index] * residual.reshape(-1)).square().mean() + 3.0 * boundary
        torch.testing.assert_close(loss, mine, rtol=1e-15, atol=0)
        (grad,) = torch.autograd.grad(loss, residual)  # d/dr_i = 2 lambda_i^2 r_i / N
        mine = 2 * expected[index] ** 2 * residual.detach().reshape(-1) / 4
        torch.testing.assert_close(grad.reshape(-1), mine, rtol=1e-15, atol=0)
        assert float(logs["train/rba_max_weight"]) == float(expected.max())
    assert expected[[1, 4]].tolist() == [2.0, 2.0]  # points not in the batch keep theirs


def test_rba_weights_stay_below_eta_over_one_minus_gamma():
    rba = bound(ResidualAttention(gamma=0.5, eta=1.0, init=0.0), 3)
    residual = torch.tensor([[3.0], [1.0], [0.5]])
    for _ in range(60):
        rba(residual, None, torch.tensor(0.0), 1.0, context([0, 1, 2]))
    # the fixed point of l <- g l + e |r| / max|r|: e |r| / (max|r| (1 - g))
    torch.testing.assert_close(rba.weights, torch.tensor([2.0, 2 / 3, 1 / 3], dtype=torch.float64))


# ---- SA-PINN --------------------------------------------------------------------------


@pytest.mark.parametrize("mask", sorted(SA_MASKS))
def test_sa_update_is_gradient_ascent_normalised_by_the_mean_square(mask):
    sa = bound(SelfAdaptiveWeighting(mask=mask, lr=0.3, init=0.5), 5)
    index = [4, 1, 2]
    residual = torch.tensor([[1.0], [-3.0], [0.5]], dtype=torch.float64, requires_grad=True)
    loss, logs = sa(residual, None, torch.tensor(0.0, dtype=torch.float64), 1.0, context(index))
    # the independent reference: autograd's d/d lambda of the points' terms m(lambda) r^2
    weights = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    m = SA_MASKS[mask][0]
    terms = m(weights) * residual.detach().reshape(-1).square()
    (ascent,) = torch.autograd.grad(terms.sum(), weights)
    torch.testing.assert_close(loss, terms.detach().mean(), rtol=1e-15, atol=0)
    scale = residual.detach().square().mean()
    expected = torch.full((5,), 0.5, dtype=torch.float64)
    expected[index] = 0.5 + 0.3 * ascent / scale
    torch.testing.assert_close(sa.weights, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(logs["train/sa_max_weight"], m(expected).max())


def test_sa_weights_move_toward_the_high_residual_points():
    torch.manual_seed(0)
    x = torch.rand(64, 2, dtype=torch.float64)
    residual = torch.exp(-(x - 0.5).square().sum(1, keepdim=True) / 0.05)  # a planted peak
    sa = bound(SelfAdaptiveWeighting(lr=0.5), 64)
    for _ in range(10):
        sa(residual, x, torch.tensor(0.0), 1.0, context(list(range(64))))
    weights = torch.sigmoid(sa.weights)
    # the order of the weights is the order of the residuals, the largest at the peak
    assert torch.equal(weights.argsort(), residual.reshape(-1).argsort())
    assert weights.min() > 0.5  # every weight rose from sigmoid(0) = 1/2 (r^2 > 0)


@pytest.mark.parametrize("weighting", [ResidualAttention(), SelfAdaptiveWeighting()])
def test_line_search_evaluations_leave_the_weights(weighting):
    bound(weighting, 4)
    before = weighting.weights.clone()
    weighting(torch.ones(4, 1), None, torch.tensor(0.0), 1.0, context([0, 1, 2, 3], update=False))
    assert torch.equal(weighting.weights, before)


@pytest.mark.parametrize(
    ("weighting", "kwargs", "message"),
    [
        ("rba", {"gamma": 1.5}, r"gamma must be a finite number in \[0.0, 1.0\]"),
        ("rba", {"eta": 0}, "eta must be a number > 0"),
        ("self_adaptive", {"mask": "cube"}, r"mask must be one of \['identity', 'sigmoid'"),
        ("self_adaptive", {"init": math.nan}, "init must be a finite number"),
    ],
)
def test_bad_pointwise_options(weighting, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_loss_weighting(weighting, kwargs)


def test_a_batch_whose_index_does_not_fit_the_weights_is_refused():
    rba = bound(ResidualAttention(), 4)
    with pytest.raises(ValueError, match="changed size during the fit"):
        rba(torch.ones(2, 1), None, torch.tensor(0.0), 1.0, context([3, 4]))
    with pytest.raises(ValueError, match='needs the batch\'s "interior_index"'):
        rba(torch.ones(2, 1), None, torch.tensor(0.0), 1.0, WeightingContext([]))


# ---- in training: logs, checkpoints, resume -------------------------------------------


@pytest.mark.parametrize("weighting", ["rba", "self_adaptive"])
def test_resume_repeats_the_uninterrupted_weights(tmp_path, weighting):
    def fit(folder: Path, epochs: int, ckpt_path: Path | None = None) -> PINNTask:
        model = task(loss_weighting=weighting, optimizer=lambda p: torch.optim.Adam(p, lr=0.02))
        checkpoint = ModelCheckpoint(dirpath=folder, save_last=True)
        trainer(folder, epochs, [checkpoint]).fit(model, fixed_data(), ckpt_path=ckpt_path)
        return model

    full = fit(tmp_path / "full", 4)
    fit(tmp_path / "half", 2)
    resumed = fit(tmp_path / "resumed", 4, ckpt_path=tmp_path / "half/last.ckpt")
    assert full.loss_weighting.weights.shape == (64,)
    assert torch.equal(resumed.loss_weighting.weights, full.loss_weighting.weights)
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    logged = full.trainer.callback_metrics  # every step logs: the last step's weights
    weights = full.loss_weighting.weights
    if weighting == "rba":
        assert float(logged["train/rba_max_weight"]) == pytest.approx(float(weights.max()))
    else:
        largest = float(torch.sigmoid(weights).max())
        assert float(logged["train/sa_max_weight"]) == pytest.approx(largest)
    # a task built from the checkpoint alone (no data module) gets the saved weights
    loaded = PINNTask.load_from_checkpoint(
        tmp_path / "full/last.ckpt", net=KAN([2, 4, 1], basis="chebyshev")
    )
    assert torch.equal(loaded.loss_weighting.weights, full.loss_weighting.weights)


# ---- gPINN ----------------------------------------------------------------------------


class Scaled(torch.nn.Module):
    """``c * sin(pi x) sin(pi y)``: Helmholtz(a1=1, a2=1)'s exact solution times ``c``."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(c, dtype=torch.float64))

    def forward(self, x):
        return self.c * torch.sin(PI * x[:, :1]) * torch.sin(PI * x[:, 1:2])


def test_gradient_enhanced_term_equals_its_closed_form():
    """``r = (k^2 - 2 pi^2)(c - 1) u*``, so ``|grad r|^2 = ((k^2 - 2 pi^2)(c - 1))^2
    pi^2 (cos^2(pi x) sin^2(pi y) + sin^2(pi x) cos^2(pi y))``."""
    problem, net = Helmholtz(a1=1.0, a2=1.0, k=2.0), Scaled(1.5)
    x = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = x * 2 - 1
    interior = x.clone().requires_grad_(True)
    term = residual_gradient_loss(problem.residual(net, interior), interior)
    X, Y = x[:, 0], x[:, 1]
    shape = (
        PI**2
        * (
            torch.cos(PI * X) ** 2 * torch.sin(PI * Y) ** 2
            + torch.sin(PI * X) ** 2 * torch.cos(PI * Y) ** 2
        )
    ).mean()
    factor = (4 - 2 * PI**2) ** 2
    torch.testing.assert_close(term, factor * 0.25 * shape, rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(term, net.c)  # d/dc of factor (c - 1)^2 shape
    torch.testing.assert_close(grad, factor * 2 * 0.5 * shape, rtol=1e-12, atol=0)


def test_pinn_task_adds_the_weighted_gradient_term():
    problem, net = Helmholtz(a1=1.0, a2=1.0, k=2.0), Scaled(1.5)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "interior": torch.rand(40, 2, dtype=torch.float64, generator=generator),
        "boundary": problem.sample_boundary(8, generator).double(),
    }
    plain = PINNTask(net, problem=problem, initial_grid=None)
    enhanced = PINNTask(net, problem=problem, initial_grid=None, gradient_weight=0.3)
    base = plain.training_loss(dict(batch), record=False)
    interior = batch["interior"].clone().requires_grad_(True)
    term = residual_gradient_loss(problem.residual(net, interior), interior)
    torch.testing.assert_close(enhanced.training_loss(dict(batch), record=False), base + 0.3 * term)
    with pytest.raises(ValueError, match="gradient_weight must be a finite number >= 0"):
        PINNTask(net, problem=problem, gradient_weight=-1.0)


# ---- DDP ------------------------------------------------------------------------------


def ddp_job(out: Path) -> None:
    """Two processes, each weighting on its own half of the fixed sets; then an inverse
    Burgers fit, each process with its half of the observations."""
    jobs = {
        "rba": ({"loss_weighting": "rba", "gradient_weight": 0.01}, fixed_data()),
        "self_adaptive": ({"loss_weighting": "self_adaptive"}, fixed_data()),
        "inverse": (
            {"unknowns": {"nu": 0.3}},
            PDEDataModule(Burgers(nu=0.1), num_interior=32, num_boundary=16, steps_per_epoch=2,
                          test_points_per_dim=5, observations=21, noise=0.01),
        ),
    }  # fmt: skip
    for name, (options, module) in jobs.items():
        L.seed_everything(0)
        model = task(**options)
        run = L.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            max_epochs=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=1.0 if name == "inverse" else 0,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
        run.fit(model, module)
        saved = {
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "logged": {k: float(v) for k, v in run.callback_metrics.items()},
        }
        torch.save(saved, out / f"{name}-rank{run.global_rank}.pt")


@pytest.mark.slow
def test_two_process_ddp_keeps_weights_and_unknowns_identical(tmp_path):
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name, key in (("rba", "train/rba_max_weight"), ("self_adaptive", "train/sa_max_weight")):
        first, second = (torch.load(tmp_path / f"{name}-rank{r}.pt") for r in (0, 1))
        assert first["logged"][key] == second["logged"][key]
        for state, value in first["state"].items():
            torch.testing.assert_close(second["state"][state], value, rtol=0, atol=0, msg=state)
        weights = first["state"]["loss_weighting.weights"]
        init = 1.0 if name == "rba" else 0.0
        # each process trains on one of the two sets, and both sets' weights moved on both
        assert weights.shape == (64,) and bool((weights != init).all())
    first, second = (torch.load(tmp_path / f"inverse-rank{r}.pt") for r in (0, 1))
    for state, value in first["state"].items():
        torch.testing.assert_close(second["state"][state], value, rtol=0, atol=0, msg=state)
    nu = F.softplus(first["state"]["unknowns.raw.nu"]).item()
    assert nu != pytest.approx(0.3) and first["logged"]["val/nu"] == pytest.approx(nu)
    assert first["logged"]["val/nu_error"] == second["logged"]["val/nu_error"]
    assert first["logged"]["val/nu_error"] == pytest.approx(abs(nu - 0.1), abs=1e-6)


if __name__ == "__main__":
    ddp_job(Path(sys.argv[1]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
