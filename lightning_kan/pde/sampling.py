"""Point samplers: strategies that fill the unit cube ``[0, 1]^d``, seeded by a generator.

A geometry maps the unit points onto its interior or boundary; a sampler only decides
where in the cube they lie. ``random`` (uniform, ``torch.rand``), ``latin``, ``sobol``
and ``halton`` (``scipy.stats.qmc``, scrambled) are stochastic: every call draws new
points from the generator. ``grid`` (cell-centred) and ``chebyshev`` (Chebyshev nodes per
axis) are tensor products, the same for every seed, and need ``count = m ** dim``.
Geometries other than boxes keep the sampler's points that fall inside (rejection):
QMC points stay low-discrepancy there, Latin strata hold only on boxes, and a tensor
grid is refined until enough nodes fall inside and ``count`` of them are taken evenly.

Seeds: the points are a function of the ``torch.Generator`` passed in (or of an int
seed), nothing else, so every DDP rank that builds the same generator gets the same
points. The QMC engines are seeded with an integer drawn from that generator.
"""

from __future__ import annotations

import difflib
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

__all__ = [
    "SAMPLERS",
    "Chebyshev",
    "Grid",
    "Halton",
    "Latin",
    "Random",
    "Sampler",
    "Sobol",
    "as_generator",
    "check_count",
    "get_sampler",
]

#: rejection sampling gives up after drawing max(this, 100 * count) candidates
MIN_CANDIDATE_BUDGET = 1 << 22


def _budget(count: int) -> int:
    return max(MIN_CANDIDATE_BUDGET, 100 * count)


def check_count(count: object, name: str = "count") -> int:
    """``count`` as an int >= 1, else a one-paragraph error naming ``name``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(
            f"{name} must be a positive integer (the number of points to sample), got "
            f"{count!r}; pass an int >= 1."
        )
    return count


def as_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU ``torch.Generator``: ``seed`` itself, or a new one seeded with the int."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(
            f"seed must be an int or a torch.Generator, got {seed!r}; the same seed gives "
            "the same points (on every DDP rank)."
        )
    return torch.Generator().manual_seed(seed)


def _int_seed(generator: torch.Generator) -> int:
    """An integer seed for numpy/scipy, drawn from ``generator`` (advances it)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


Draw = Callable[[int], torch.Tensor]
Keep = Callable[[torch.Tensor], torch.Tensor]


