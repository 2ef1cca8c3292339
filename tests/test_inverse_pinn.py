"""Inverse problems: PDE parameters learned from seeded, noisy observations of the solution."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lightning_kan.callbacks import ModelCheckpoint
from lightning_kan.cli import main
from lightning_kan.nets import KAN
from lightning_kan.pde import Burgers, Elliptic, Helmholtz, PDEDataModule, Unknowns
from lightning_kan.pde.data import OBSERVATION_STREAM
from lightning_kan.tasks import PINNTask

ROOT = Path(__file__).resolve().parents[1]


def bound(initial: dict, problem) -> Unknowns:
    unknowns = Unknowns(initial)
    unknowns.bind(problem)
    return unknowns


def trainer(folder: Path, max_epochs: int, callbacks=(), **kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
        log_every_n_steps=1,
    )
    return L.Trainer(**{**options, **kwargs})


def burgers_data(**kwargs) -> PDEDataModule:
    options = dict(num_interior=256, num_boundary=128, steps_per_epoch=5, test_points_per_dim=21)
    options.update(observations=200, noise=0.01)
    return PDEDataModule(Burgers(nu=0.1), **{**options, **kwargs})


def burgers_task(**kwargs) -> PINNTask:
    torch.manual_seed(0)
    net = KAN([2, 8, 8, 1], basis="chebyshev", basis_kwargs={"degree": 5})
    options = dict(unknowns={"nu": 0.3}, data_weight=10.0)
    return PINNTask(net, optimizer=lambda p: torch.optim.Adam(p, lr=0.02), **{**options, **kwargs})


# ---- the unknowns ---------------------------------------------------------------------


def test_unknowns_start_at_the_guess_and_stay_above_their_bound():
    burgers = bound({"nu": 0.05}, Burgers())
    elliptic = bound({"p": 0.5}, Elliptic())
    helmholtz = bound({"k": -2.0}, Helmholtz())  # no bound declared: the raw value itself
    torch.testing.assert_close(burgers.values()["nu"], torch.tensor(0.05))
    torch.testing.assert_close(elliptic.values()["p"], torch.tensor(0.5))
    assert helmholtz.values()["k"] is helmholtz.raw["k"]
    assert float(helmholtz.raw["k"].detach()) == -2.0
    with torch.no_grad():
        burgers.raw["nu"].fill_(-10.0)
        elliptic.raw["p"].fill_(-10.0)
    # lower + softplus(raw): far below the guess, still above the bound
    softplus = math.log1p(math.exp(-10.0))
    assert float(burgers.values()["nu"].detach()) == pytest.approx(softplus, rel=1e-6)
    assert -1 < float(elliptic.values()["p"].detach()) < -1 + 2 * softplus
    assert burgers.truth == {"nu": 0.05} and set(burgers.state_dict()) == {"raw.nu", "nu_lower"}
    assert Unknowns().state_dict() == {}  # a forward problem: checkpoints as before


def test_the_operator_reads_the_unknown_and_the_data_keeps_the_true_value():
    """Elliptic's residual of the exact solution is linear in ``p_hat - p`` exactly when
    its source stays at the true ``p`` (a source that moved would cancel part of it)."""
    problem = Elliptic(p=1.0)
    x = torch.rand(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def residual(guess: float) -> torch.Tensor:
        view = bound({"p": guess}, problem).problem(problem)
        points = x.clone().requires_grad_(True)
        torch.testing.assert_close(view.exact(x), problem.exact(x))
        return view.residual(problem.exact, points).detach()

    torch.testing.assert_close(residual(2.0), 2 * residual(1.5), rtol=1e-6, atol=1e-9)
    assert residual(1.0).abs().max() < 1e-5  # the guess at the truth solves it (float32 p)
    assert problem.p == 1.0 and isinstance(problem.p, float)  # the problem is untouched


def test_a_planted_solution_pins_nu_down_to_float32():
    """With the exact solution as the network, the residual is linear in nu: least
    squares over nu alone has the true nu as its only minimiser."""
    problem = Burgers(nu=0.2)
    unknowns = bound({"nu": 0.05}, problem)
    x = problem.sample_interior(500, torch.Generator().manual_seed(0)).double()
    x.requires_grad_(True)
    optimizer = torch.optim.Adam(unknowns.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        unknowns.problem(problem).residual(problem.exact, x).square().mean().backward()
        optimizer.step()
    assert abs(float(unknowns.values()["nu"].detach()) - 0.2) < 1e-5


@pytest.mark.parametrize(
    ("initial", "problem", "message"),
    [
        ({"mu": 0.1}, Burgers(), r"'mu', which is not a numeric parameter.*\['nu'\]"),
        ({"nu": -0.1}, Burgers(), r"nu=-0.1 must be > 0.0, the bound"),
        ({"p": -1.0}, Elliptic(), r"p=-1.0 must be > -1.0"),
        ({"nu": "small"}, Burgers(), "must map PDE parameter names to initial guesses"),
        ({"nu": math.inf}, Burgers(), "must be finite"),
    ],
)
def test_bad_unknowns(initial, problem, message):
    with pytest.raises(ValueError, match=message):
        bound(initial, problem)


# ---- the observations -----------------------------------------------------------------


def test_observations_are_seeded_noisy_samples_of_the_exact_solution():
    problem = Burgers(nu=0.1)
    module = PDEDataModule(
        problem,
        num_interior=16,
        num_boundary=8,
        test_points_per_dim=3,
        observations=50,
        noise=0.05,
        seed=3,
    )
    points, values = module.observed
    generator = torch.Generator().manual_seed(OBSERVATION_STREAM + 3)
    expected_points = problem.sample_interior(50, generator)
    exact = problem.exact(points.double())
    noise = torch.randn(exact.shape, generator=generator, dtype=torch.float64)
    expected = exact + 0.05 * exact.square().mean().sqrt() * noise
    assert torch.equal(points, expected_points) and points.shape == (50, 2)
    torch.testing.assert_close(values, expected.float(), rtol=0, atol=0)
    clean = PDEDataModule(
        problem, num_interior=64, num_boundary=8, test_points_per_dim=3, observations=50, seed=3
    )
    # their own stream: the same points whatever the collocation sizes; no noise: exact
    assert torch.equal(clean.observed[0], points)
    torch.testing.assert_close(clean.observed[1], exact.float(), rtol=0, atol=0)
    for batch in module.train_dataloader():  # every batch carries all of them
        assert torch.equal(batch["observed"], points)
        assert torch.equal(batch["observed_values"], values)
    assert "observed" not in next(iter(PDEDataModule(problem).train_dataloader()))


def test_each_process_gets_its_share_of_the_observations():
    module = burgers_data(observations=9)
    dataset = module.train_dataloader().dataset
    dataset.rank, dataset.world_size = 1, 2
    points, values = module.observed
    assert torch.equal(dataset[0]["observed"], points[1::2])
    assert torch.equal(dataset[0]["observed_values"], values[1::2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"observations": -1}, "observations must be an integer >= 0"),
        ({"observations": 10, "noise": -0.1}, "noise must be a finite number >= 0"),
        ({"noise": 0.01}, "noise=0.01 is given without observations, so it would be ignored"),
    ],
)
def test_bad_observation_options(options, message):
    with pytest.raises(ValueError, match=message):
        PDEDataModule(Burgers(), num_interior=8, num_boundary=4, **options)


def test_unknowns_need_observations(tmp_path):
    module = burgers_data(observations=0, noise=0.0)
    with pytest.raises(ValueError, match=r"learned from observations.*observations=N"):
        trainer(tmp_path, 1).fit(burgers_task(), module)


# ---- fitting --------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """One intra-op thread (tiny GEMMs: more threads only contend on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_short_run_recovers_nu_within_half_a_percent_of_its_scale(tmp_path, one_thread):
    """Burgers nu = 0.1 from a guess of 0.3, 200 observations with 1 % noise: 12 Adam
    steps, then 4 L-BFGS epochs of 3 steps (about 6 s on one core); nu within 0.005 of
    the truth (measured: 0.1011)."""
    model = burgers_task(lbfgs_epochs=4)
    run = trainer(tmp_path, 8, check_val_every_n_epoch=8)
    run.fit(model, burgers_data(steps_per_epoch=3))
    logged = {k: float(v) for k, v in run.callback_metrics.items()}
    nu = float(model.unknowns.values()["nu"])
    assert abs(nu - 0.1) < 0.005, nu
    assert logged["val/nu"] == pytest.approx(nu)
    assert abs(logged["train/nu"] - 0.1) < 0.005  # logged before the last L-BFGS step
    assert logged["val/nu_error"] == pytest.approx(abs(nu - 0.1), abs=1e-7)  # float32
    assert logged["val/rel_l2"] < 0.01 and "train/data" in logged


def test_the_data_term_is_the_weighted_misfit_of_the_observations():
    problem = Burgers(nu=0.1)
    batch = next(iter(burgers_data(observations=20).train_dataloader()))
    losses = {}
    for weight in (0.0, 3.0):
        model = burgers_task(problem=problem, initial_grid=None, data_weight=weight)
        model.unknowns.bind(problem)
        losses[weight] = model.training_loss(dict(batch), record=False)
    misfit = F.mse_loss(model.net(batch["observed"]), batch["observed_values"])
    torch.testing.assert_close(losses[3.0], losses[0.0] + 3.0 * misfit)
    with pytest.raises(ValueError, match="data_weight must be a finite number >= 0"):
        burgers_task(data_weight=math.nan)


def test_resume_keeps_the_unknowns(tmp_path):
    def fit(folder: Path, epochs: int, ckpt_path: Path | None = None) -> PINNTask:
        model = burgers_task()
        checkpoint = ModelCheckpoint(dirpath=folder, save_last=True)
        run = trainer(folder, epochs, [checkpoint], limit_val_batches=0)
        run.fit(model, burgers_data(steps_per_epoch=2), ckpt_path=ckpt_path)
        return model

    full = fit(tmp_path / "full", 4)
    fit(tmp_path / "half", 2)
    saved = torch.load(tmp_path / "half/last.ckpt", weights_only=True)["state_dict"]
    assert float(saved["unknowns.nu_lower"]) == 0.0 and "unknowns.raw.nu" in saved
    resumed = fit(tmp_path / "resumed", 4, ckpt_path=tmp_path / "half/last.ckpt")
    assert float(full.unknowns.values()["nu"]) != 0.3  # it moved
    assert torch.equal(resumed.unknowns.raw["nu"], full.unknowns.raw["nu"])
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    loaded = PINNTask.load_from_checkpoint(
        tmp_path / "full/last.ckpt",
        net=KAN([2, 8, 8, 1], basis="chebyshev", basis_kwargs={"degree": 5}),
    )
    assert torch.equal(loaded.unknowns.values()["nu"], full.unknowns.values()["nu"])


def test_inverse_config_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/pde_burgers_inverse.yaml"),
            "--trainer.max_epochs=2",
            "--trainer.check_val_every_n_epoch=1",
            "--model.init_args.lbfgs_epochs=0",
            "--data.init_args.steps_per_epoch=2",
            "--data.init_args.num_interior=100",
            "--data.init_args.observations=50",
            "--data.init_args.test_points_per_dim=11",
            "--trainer.log_every_n_steps=1",
        ]
    )
    metrics = (tmp_path / "runs/pde_burgers_inverse/version_0/metrics.csv").read_text()
    header = metrics.splitlines()[0].split(",")
    assert {"train/nu", "train/data", "val/nu", "val/nu_error"} <= set(header)
