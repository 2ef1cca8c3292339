"""``ActivationPlot``: draw every layer's edge functions and log them to the active logger."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from lightning_kan.callbacks.inputs import training_inputs
from lightning_kan.plotting import plot_edge_functions

__all__ = ["ActivationPlot"]


class ActivationPlot(Callback):
    """Every ``every_n_epochs`` epochs and at the end of fit, plot ``module.net``'s edges.

    W&B gets images (``activations/layer_<l>``), TensorBoard figures, and any other
    logger (CSV) PNG files in ``<log_dir>/activations/``. Needs matplotlib.
    """

    def __init__(self, every_n_epochs: int = 10, max_edges: int = 6, num_samples: int = 512):
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        self.every_n_epochs = every_n_epochs
        self.max_edges = max_edges
        self.num_samples = num_samples

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._plot(trainer, pl_module, f"epoch={trainer.current_epoch}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._plot(trainer, pl_module, "final")

    def _plot(self, trainer: L.Trainer, pl_module: L.LightningModule, label: str) -> None:
        inputs = training_inputs(trainer, self.num_samples, "ActivationPlot")
        if trainer.is_global_zero:
            self._log(trainer, pl_module, inputs, label)

    def _log(
        self, trainer: L.Trainer, pl_module: L.LightningModule, inputs: torch.Tensor, label: str
    ) -> None:
        was_training = pl_module.training
        pl_module.eval()
        figures = plot_edge_functions(pl_module.net, inputs.to(pl_module.device), self.max_edges)
        pl_module.train(was_training)
        step = trainer.global_step
        for index, figure in enumerate(figures):
            key = f"activations/layer_{index}"
            logger = trainer.logger
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[figure], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(key, figure, global_step=step)
            else:
                folder = Path(trainer.log_dir or trainer.default_root_dir) / "activations"
                folder.mkdir(parents=True, exist_ok=True)
                figure.savefig(folder / f"{label}-step={step}-layer={index}.png", dpi=100)
