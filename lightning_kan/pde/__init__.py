"""Physics-informed PDE solving: problems with exact solutions, their domains and data.

``PINNTask`` (the LightningModule) lives in :mod:`lightning_kan.tasks.pinn`;
``lightning_kan.pde.PINNTask``, the class path configs use, still names it. It is
resolved on first access (PEP 562): ``tasks.pinn`` imports ``pde.problems``, so an
eager import here would be circular when ``lightning_kan.tasks`` is imported first.
"""

from typing import Any

from lightning_kan.pde.collocation import RAR, R3Sampling
from lightning_kan.pde.constraints import HardDirichlet
from lightning_kan.pde.data import PDEDataModule
from lightning_kan.pde.geometry import (
    Box,
    Difference,
    Ellipsoid,
    Geometry,
    Intersection,
    Polygon,
    Union,
)
from lightning_kan.pde.inverse import Unknowns
from lightning_kan.pde.problems import (
    Burgers,
    Elliptic,
    Helmholtz,
    PDEProblem,
    SteadyAllenCahn,
    TimeAllenCahn,
)
from lightning_kan.pde.sampling import SAMPLERS, Sampler, get_sampler
from lightning_kan.pde.weighting import LOSS_WEIGHTINGS, get_loss_weighting

__all__ = [
    "LOSS_WEIGHTINGS",
    "RAR",
    "SAMPLERS",
    "Box",
    "Burgers",
    "Difference",
    "Ellipsoid",
    "Elliptic",
    "Geometry",
    "HardDirichlet",
    "Helmholtz",
    "Intersection",
    "PDEDataModule",
    "PDEProblem",
    "PINNTask",
    "Polygon",
    "R3Sampling",
    "Sampler",
    "SteadyAllenCahn",
    "TimeAllenCahn",
    "Union",
    "Unknowns",
    "get_loss_weighting",
    "get_sampler",
]


def __getattr__(name: str) -> Any:
    if name == "PINNTask":
        from lightning_kan.tasks.pinn import PINNTask

        return PINNTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
