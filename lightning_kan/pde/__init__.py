"""Physics-informed PDE solving: problems with exact solutions and their data.

``PINNTask`` (the LightningModule) lives in :mod:`lightning_kan.tasks.pinn`;
``lightning_kan.pde.PINNTask``, the class path configs use, still names it. It is
resolved on first access (PEP 562): ``tasks.pinn`` imports ``pde.problems``, so an
eager import here would be circular when ``lightning_kan.tasks`` is imported first.
"""

from typing import Any

from lightning_kan.pde.data import PDEDataModule
from lightning_kan.pde.problems import (
    Burgers,
    Elliptic,
    Helmholtz,
    PDEProblem,
    SteadyAllenCahn,
    TimeAllenCahn,
)

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


def __getattr__(name: str) -> Any:
    if name == "PINNTask":
        from lightning_kan.tasks.pinn import PINNTask

        return PINNTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
