"""Former home of ``PINNTask``, now :mod:`lightning_kan.tasks.pinn`; kept for imports
and configs that name ``lightning_kan.pde.task.PINNTask``."""

from lightning_kan.tasks.pinn import PINNTask

__all__ = ["PINNTask"]
