"""Physics-informed PDE solving: problems with exact solutions, data, a LightningModule."""

from lightning_kan.pde.data import PDEDataModule
from lightning_kan.pde.problems import (
    Burgers,
    Elliptic,
    Helmholtz,
    PDEProblem,
    SteadyAllenCahn,
    TimeAllenCahn,
)
from lightning_kan.pde.task import PINNTask

__all__ = [
    "Burgers",
    "Elliptic",
    "Helmholtz",
    "PDEDataModule",
    "PDEProblem",
    "PINNTask",
    "SteadyAllenCahn",
    "TimeAllenCahn",
]
