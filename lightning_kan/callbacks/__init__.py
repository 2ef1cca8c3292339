"""Lightning callbacks for KAN training."""

from lightning_kan.callbacks.activation_plot import ActivationPlot
from lightning_kan.callbacks.checkpoint import AtomicCheckpointIO, ModelCheckpoint
from lightning_kan.callbacks.grid_update import GridUpdate
from lightning_kan.callbacks.prune import Prune
from lightning_kan.callbacks.summary import RunSummary

__all__ = [
    "ActivationPlot",
    "AtomicCheckpointIO",
    "GridUpdate",
    "ModelCheckpoint",
    "Prune",
    "RunSummary",
]
