"""``ActivationPlot``: draw every layer's edge functions and log them to the active logger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from lightning_kan.callbacks.inputs import require_datamodule, training_inputs
from lightning_kan.interpret.scores import check_kan, edge_scores
from lightning_kan.plotting import figure_class, plot_edge_functions, plot_graph, save_figure
from lightning_kan.protocols import SupportsEdgeFunctions, require, require_net

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ActivationPlot", "figure_folder", "log_figures", "scores_or_none"]


def figure_folder(trainer: L.Trainer, name: str) -> Path | None:
    """Where PNGs go for a logger that takes no images (CSV, none): ``<log_dir>/<name>``;
    None for W&B and TensorBoard. Every process must call it (``trainer.log_dir``
    broadcasts rank 0's folder)."""
    if isinstance(trainer.logger, WandbLogger | TensorBoardLogger):
        return None
    return Path(trainer.log_dir or trainer.default_root_dir) / name


def log_figures(
    trainer: L.Trainer, name: str, figures: dict[str, Figure], folder: Path | None, label: str
) -> None:
    """Hand ``figures`` (``{part: figure}``, parts like ``"layer=0"``) to the logger
    (rank 0 only): W&B images and TensorBoard figures under ``<name>/<part>`` (``=`` read
    ``_``: ``activations/layer_0``), any other logger PNG files
    ``<folder>/<label>-step=<step>-<part>.png`` written atomically."""
    logger, step = trainer.logger, trainer.global_step
    for part, figure in figures.items():
        key = f"{name}/{part.replace('=', '_')}"
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[figure], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, figure, global_step=step)
        else:
            save_figure(figure, folder / f"{label}-step={step}-{part}.png", dpi=100)


def scores_or_none(net: torch.nn.Module, inputs: torch.Tensor) -> list[torch.Tensor] | None:
    """``edge_scores(net, inputs)`` for a dense KAN (fading), None for any other net."""
    try:
        check_kan(net, "ActivationPlot")
    except TypeError:
        return None
    return edge_scores(net, inputs)


class ActivationPlot(Callback):
    """Every ``every_n_epochs`` epochs and at the end of fit, plot ``module.net``'s edges.

    A dense KAN's edges are faded by their attribution scores
    (:func:`lightning_kan.interpret.edge_scores`, see :mod:`lightning_kan.plotting`);
    other networks are drawn unfaded. ``graph=True`` also draws the network diagram
    (:func:`~lightning_kan.plotting.plot_graph`, key ``activations/graph``).

    W&B gets images (``activations/layer_<l>``), TensorBoard figures, and any other
    logger (CSV) PNG files in ``<log_dir>/activations/``, written atomically. W&B and
    TensorBoard get one image per step: the end-of-fit plot is skipped when the last
    epoch's plot drew the same global step (a fit of a multiple of ``every_n_epochs``
    epochs). Without matplotlib it warns once at the start of fit and plots nothing.

    Under DDP every process takes part in the collectives (sharing rank 0's inputs,
    resolving the log folder); only rank 0 draws and writes.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        max_edges: int = 6,
        num_samples: int = 512,
        graph: bool = False,
    ):
        for name, value, low in [
            ("every_n_epochs", every_n_epochs, 1),
            ("max_edges", max_edges, 1),
            ("num_samples", num_samples, 2),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"ActivationPlot: {name} must be an integer >= {low}, got {value!r}"
                )
        if not isinstance(graph, bool):
            raise ValueError(
                f"ActivationPlot: graph must be True or False, got {graph!r} (True also "
                "draws the network diagram)"
            )
        self.every_n_epochs = every_n_epochs
        self.max_edges = max_edges
        self.num_samples = num_samples
        self.graph = graph
        self._enabled = True
        self._plotted_step: int | None = None  # global step of this fit's latest plot

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail before training if the network cannot be plotted; warn once if matplotlib
        is missing (the fit then runs without plots)."""
        if stage != "fit":
            return
        self._plotted_step = None
        require_datamodule(trainer, "ActivationPlot")
        require(
            require_net(pl_module, "ActivationPlot"),
            SupportsEdgeFunctions,
            caller="ActivationPlot",
            needs="a KAN or KANLinear, whose layers show their edge functions",
            where=f"`{type(pl_module).__name__}.net`",
            fix="Plot a KAN (any basis or coefficient family), or remove ActivationPlot from "
            "the trainer's callbacks.",
        )
        try:
            figure_class()
        except ImportError as error:
            self._enabled = False
            rank_zero_warn(f"ActivationPlot writes no plots in this fit: {error}")
        else:
            self._enabled = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._plot(trainer, pl_module, f"epoch={trainer.current_epoch}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._plot(trainer, pl_module, "final")

    def _plot(self, trainer: L.Trainer, pl_module: L.LightningModule, label: str) -> None:
        """Runs on every process: the collectives here must be reached by all of them."""
        if not self._enabled:
            return
        folder = figure_folder(trainer, "activations")  # a broadcast for file loggers
        if label == "final" and folder is None and trainer.global_step == self._plotted_step:
            return  # a logger with a step axis has this step's image (same on every rank)
        self._plotted_step = trainer.global_step
        inputs = training_inputs(trainer, self.num_samples, "ActivationPlot")  # broadcast
        if trainer.is_global_zero:
            self._log(trainer, pl_module, inputs, label, folder)

    def _log(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        inputs: torch.Tensor,
        label: str,
        folder: Path | None,
    ) -> None:
        """Draw and hand the figures to the logger (rank 0 only: no collectives here)."""
        was_training = pl_module.training
        pl_module.eval()
        net, inputs = pl_module.net, inputs.to(pl_module.device)
        scores = scores_or_none(net, inputs)
        layers = plot_edge_functions(net, inputs, self.max_edges, scores=scores)
        graph = plot_graph(net, inputs, scores) if self.graph else None
        pl_module.train(was_training)
        figures = {f"layer={index}": figure for index, figure in enumerate(layers)}
        if graph is not None:
            figures["graph"] = graph
        log_figures(trainer, "activations", figures, folder, label)
