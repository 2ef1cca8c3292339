"""Adaptive collocation: move the interior points to where the residual is large.

Two callbacks refine the persistent point set of a ``PDEDataModule(adaptive=True)`` at
the start of every ``every_n_epochs``-th epoch (never the first), from the network as it
is then:

- :class:`R3Sampling` (Daw et al. 2023, "Mitigating propagation failures in PINNs"):
  keep the points whose ``|residual|`` is at least the set's mean, redraw the others
  uniformly in the domain (the set keeps its size);
- :class:`RAR` (residual-based adaptive refinement, Lu et al. 2021, DeepXDE): evaluate
  the residual on a fresh uniform candidate set and add its ``add`` largest-residual
  points to the set (which grows, up to ``max_points``).

Rank 0 computes the new set (its random draws come from a generator seeded by the
callback's ``seed`` and the epoch) and broadcasts it, so every DDP process trains on the
same set. The set lives in the data module's ``state_dict``, hence in checkpoints: a run
resumed from the end of an epoch refines from the same weights and the same generator
as the uninterrupted run, and repeats it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_kan.pde.data import PDEDataModule
from lightning_kan.pde.geometry import Geometry
from lightning_kan.pde.problems import Field, PDEProblem
from lightning_kan.pde.sampling import Sampler, get_sampler

__all__ = ["RAR", "AdaptiveCollocation", "R3Sampling", "r3_select", "rar_select", "residual_size"]


def residual_size(
    problem: PDEProblem, u_fn: Field, points: torch.Tensor, chunk_size: int = 4096
) -> torch.Tensor:
    """``|residual| (P,)`` of ``u_fn`` at ``points (P, d)``, in chunks of ``chunk_size``
    points (each its own autograd graph, freed before the next), detached."""
    sizes = []
    for chunk in points.split(chunk_size):
        x = chunk.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            sizes.append(problem.residual(u_fn, x).detach().abs().reshape(-1))
    return torch.cat(sizes)


def r3_select(
    points: torch.Tensor,
    residual: torch.Tensor,
    domain: Geometry,
    generator: torch.Generator,
    sampler: str | Sampler = "random",
) -> torch.Tensor:
    """R3: the points with ``residual >= residual.mean()`` (in their order), then as many
    new points of ``domain`` as were dropped; ``(P, d)`` like ``points``."""
    keep = residual >= residual.mean()
    kept = points[keep]
    dropped = points.shape[0] - kept.shape[0]
    if dropped == 0:
        return kept
    new = domain.sample_interior(dropped, sampler, generator, dtype=points.dtype)
    return torch.cat([kept, new])


def rar_select(candidates: torch.Tensor, residual: torch.Tensor, add: int) -> torch.Tensor:
    """RAR: the ``add`` candidates ``(M, d)`` of largest ``residual (M,)``, largest first."""
    return candidates[residual.topk(min(add, candidates.shape[0])).indices]


def _positive_int(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{owner}: {name} must be a positive integer, got {value!r}; pass an int >= 1."
        )
    return value


class AdaptiveCollocation(Callback, ABC):
    """Base class: every ``every_n_epochs`` epochs (from epoch ``every_n_epochs`` on),
    :meth:`refine` maps the current set to the next one on rank 0, which broadcasts it.

    Args:
        every_n_epochs: how often the set changes.
        seed: seeds the new random points (with the epoch), the same on every process.
        chunk_size: residuals are evaluated this many points at a time.
        sampler: how new points are drawn in the domain (uniform ``random`` by default;
            any stochastic :data:`~lightning_kan.pde.sampling.SAMPLERS` name).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        seed: int = 0,
        chunk_size: int = 4096,
        sampler: str = "random",
    ) -> None:
        name = type(self).__name__
        self.every_n_epochs = _positive_int(every_n_epochs, "every_n_epochs", name)
        self.chunk_size = _positive_int(chunk_size, "chunk_size", name)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"{name}: seed must be an int, got {seed!r}")
        self.seed = seed
        self.sampler = get_sampler(sampler)

    @abstractmethod
    def refine(
        self,
        points: torch.Tensor,
        problem: PDEProblem,
        u_fn: Field,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The next point set from ``points (P, d)`` and what to log about the change."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = trainer.datamodule
        if not isinstance(datamodule, PDEDataModule) or not datamodule.adaptive:
            raise ValueError(
                f"{type(self).__name__} refines the persistent interior points of a "
                "PDEDataModule(adaptive=True), and this fit's datamodule is "
                f"{type(datamodule).__name__ if datamodule is not None else 'missing'}"
                f"{'' if datamodule is None else ' without adaptive=True'}; fit with "
                "datamodule=PDEDataModule(problem, ..., adaptive=True) (in a config: "
                "data.init_args.adaptive: true)."
            )
        if not isinstance(getattr(pl_module, "net", None), torch.nn.Module):
            raise ValueError(
                f"{type(self).__name__} evaluates the residual of the module's network "
                f"`net`, and {type(pl_module).__name__} has none; use PINNTask."
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch == 0 or epoch % self.every_n_epochs:
            return
        datamodule: PDEDataModule = trainer.datamodule
        result = None
        if trainer.is_global_zero:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            # in the module's dtype and device, as a training batch reaches it
            points = datamodule.collocation_points.to(pl_module.device, pl_module.dtype)
            new, logs = self.refine(points, datamodule.problem, pl_module.net, generator)
            result = (new.cpu(), logs)
        new, logs = trainer.strategy.broadcast(result, src=0)
        datamodule.collocation_points = new
        logs = {"collocation/points": float(new.shape[0]), **logs}
        for key, value in logs.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, batch_size=1)

    def _residual(self, problem: PDEProblem, u_fn: Field, points: torch.Tensor) -> torch.Tensor:
        return residual_size(problem, u_fn, points, self.chunk_size)


class R3Sampling(AdaptiveCollocation):
    """Keep the points with ``|residual| >=`` the mean, redraw the rest uniformly
    (:func:`r3_select`); logs the kept fraction ``collocation/kept``."""

    def refine(self, points, problem, u_fn, generator):
        residual = self._residual(problem, u_fn, points)
        new = r3_select(points.cpu(), residual.cpu(), problem.domain, generator, self.sampler)
        kept = int((residual >= residual.mean()).sum())
        return new, {"collocation/kept": kept / points.shape[0]}


class RAR(AdaptiveCollocation):
    """Add the ``add`` largest-residual points of ``candidates`` uniform candidates
    (:func:`rar_select`) every ``every_n_epochs`` epochs, until the set has
    ``max_points`` (``None``: no limit); logs the largest candidate residual
    ``collocation/max_residual``.
    """

    def __init__(
        self,
        candidates: int = 10000,
        add: int = 10,
        max_points: int | None = None,
        every_n_epochs: int = 1,
        seed: int = 0,
        chunk_size: int = 4096,
        sampler: str = "random",
    ) -> None:
        super().__init__(every_n_epochs, seed, chunk_size, sampler)
        self.candidates = _positive_int(candidates, "candidates", "RAR")
        self.add = _positive_int(add, "add", "RAR")
        if max_points is not None:
            max_points = _positive_int(max_points, "max_points", "RAR")
        self.max_points = max_points

    def refine(self, points, problem, u_fn, generator):
        room = self.add if self.max_points is None else self.max_points - points.shape[0]
        if room <= 0:
            return points.cpu(), {}
        candidates = problem.domain.sample_interior(
            self.candidates, self.sampler, generator, dtype=points.dtype
        ).to(points.device)
        residual = self._residual(problem, u_fn, candidates)
        added = rar_select(candidates, residual, min(room, self.add))
        return torch.cat([points, added]).cpu(), {"collocation/max_residual": float(residual.max())}