class Sampler(ABC):
    """Fills ``[0, 1]^dim`` with ``count`` points; :meth:`select` adds rejection."""

    #: the registry name (``SAMPLERS[name]``)
    name: ClassVar[str]

    @abstractmethod
    def unit(
        self, count: int, dim: int, generator: torch.Generator, dtype: torch.dtype
    ) -> torch.Tensor:
        """``(count, dim)`` points in the unit cube."""

    def select(self, count: int, dim: int, draw: Draw, keep: Keep) -> torch.Tensor:
        """``count`` rows of ``draw(m)`` (``m`` candidate points, each from ``dim`` unit
        coordinates) that pass ``keep``.

        Stochastic samplers draw fresh candidates until enough are kept and return the
        first ``count`` (each draw advances the generator ``draw`` closes over).
        """
        kept: list[torch.Tensor] = []
        total, drawn, size = 0, 0, 2 * count
        while drawn < _budget(count):
            candidates = draw(size)
            accepted = candidates[keep(candidates)]
            kept.append(accepted)
            total, drawn = total + accepted.shape[0], drawn + candidates.shape[0]
            if total >= count:
                return torch.cat(kept)[:count]
            rate = max(total, 1) / drawn
            size = min(int(1.2 * (count - total) / rate) + 16, _budget(count) - drawn + 1)
        raise ValueError(
            f"{self.name} sampling kept {total} of the {count} points asked for from "
            f"{drawn} candidates: the geometry covers almost none of its bounding box (or "
            "its boundary part is empty, e.g. a Difference of equal shapes); check it."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Random(Sampler):
    """Independent uniform points (``torch.rand``); the default and the legacy sampler."""

    name = "random"

    def unit(self, count, dim, generator, dtype):
        return torch.rand(count, dim, generator=generator, dtype=dtype)


class _QMC(Sampler):
    """A scrambled ``scipy.stats.qmc`` engine, seeded from the generator on every call."""

    @abstractmethod
    def engine(self, dim: int, rng: np.random.Generator):
        """The ``scipy.stats.qmc`` engine for ``dim`` axes."""

    def unit(self, count, dim, generator, dtype):
        rng = np.random.default_rng(_int_seed(generator))
        with warnings.catch_warnings():  # Sobol' balance wants 2^k points; any count works
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
            points = self.engine(dim, rng).random(count)
        return torch.from_numpy(points).to(dtype)


class Latin(_QMC):
    """Latin hypercube: each axis split in ``count`` strata, one point in each."""

    name = "latin"

    def engine(self, dim, rng):
        from scipy.stats import qmc

        return qmc.LatinHypercube(dim, rng=rng)


class Sobol(_QMC):
    """Scrambled Sobol' sequence (best balanced for ``count = 2^k``)."""

    name = "sobol"

    def engine(self, dim, rng):
        from scipy.stats import qmc

        return qmc.Sobol(dim, rng=rng)


class Halton(_QMC):
    """Scrambled Halton sequence."""

    name = "halton"

    def engine(self, dim, rng):
        from scipy.stats import qmc

        return qmc.Halton(dim, rng=rng)


class _TensorGrid(Sampler):
    """The tensor product of ``m`` nodes per axis; ``count`` must be ``m ** dim``."""

    @abstractmethod
    def nodes(self, m: int) -> torch.Tensor:
        """``(m,)`` increasing nodes in ``[0, 1]`` (float64)."""

    def side(self, count: int, dim: int) -> int:
        m = max(1, round(count ** (1 / dim)))
        if m**dim != count:
            below = max(1, m if m**dim < count else m - 1)
            low, high = below**dim, (below + 1) ** dim
            raise ValueError(
                f"the {self.name} sampler needs count = m ** {dim} points in {dim} "
                f"dimension(s) (a tensor product of m nodes per axis), got {count}; "
                f"use e.g. {low} or {high}, or a sampler that takes any count "
                "('random', 'latin', 'sobol', 'halton')."
            )
        return m

    def unit(self, count, dim, generator, dtype):
        axis = self.nodes(self.side(count, dim))
        mesh = torch.meshgrid(*[axis] * dim, indexing="ij")
        return torch.stack(mesh, dim=-1).reshape(-1, dim).to(dtype)

    def select(self, count: int, dim: int, draw: Draw, keep: Keep) -> torch.Tensor:
        """Refine the grid until at least ``count`` nodes pass, then take ``count`` of
        them evenly spread in grid order."""
        size, found = count, 0
        while size <= _budget(count):
            size = math.ceil(size ** (1 / dim) - 1e-9) ** dim  # the next m ** dim
            candidates = draw(size)
            accepted = candidates[keep(candidates)]
            found = accepted.shape[0]
            if found >= count:
                index = torch.linspace(0, found - 1, count).round().long()
                return accepted[index]
            size = math.ceil(max(1.3 * count * candidates.shape[0] / max(found, 1), 1.3 * size))
        raise ValueError(
            f"{self.name} sampling found only {found} of the {count} points asked for on "
            f"a grid of {size} nodes: the geometry covers almost none of its bounding box "
            "(or its boundary part is empty, e.g. a Difference of equal shapes); check it."
        )


class Grid(_TensorGrid):
    """Cell-centred uniform nodes ``(k + 1/2) / m`` per axis (none on the cube's faces)."""

    name = "grid"

    def nodes(self, m):
        return (torch.arange(m, dtype=torch.float64) + 0.5) / m


class Chebyshev(_TensorGrid):
    """Chebyshev nodes ``(1 + cos((2k - 1) pi / (2m))) / 2``, ``k = m..1`` (increasing)."""

    name = "chebyshev"

    def nodes(self, m):
        k = torch.arange(m, 0, -1, dtype=torch.float64)
        return (1 + torch.cos((2 * k - 1) * math.pi / (2 * m))) / 2


#: name -> sampler class
SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (Random, Grid, Latin, Sobol, Halton, Chebyshev)
}


def get_sampler(sampler: str | Sampler) -> Sampler:
    """A :class:`Sampler` from its registry name (or the sampler itself)."""
    if isinstance(sampler, Sampler):
        return sampler
    if isinstance(sampler, str) and sampler in SAMPLERS:
        return SAMPLERS[sampler]()
    close = difflib.get_close_matches(str(sampler), SAMPLERS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise ValueError(
        f"sampler must be one of {sorted(SAMPLERS)} or a Sampler instance, got {sampler!r}{hint}"
    )
