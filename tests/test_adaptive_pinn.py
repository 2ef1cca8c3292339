"""Adaptive collocation (R3, RAR) and loss weighting (annealing, causal) for PINNTask."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.cli import main
from lightning_kan.nets import KAN
from lightning_kan.pde import Box, Burgers, Helmholtz, PDEDataModule
from lightning_kan.pde.collocation import RAR, R3Sampling, r3_select, rar_select, residual_size
from lightning_kan.pde.weighting import (
    CausalWeighting,
    GradientAnnealing,
    WeightingContext,
    get_loss_weighting,
)
from lightning_kan.tasks import PINNTask
from lightning_kan.utils import close_process_group

ROOT = Path(__file__).resolve().parents[1]
PEAK = torch.tensor([0.3, -0.2], dtype=torch.float64)


def peak(x: torch.Tensor) -> torch.Tensor:
    """A residual bump ``(N, 1)`` centred at ``PEAK``, monotone in the distance to it."""
    return torch.exp(-(x - PEAK.to(x)).square().sum(1, keepdim=True) / 0.01)


class PeakProblem(Helmholtz):
    """Helmholtz data, and a residual that is the planted peak (the net enters times 0,
    so the graph reaches it): the residual's maximum is at ``PEAK`` whatever the net."""

    def residual(self, u_fn, x):
        return peak(x) + 0 * u_fn(x)


def trainer(tmp_path: Path, callbacks: list, max_epochs: int, **kwargs) -> L.Trainer:
    checkpoints = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        log_every_n_steps=1,
        **kwargs,
    )


def data(problem, **kwargs) -> PDEDataModule:
    options = dict(num_interior=64, num_boundary=32, steps_per_epoch=2, test_points_per_dim=5)
    return PDEDataModule(problem, **{**options, **kwargs})


def task(**kwargs) -> PINNTask:
    torch.manual_seed(0)
    return PINNTask(KAN([2, 4, 1], basis="chebyshev"), **kwargs)


# ---- adaptive collocation -------------------------------------------------------------


def test_r3_keeps_exactly_the_points_at_or_above_the_mean_and_redraws_inside():
    domain = Box(((-1.0, 1.0), (0.0, 2.0)))
    points = domain.sample_interior(500, seed=1, dtype=torch.float64)
    residual = (points[:, 0] - 0.25).abs()
    keep = residual >= residual.mean()
    new = r3_select(points, residual, domain, torch.Generator().manual_seed(2))
    kept = int(keep.sum())
    assert 0 < kept < 500 and new.shape == points.shape
    assert torch.equal(new[:kept], points[keep])
    redrawn = new[kept:]
    assert bool(domain.contains(redrawn).all())
    assert not bool((redrawn[:, None] == points[None]).all(-1).any())  # all new points
    again = r3_select(points, residual, domain, torch.Generator().manual_seed(2))
    assert torch.equal(new, again)  # seeded


def test_rar_select_takes_the_candidates_nearest_the_planted_peak():
    candidates = Box(((-1.0, 1.0), (-1.0, 1.0))).sample_interior(3000, seed=3).double()
    added = rar_select(candidates, peak(candidates).reshape(-1), 7)
    nearest = candidates[(candidates - PEAK).norm(dim=1).argsort()[:7]]
    assert torch.equal(added, nearest)


def test_residual_size_is_the_chunked_absolute_residual():
    problem = PeakProblem()
    points = Box(problem.bounds).sample_interior(50, seed=4, dtype=torch.float64)
    net = KAN([2, 3, 1], basis="chebyshev").double()
    expected = peak(points).reshape(-1)
    assert torch.allclose(residual_size(problem, net, points, chunk_size=7), expected)


def test_rar_callback_adds_points_at_the_planted_peak(tmp_path):
    module = data(PeakProblem(), adaptive=True)
    start = module.collocation_points.clone()
    rar = RAR(candidates=4000, add=8, seed=5)
    trainer(tmp_path, [rar], max_epochs=3).fit(task(), module)
    points = module.collocation_points
    assert points.shape == (64 + 2 * 8, 2)  # refined at the start of epochs 1 and 2
    assert torch.equal(points[:64], start)
    distance = (points[64:].double() - PEAK).norm(dim=1)
    assert float(distance.max()) < 0.1  # 4000 candidates: the nearest 8 lie within ~0.05


def test_rar_stops_at_max_points(tmp_path):
    module = data(PeakProblem(), adaptive=True)
    trainer(tmp_path, [RAR(candidates=500, add=10, max_points=70)], max_epochs=4).fit(
        task(), module
    )
    assert module.collocation_points.shape[0] == 70


