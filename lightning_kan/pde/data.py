"""``PDEDataModule``: seeded collocation points for training, an exact-solution test grid."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lightning_kan.data.loading import evaluation_loader
from lightning_kan.pde.problems import PDEProblem
from lightning_kan.pde.sampling import Sampler as PointSampler
from lightning_kan.pde.sampling import get_sampler

__all__ = ["PDEDataModule"]


class _Collocation(Dataset):
    """Item ``index`` is one full training batch ``{"interior", "boundary"}``, drawn from a
    generator seeded by ``(seed, index)``: the points depend on nothing else, so runs
    and resumed runs see the same points."""

    def __init__(
        self,
        problem: PDEProblem,
        interior: int,
        boundary: int,
        seed: int,
        length: int,
        sampler: PointSampler,
    ):
        self.problem, self.interior, self.boundary = problem, interior, boundary
        self.seed, self.length, self.sampler = seed, length, sampler

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return {
            "interior": self.problem.sample_interior(self.interior, generator, self.sampler),
            "boundary": self.problem.sample_boundary(self.boundary, generator, self.sampler),
        }


class _EpochBatches(Sampler[int]):
    """Yields ``epoch * steps + i`` (new points every epoch) or ``i`` (fixed points)."""

    def __init__(self, steps: int, resample: bool) -> None:
        self.steps, self.resample, self.epoch = steps, resample, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * self.steps if self.resample else 0
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

    ``num_features`` (the problem's dimension) and ``num_outputs`` (1) size the network.
    Under DDP, Lightning's distributed sampler shards the point sets between processes.
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
        batch[0]  # counts a sampler cannot take (a grid's m ** d) fail here, not in fit

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
        )
        sampler = _EpochBatches(self.steps_per_epoch, self.resample)
        return DataLoader(dataset, batch_size=None, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        grid = self.problem.test_grid(self.test_points_per_dim)
        exact = self.problem.exact(grid)
        return evaluation_loader(TensorDataset(grid.float(), exact.float()), 16384, split="val")

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
