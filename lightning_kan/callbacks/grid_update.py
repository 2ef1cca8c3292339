"""``GridUpdate``: move B-spline grids to the data during training, as pykan's fit does."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_kan.callbacks.inputs import require_datamodule, training_inputs
from lightning_kan.protocols import SupportsGridUpdate, require, require_net

__all__ = ["GridUpdate"]


class GridUpdate(Callback):
    """Every ``every_n_epochs`` epochs (not at epoch 0), until ``until_epoch``, call
    ``module.net.update_grid(x)`` on ``num_samples`` training inputs.

    All processes use rank 0's samples, so the grids stay identical under DDP. The
    coefficients are refitted in place (same shapes), so optimizer state carries on.

    Args:
        every_n_epochs: update period in epochs.
        until_epoch: last epoch that may update (None: no limit). pykan stops updating
            before the end so the final epochs train on a fixed grid.
        num_samples: training inputs used to place the knots.
        margin, grid_eps: passed to ``update_grid``.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        until_epoch: int | None = None,
        num_samples: int = 1024,
        margin: float = 0.0,
        grid_eps: float = 0.02,
    ) -> None:
        if (
            isinstance(every_n_epochs, bool)
            or not isinstance(every_n_epochs, int)
            or every_n_epochs < 1
        ):
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
        if until_epoch is not None and (
            isinstance(until_epoch, bool) or not isinstance(until_epoch, int) or until_epoch < 0
        ):
            raise ValueError(
                f"until_epoch must be None (no limit) or an integer >= 0, got {until_epoch!r}"
            )
        # update_grid checks these too, but only at the first update, epochs into training
        if not 0.0 < grid_eps <= 1.0:
            raise ValueError(f"grid_eps must be in (0, 1], got {grid_eps!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.every_n_epochs = every_n_epochs
        self.until_epoch = until_epoch
        self.num_samples = num_samples
        self.margin = margin
        self.grid_eps = grid_eps

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail before training unless the network's grids can move (SupportsGridUpdate)."""
        if stage != "fit":
            return
        require_datamodule(trainer, "GridUpdate")
        require(
            require_net(pl_module, "GridUpdate"),
            SupportsGridUpdate,
            caller="GridUpdate",
            needs="the module's network to move its B-spline grids",
            where=f"`{type(pl_module).__name__}.net`",
            fix="Use a dense B-spline KAN (KAN(widths, basis='bspline')); for Slim KAN move "
            "the grid on the dense KAN before converting it (SlimKAN.from_dense); or remove "
            "GridUpdate from the trainer's callbacks.",
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch == 0 or epoch % self.every_n_epochs:
            return
        if self.until_epoch is not None and epoch > self.until_epoch:
            return
        samples = training_inputs(trainer, self.num_samples, "GridUpdate")
        pl_module.net.update_grid(
            samples.to(pl_module.device), margin=self.margin, grid_eps=self.grid_eps
        )