def test_r3_callback_keeps_the_high_residual_points(tmp_path):
    module = data(PeakProblem(), adaptive=True)
    start = module.collocation_points.clone()
    trainer(tmp_path, [R3Sampling(seed=6)], max_epochs=2).fit(task(), module)
    residual = peak(start.double()).reshape(-1)
    keep = residual >= residual.mean()
    points = module.collocation_points
    assert points.shape == start.shape
    assert torch.equal(points[: int(keep.sum())], start[keep])
    assert bool(module.problem.domain.contains(points).all())


def _fit_adaptive(folder: Path, epochs: int, ckpt_path: Path | None = None):
    module = data(Helmholtz(), adaptive=True)
    model = task()
    callbacks = [
        R3Sampling(seed=1),
        RAR(candidates=300, add=4, seed=2),
        ModelCheckpoint(dirpath=folder, save_last=True, every_n_epochs=1),
    ]
    trainer(folder, callbacks, max_epochs=epochs).fit(model, module, ckpt_path=ckpt_path)
    return module, model


def test_resume_from_a_mid_run_checkpoint_repeats_the_collocation_set(tmp_path):
    full, full_model = _fit_adaptive(tmp_path / "full", 4)
    _fit_adaptive(tmp_path / "half", 2)
    middle = tmp_path / "half/last.ckpt"
    saved = torch.load(middle, weights_only=True)["PDEDataModule"]["collocation_points"]
    assert saved.shape == (64 + 4, 2)  # refined once, at the start of epoch 1
    resumed, resumed_model = _fit_adaptive(tmp_path / "resumed", 4, ckpt_path=middle)
    assert full.collocation_points.shape == (64 + 3 * 4, 2)
    assert torch.equal(resumed.collocation_points, full.collocation_points)
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_adaptive_mode_errors_and_default_state():
    plain = data(Helmholtz())
    assert plain.state_dict() == {}  # checkpoints without adaptive mode are as before
    with pytest.raises(ValueError, match=r"needs PDEDataModule\(adaptive=True\).*Set adaptive"):
        _ = plain.collocation_points
    adaptive = data(Helmholtz(), adaptive=True)
    with pytest.raises(ValueError, match=r"must be a \(P, 2\) tensor.*shape \(3,\)"):
        adaptive.collocation_points = torch.zeros(3)
    with pytest.raises(ValueError, match="adaptive must be True or False"):
        data(Helmholtz(), adaptive="yes")
    with pytest.raises(ValueError, match="RAR: add must be a positive integer, got 0"):
        RAR(add=0)


def test_callback_needs_an_adaptive_data_module(tmp_path):
    with pytest.raises(ValueError, match=r"R3Sampling refines .*without adaptive=True; fit"):
        trainer(tmp_path, [R3Sampling()], max_epochs=1).fit(task(), data(Helmholtz()))


def test_adaptive_batches_use_the_whole_set_and_shard_it_by_rank():
    module = data(Helmholtz(), adaptive=True)
    batch = next(iter(module.train_dataloader()))
    assert torch.equal(batch["interior"], module.collocation_points)
    assert batch["boundary"].shape == (32, 2)


# ---- loss weighting -------------------------------------------------------------------


def _losses(net, problem, batch):
    interior = batch["interior"].clone().requires_grad_(True)
    residual = problem.residual(net, interior)
    boundary = batch["boundary"]
    boundary_loss = F.mse_loss(net(boundary), problem.boundary_values(boundary))
    return residual, interior, boundary_loss


def _by_backward(loss: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
    """``|grad loss|`` over every parameter entry, through ``.backward()`` into ``.grad``."""
    net.zero_grad()
    loss.backward(retain_graph=True)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in net.parameters()]
    return torch.cat([g.reshape(-1) for g in grads]).abs()


def test_annealing_weight_equals_the_closed_form():
    problem = Helmholtz()
    model = task(loss_weighting="annealing", loss_weighting_kwargs={"alpha": 0.3})
    model.net.double()
    model.problem = problem
    batch = {k: v.double() for k, v in data(problem).train_dataloader().dataset[0].items()}
    residual, _, boundary_loss = _losses(model.net, problem, batch)
    residual_loss = residual.square().mean()
    ratio = (
        _by_backward(residual_loss, model.net).max() / _by_backward(boundary_loss, model.net).mean()
    )
    expected = 0.7 * 10.0 + 0.3 * float(ratio)
    model.net.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_loss(batch)  # global step 0: an update step
    weight = float(model.loss_weighting.weight)
    assert weight == pytest.approx(expected, rel=1e-12)
    assert float(loss) == pytest.approx(float(residual_loss + expected * boundary_loss), rel=1e-12)
    assert "loss_weighting.weight" in model.state_dict()  # lambda is in checkpoints
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.training_loss(batch, record=False)  # L-BFGS line search: no update
    assert float(model.loss_weighting.weight) == weight


