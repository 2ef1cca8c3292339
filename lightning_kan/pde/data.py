"""``PDEDataModule``: seeded collocation points for training, an exact-solution test grid."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lightning_kan.data.loading import evaluation_loader
from lightning_kan.pde.problems import PDEProblem
from lightning_kan.pde.sampling import Sampler as PointSampler
from lightning_kan.pde.sampling import get_sampler

__all__ = ["PDEDataModule", "observe"]

#: the observations' generator is seeded by this plus the seed (batch ``i`` uses
#: ``seed * 1_000_003 + i``), so they never share a stream with collocation points
OBSERVATION_STREAM = 1 << 40


class _Pool:
    """The adaptive mode's interior points ``(P, d)``: one set, shared by the loader's
    dataset and the data module, replaced by adaptive-collocation callbacks."""

    def __init__(self, points: torch.Tensor) -> None:
        self.points = points


class _Collocation(Dataset):
    """Item ``index`` is one full training batch ``{"interior", "boundary"}``, drawn from a
    generator seeded by ``(seed, index)``: the points depend on nothing else, so runs
    and resumed runs see the same points. With a ``pool`` (adaptive mode) the interior
    points are this process's share of the pool's current points instead.

    ``indexed``: the items are fixed sets (no resampling, no pool), and item ``index``
    also carries ``"interior_index" (N,)``, its points' places ``index * N + i`` in the
    fixed collocation set (pointwise loss weights key on them). ``observations``: the
    ``(points (K, d), values (K, 1))`` every item carries as ``"observed"`` and
    ``"observed_values"`` (this process's share, ``r, r + n, ...``)."""

    def __init__(
        self,
        problem: PDEProblem,
        interior: int,
        boundary: int,
        seed: int,
        length: int,
        sampler: PointSampler,
        pool: _Pool | None = None,
        rank: int = 0,
        world_size: int = 1,
        indexed: bool = False,
        observations: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        self.problem, self.interior, self.boundary = problem, interior, boundary
        self.seed, self.length, self.sampler = seed, length, sampler
        self.pool, self.rank, self.world_size = pool, rank, world_size
        self.indexed, self.observations = indexed, observations

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        if self.pool is None:
            interior = self.problem.sample_interior(self.interior, generator, self.sampler)
        else:
            interior = self.pool.points[self.rank :: self.world_size]
        batch = {
            "interior": interior,
            "boundary": self.problem.sample_boundary(self.boundary, generator, self.sampler),
        }
        if self.indexed:
            batch["interior_index"] = torch.arange(self.interior) + index * self.interior
        if self.observations is not None:
            points, values = self.observations
            share = slice(self.rank, None, self.world_size)
            batch["observed"], batch["observed_values"] = points[share], values[share]
        return batch


def observe(
    problem: PDEProblem, count: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``count`` noisy samples ``(points (K, d), values (K, 1))`` of ``problem.exact``:
    uniform points of the domain, values ``exact + noise * rms(exact) * z`` (computed in
    float64, returned in the points' dtype); a generator seeded by ``seed`` alone, in a
    stream the collocation batches never use. ``count = 0``: ``None``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"observations must be an integer >= 0 (how many samples of the exact solution "
            f"the batches carry; 0: none), got {count!r}."
        )
    ok = not isinstance(noise, bool) and isinstance(noise, int | float) and noise >= 0
    if not ok or not math.isfinite(noise):
        raise ValueError(
            f"noise must be a finite number >= 0 (the observations' noise level relative to "
            f"the RMS of the exact solution there; 0.01 is 1 %), got {noise!r}."
        )
    if count == 0:
        if noise:
            raise ValueError(
                f"noise={noise!r} is given without observations, so it would be ignored; set "
                "observations=N (samples of the exact solution) or drop noise."
            )
        return None
    generator = torch.Generator().manual_seed(OBSERVATION_STREAM + seed)
    points = problem.sample_interior(count, generator, "random")
    exact = problem.exact(points.double())
    scale = noise * exact.square().mean().sqrt()
    values = exact + scale * torch.randn(exact.shape, generator=generator, dtype=exact.dtype)
    return points, values.to(points.dtype)


class _EpochBatches(Sampler[int]):
    """Yields ``epoch * steps + i`` (new points every epoch) or ``i`` (fixed points).

    The epoch is the fitting trainer's epoch when ``trainer()`` gives one (read when the
    loader starts an epoch), else the last :meth:`set_epoch`. Lightning creates the first
    epoch's iterator of a resumed run before it calls ``set_epoch``, and under DDP it
    calls ``set_epoch`` on its distributed wrapper only, so ``set_epoch`` alone would
    replay epoch 0's points there.
    """

    def __init__(
        self, steps: int, resample: bool, trainer: Callable[[], L.Trainer | None] = lambda: None
    ) -> None:
        self.steps, self.resample, self.epoch, self.trainer = steps, resample, 0, trainer

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def current_epoch(self) -> int:
        trainer = self.trainer()
        if trainer is None or not trainer.training:
            return self.epoch
        return trainer.fit_loop.epoch_progress.current.processed

    def __iter__(self) -> Iterator[int]:
        offset = self.current_epoch() * self.steps if self.resample else 0
        return iter(range(offset, offset + self.steps))

    def __len__(self) -> int:
        return self.steps


class PDEDataModule(L.LightningDataModule):
    """Collocation points of a :class:`PDEProblem` and its exact solution on a test grid.

    Args:
        problem: the PDE (its domain, residual, boundary data and exact solution).
        num_interior, num_boundary: points per training step.
        steps_per_epoch: training steps (full batches) per epoch.
        resample: draw new points every epoch (else the same ``steps_per_epoch`` sets).
        test_points_per_dim: the validation/test grid has this many points per axis.
        seed: the points are a function of the seed (and epoch) only.
        sampler: how points are placed in the problem's ``domain``: ``random`` (uniform,
            the default), ``grid``, ``latin``, ``sobol``, ``halton``, ``chebyshev``
            (:data:`~lightning_kan.pde.sampling.SAMPLERS`). ``grid`` and ``chebyshev`` are
            the same every step (and on a box need ``num_interior = m ** d``).
        adaptive: keep one persistent set of interior points (``num_interior`` drawn
            with ``sampler`` from ``seed`` at the start), used whole in every step and
            changed only by an adaptive-collocation callback
            (:class:`~lightning_kan.pde.collocation.R3Sampling`,
            :class:`~lightning_kan.pde.collocation.RAR`); the set is
            :attr:`collocation_points` and travels in checkpoints (this module's
            ``state_dict``), so a resumed run continues with the points it had. Boundary
            points are drawn per step as without it (``resample`` applies to them).
        observations: ``K`` samples of the exact solution, for inverse problems
            (``PINNTask(unknowns=...)``) and data terms, the same in every step: points
            drawn uniformly in the domain from ``seed`` (a stream of their own), values
            ``exact(x) + noise * rms(exact(x)) * z`` with standard normal ``z`` from the
            same generator. Batches carry them as ``"observed" (K, d)`` and
            ``"observed_values" (K, 1)``; 0 (default): none.
        noise: the observations' relative noise level (>= 0; ``0.01`` is 1 % noise).

    With ``resample=False`` and ``adaptive=False`` the interior points are
    ``steps_per_epoch`` fixed sets of ``num_interior``, :attr:`num_fixed_points` in all,
    and batches carry ``"interior_index" (N,)``, their places in that set (pointwise loss
    weights key on them).

    ``num_features`` (the problem's dimension) and ``num_outputs`` (1) size the network.
    Under DDP, Lightning's distributed sampler shards the point sets between processes
    (adaptive mode: process ``r`` of ``n`` trains on the points ``r, r + n, ...``).
    """

    def __init__(
        self,
        problem: PDEProblem,
        num_interior: int = 2000,
        num_boundary: int = 400,
        steps_per_epoch: int = 10,
        resample: bool = True,
        test_points_per_dim: int = 101,
        seed: int = 0,
        sampler: str = "random",
        adaptive: bool = False,
        observations: int = 0,
        noise: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in [
            ("num_interior", num_interior),
            ("num_boundary", num_boundary),
            ("steps_per_epoch", steps_per_epoch),
            ("test_points_per_dim", test_points_per_dim),
        ]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.problem = problem
        self.num_interior, self.num_boundary = num_interior, num_boundary
        self.steps_per_epoch, self.resample = steps_per_epoch, resample
        self.test_points_per_dim, self.seed = test_points_per_dim, seed
        self.sampler = get_sampler(sampler)
        batch = _Collocation(problem, num_interior, num_boundary, seed, 1, self.sampler)
        first = batch[0]  # counts a sampler cannot take (a grid's m ** d) fail here, not in fit
        if not isinstance(adaptive, bool):
            raise ValueError(
                f"adaptive must be True or False, got {adaptive!r}: True keeps one "
                "persistent interior point set for adaptive-collocation callbacks (R3Sampling, "
                "RAR), False draws new points per step as `resample` says."
            )
        self.adaptive = adaptive
        self._pool = _Pool(first["interior"]) if adaptive else None
        self.observations, self.noise = observations, noise
        self._observed = observe(problem, observations, noise, seed)

    @property
    def num_fixed_points(self) -> int | None:
        """How many fixed, indexed interior points the training batches cover
        (``steps_per_epoch * num_interior``), or ``None`` when they change between epochs
        (``resample=True``) or are adaptive."""
        if self.resample or self.adaptive:
            return None
        return self.steps_per_epoch * self.num_interior

    @property
    def observed(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The observations ``(points (K, d), values (K, 1))`` of every process, or None."""
        return self._observed

    @property
    def collocation_points(self) -> torch.Tensor:
        """The adaptive mode's current interior points ``(P, d)`` (every process's copy)."""
        return self._require_pool("collocation_points").points

    @collocation_points.setter
    def collocation_points(self, points: torch.Tensor) -> None:
        pool = self._require_pool("collocation_points")
        if (
            not isinstance(points, torch.Tensor)
            or points.ndim != 2
            or points.shape[1] != self.problem.dim
            or points.shape[0] < 1
        ):
            shape = tuple(points.shape) if isinstance(points, torch.Tensor) else None
            raise ValueError(
                f"collocation_points must be a (P, {self.problem.dim}) tensor of P >= 1 "
                f"points of {self.problem!r}, got {type(points).__name__} of shape {shape}; "
                "pass the new interior set as one 2-D tensor."
            )
        pool.points = points.detach().to("cpu", pool.points.dtype)

    def _require_pool(self, caller: str) -> _Pool:
        if self._pool is None:
            raise ValueError(
                f"{caller} needs PDEDataModule(adaptive=True) (one persistent interior point "
                "set that adaptive collocation refines); this data module draws new points "
                "every step. Set adaptive=True (in a config: data.init_args.adaptive: true)."
            )
        return self._pool

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The adaptive mode's point set (nothing otherwise: the points are a function of
        the seed and the epoch)."""
        return {} if self._pool is None else {"collocation_points": self._pool.points}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        if self._pool is not None and "collocation_points" in state_dict:
            self.collocation_points = state_dict["collocation_points"]

    @property
    def num_features(self) -> int:
        return self.problem.dim

    @property
    def num_outputs(self) -> int:
        return 1

    def train_dataloader(self) -> DataLoader:
        dataset = _Collocation(
            self.problem,
            self.num_interior,
            self.num_boundary,
            self.seed,
            self.steps_per_epoch,
            self.sampler,
            self._pool,
            *self._rank_and_world(),
            indexed=self.num_fixed_points is not None,
            observations=self._observed,
        )
        sampler = _EpochBatches(self.steps_per_epoch, self.resample, lambda: self.trainer)
        return DataLoader(dataset, batch_size=None, sampler=sampler)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def val_dataloader(self) -> DataLoader:
        grid = self.problem.test_grid(self.test_points_per_dim)
        exact = self.problem.exact(grid)
        return evaluation_loader(TensorDataset(grid.float(), exact.float()), 16384, split="val")

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
