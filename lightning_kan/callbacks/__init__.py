"""Lightning callbacks for KAN training."""

from lightning_kan.callbacks.grid_update import GridUpdate

__all__ = ["GridUpdate"]