def test_annealing_moves_only_every_n_steps():
    annealing = GradientAnnealing(alpha=1.0, every_n_steps=5)
    net = KAN([2, 3, 1], basis="chebyshev").double()
    problem = Helmholtz()
    batch = {k: v.double() for k, v in data(problem).train_dataloader().dataset[0].items()}
    residual, interior, boundary_loss = _losses(net, problem, batch)
    params = list(net.parameters())
    annealing(residual, interior, boundary_loss, 2.0, WeightingContext(params, step=3))
    assert float(annealing.weight) == 2.0  # started at boundary_weight, step 3 is no update
    annealing(residual, interior, boundary_loss, 2.0, WeightingContext(params, step=5))
    ratio = GradientAnnealing.gradient_ratio(residual.square().mean(), boundary_loss, params)
    assert float(annealing.weight) == pytest.approx(float(ratio), rel=1e-12)


def test_causal_weights_equal_exp_of_the_cumulative_loss():
    causal = CausalWeighting(bins=4, eps=2.0)
    causal.bind(Burgers())  # t in [0, 1]: bins of width 1/4
    t = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.7, 0.95, 1.0], dtype=torch.float64)
    interior = torch.stack([torch.zeros_like(t), t], dim=1)
    residual = torch.tensor([1.0, 2.0, 0.5, 0.3, -0.4, 0.2, 0.6], dtype=torch.float64)[:, None]
    # bins: [0, .25): 1, 2; [.25, .5): 0.5; [.5, .75): 0.3, -0.4; [.75, 1]: 0.2, 0.6
    losses = [2.5, 0.25, 0.125, 0.2]
    weights = [1.0, math.exp(-2 * 2.5), math.exp(-2 * 2.75), math.exp(-2 * 2.875)]
    got_losses, got_weights = causal.bin_losses(residual, interior, WeightingContext([]))
    assert got_losses.tolist() == pytest.approx(losses, rel=1e-14)
    assert got_weights.tolist() == pytest.approx(weights, rel=1e-14)
    boundary_loss = torch.tensor(0.5, dtype=torch.float64)
    loss, logs = causal(residual, interior, boundary_loss, 3.0, WeightingContext([]))
    expected = sum(w * v for w, v in zip(weights, losses, strict=True)) / 4 + 1.5
    assert float(loss) == pytest.approx(expected, rel=1e-14)
    assert float(logs["train/causal_min_weight"]) == pytest.approx(weights[-1], rel=1e-14)
    # an empty bin has loss 0 and passes the weight on unchanged
    losses, weights = causal.bin_losses(residual[:3], interior[:3], WeightingContext([]))
    assert losses.tolist() == pytest.approx([2.5, 0.25, 0.0, 0.0])
    assert weights[2] == weights[3]


def test_causal_weights_need_a_time_coordinate():
    with pytest.raises(ValueError, match=r"has no time coordinate \(its time_dims is empty\)"):
        get_loss_weighting("causal").bind(Helmholtz())


@pytest.mark.parametrize(
    ("weighting", "kwargs", "message"),
    [
        ("anealing", None, r"one of \['annealing', 'causal', 'fixed'\].*did you mean 'annealing'"),
        ("annealing", {"beta": 1}, r"has \['beta'\] that .*accepts \['alpha', 'every_n_steps'\]"),
        ("annealing", {"alpha": 1.5}, r"alpha must be a number in \(0, 1.0\], got 1.5"),
        ("causal", {"bins": 1}, r"bins must be an integer >= 2, got 1"),
        (CausalWeighting(), {"bins": 3}, r"given with a LossWeighting instance"),
    ],
)
def test_bad_loss_weighting_options(weighting, kwargs, message):
    with pytest.raises(ValueError, match=message):
        task(loss_weighting=weighting, loss_weighting_kwargs=kwargs)


