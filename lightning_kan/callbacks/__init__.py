"""Lightning callbacks for KAN training."""

from lightning_kan.callbacks.activation_plot import ActivationPlot
from lightning_kan.callbacks.grid_update import GridUpdate

__all__ = ["ActivationPlot", "GridUpdate"]