class _Objective(L.Callback):
    """The fixed-weight objective on one held-out batch at fit start and end."""

    def __init__(self, problem) -> None:
        self.batch = data(problem, seed=99).train_dataloader().dataset[0]
        self.values: list[float] = []

    def _measure(self, pl_module) -> None:
        residual, _, boundary_loss = _losses(pl_module.net, pl_module.problem, self.batch)
        self.values.append(float(residual.square().mean() + 10 * boundary_loss))

    def on_train_start(self, trainer, pl_module) -> None:
        self._measure(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._measure(pl_module)


@pytest.mark.parametrize(
    ("problem", "options", "callbacks"),
    [
        (Helmholtz(a2=1.0), {}, []),
        (Helmholtz(a2=1.0), {"loss_weighting": "annealing"}, []),
        (Burgers(), {"loss_weighting": "causal"}, []),
        (Helmholtz(a2=1.0), {}, [R3Sampling()]),
        (Helmholtz(a2=1.0), {}, [RAR(candidates=500, add=16)]),
    ],
    ids=["fixed", "annealing", "causal", "r3", "rar"],
)
def test_short_fit_with_each_option_lowers_the_loss(tmp_path, problem, options, callbacks):
    objective = _Objective(problem)
    module = data(problem, adaptive=bool(callbacks), steps_per_epoch=10)
    model = task(optimizer=lambda p: torch.optim.Adam(p, lr=0.02), **options)
    trainer(tmp_path, [*callbacks, objective], max_epochs=3).fit(model, module)
    first, last = objective.values
    assert last < 0.7 * first, objective.values
    logged = model.trainer.callback_metrics
    assert "train/boundary_weight" in logged
    if options.get("loss_weighting") == "causal":
        assert 0 < float(logged["train/causal_min_weight"]) <= 1


def test_causal_r3_config_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/pde_burgers_causal.yaml"),
            "--trainer.max_epochs=2",
            "--trainer.check_val_every_n_epoch=1",
            "--model.init_args.lbfgs_epochs=0",
            "--data.init_args.steps_per_epoch=2",
            "--trainer.log_every_n_steps=1",
        ]
    )
    metrics = (tmp_path / "runs/pde_burgers_causal/version_0/metrics.csv").read_text()
    assert "train/causal_min_weight" in metrics and "collocation/kept" in metrics


def test_resume_of_a_resampling_run_draws_the_uninterrupted_points(tmp_path):
    """Without adaptive mode too: the first epoch after a resume draws its own epoch's
    points (Lightning builds that epoch's iterator before it calls ``set_epoch``)."""

    class Boundary(L.Callback):
        def __init__(self) -> None:
            self.seen: list[torch.Tensor] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.seen.append(batch["boundary"].clone())

    def fit(folder: Path, epochs: int, ckpt_path: Path | None = None) -> Boundary:
        record = Boundary()
        checkpoint = ModelCheckpoint(dirpath=folder, save_last=True)
        trainer(folder, [record, checkpoint], max_epochs=epochs).fit(
            task(), data(Helmholtz()), ckpt_path=ckpt_path
        )
        return record

    full = fit(tmp_path / "full", 3)
    fit(tmp_path / "half", 2)
    resumed = fit(tmp_path / "resumed", 3, ckpt_path=tmp_path / "half/last.ckpt")
    assert len(full.seen) == 6 and len(resumed.seen) == 2
    assert not torch.equal(full.seen[4], full.seen[0])  # new points every epoch
    for a, b in zip(full.seen[4:], resumed.seen, strict=True):
        assert torch.equal(a, b)


def ddp_job(out: Path) -> None:
    """Two processes: R3 + RAR with annealing on Helmholtz, causal weighting on Burgers."""
    jobs = {
        "adaptive": (Helmholtz(), {"loss_weighting": "annealing"}, True),
        "causal": (Burgers(), {"loss_weighting": "causal"}, False),
    }
    for name, (problem, options, adaptive) in jobs.items():
        L.seed_everything(0)
        module = data(problem, adaptive=adaptive)
        callbacks = [R3Sampling(), RAR(candidates=200, add=4)] if adaptive else []
        model = task(loss_weighting_kwargs={"every_n_steps": 1} if adaptive else None, **options)
        run = L.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            max_epochs=3,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            log_every_n_steps=1,
        )
        run.fit(model, module)
        saved = {
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "logged": {k: float(v) for k, v in run.callback_metrics.items()},
        }
        if adaptive:
            saved["points"] = module.collocation_points
        torch.save(saved, out / f"{name}-rank{run.global_rank}.pt")


@pytest.mark.slow
def test_two_process_ddp_keeps_points_and_weights_identical(tmp_path):
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("adaptive", "causal"):
        first, second = (torch.load(tmp_path / f"{name}-rank{r}.pt") for r in (0, 1))
        shared = [k for k in first["logged"] if "weight" in k or k.startswith("collocation/")]
        assert len(shared) >= (4 if name == "adaptive" else 2), shared
        assert [first["logged"][k] for k in shared] == [second["logged"][k] for k in shared]
        for key, value in first["state"].items():
            torch.testing.assert_close(second["state"][key], value, rtol=0, atol=0, msg=key)
        if name == "adaptive":
            assert first["points"].shape == (64 + 2 * 4, 2)
            assert torch.equal(first["points"], second["points"])
            assert "loss_weighting.weight" in first["state"]
            assert first["logged"]["train/boundary_weight"] != 10.0  # it moved
        else:
            assert 0 < first["logged"]["train/causal_min_weight"] < 1


if __name__ == "__main__":
    ddp_job(Path(sys.argv[1]))
    close_process_group()  # together, before exit (gloo may abort otherwise)
