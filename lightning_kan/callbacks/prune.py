"""``Prune``: cut a dense KAN's weak edges and hidden nodes on a schedule during fit.

Cuts are :func:`~lightning_kan.layers.masks.set_edge_mask` masks: shapes never change,
so the optimizer, its state and the DDP wrapper stay valid, and a cut edge stays exactly
zero for the rest of the fit. A cut hidden node is all its incoming and outgoing edges
masked. The masks are buffers in the model's ``state_dict``, so a fit resumed from a
checkpoint (``KANLinear`` restores masks on load) continues with the same cuts.
"""

from __future__ import annotations

import math
from numbers import Real

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from lightning_kan.callbacks.activation_plot import figure_folder, log_figures
from lightning_kan.callbacks.grid_update import GridUpdate
from lightning_kan.callbacks.inputs import require_datamodule, training_inputs
from lightning_kan.interpret.scores import check_kan, edge_scores, node_scores
from lightning_kan.layers.masks import edge_mask, set_edge_mask
from lightning_kan.plotting import figure_class, plot_graph
from lightning_kan.protocols import require_net

__all__ = ["Prune"]


def _check_int(name: str, value: object, low: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Prune: {name} must be an integer >= {low} ({meaning}), got {value!r}")
    return value


def _check_threshold(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        value_ok = False
    else:
        value_ok = value >= 0
    if not value_ok:
        raise ValueError(
            f"Prune: {name} must be a finite number >= 0, got {value!r}; scores below it are "
            "cut (0 cuts nothing, pykan uses about 1e-2)"
        )
    return float(value)  # type: ignore[arg-type]


class Prune(Callback):
    """At the end of epochs ``start_epoch, start_epoch + every_n_epochs, ...`` (up to
    ``until_epoch``), cut the edges of ``module.net`` whose
    :func:`~lightning_kan.interpret.edge_scores` is below ``edge_threshold`` and the hidden
    nodes whose :func:`~lightning_kan.interpret.node_scores` is below ``node_threshold``.

    Train with the sparsity penalty (``KANTask(regularization=...)``, pykan uses about
    1e-3 to 1e-2) so that unneeded edges fade before they are cut. Scores are computed on
    the first ``num_samples`` training inputs of rank 0 (broadcast), and rank 0's cuts
    are broadcast too: the masks are identical on every DDP process. Earlier cuts are
    kept.

    Logged at each pruning epoch (through the module's logger, synchronised):
    ``prune/layer_<l>/edges`` (kept edges of layer ``l``), ``prune/boundary_<b>/nodes``
    (kept nodes of hidden boundary ``b``) and ``prune/edges`` (all kept edges). With
    ``plot_graph`` and matplotlib, the pruned graph
    (:func:`~lightning_kan.plotting.plot_graph`, edges faded by score) goes where
    :class:`ActivationPlot`'s figures go (W&B/TensorBoard key ``prune/graph``, else
    ``<log_dir>/prune/epoch=<e>-step=<s>-graph.png``).

    Symbolic edges (``fix_symbolic``) are never cut here and count as kept.
    Only dense KANs (``coefficients='dense'``, ``norm=None``) can be pruned; B-spline grid
    updates cannot refit masked coefficients, so run :class:`GridUpdate` in an earlier
    fit. The result of the fit still has its full shapes; compact it into a smaller
    network with ``lightning_kan.interpret.prune(net, x, 0, 0)``, which drops the hidden
    nodes whose edges are all cut and keeps the other cuts.

    Args:
        every_n_epochs: pruning period in epochs.
        start_epoch: first (0-based) epoch at whose end edges may be cut; train a while
            first so the scores mean something.
        until_epoch: last epoch that may cut (None: no limit), so the last epochs train
            the pruned network.
        edge_threshold, node_threshold: scores below these are cut (finite, >= 0).
        num_samples: training inputs the scores are computed on (>= 2).
        plot_graph: log the pruned graph as a figure.
        beta: the graph's fading, ``alpha = tanh(beta * score)``.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        start_epoch: int = 0,
        until_epoch: int | None = None,
        edge_threshold: float = 1e-2,
        node_threshold: float = 1e-2,
        num_samples: int = 512,
        plot_graph: bool = True,
        beta: float = 3.0,
    ) -> None:
        self.every_n_epochs = _check_int("every_n_epochs", every_n_epochs, 1, "the period")
        self.start_epoch = _check_int("start_epoch", start_epoch, 0, "the first pruning epoch")
        if until_epoch is not None:
            _check_int("until_epoch", until_epoch, start_epoch, "None or >= start_epoch")
        self.until_epoch = until_epoch
        self.edge_threshold = _check_threshold("edge_threshold", edge_threshold)
        self.node_threshold = _check_threshold("node_threshold", node_threshold)
        self.num_samples = _check_int("num_samples", num_samples, 2, "samples for the scores")
        if not isinstance(plot_graph, bool):
            raise ValueError(f"Prune: plot_graph must be True or False, got {plot_graph!r}")
        if isinstance(beta, bool) or not isinstance(beta, Real) or not beta > 0:
            raise ValueError(
                f"Prune: beta must be a number > 0, got {beta!r}; the graph draws an edge of "
                "score s with opacity tanh(beta * s) (pykan uses 3)"
            )
        self.plot_graph = plot_graph
        self.beta = float(beta)
        #: the epochs at whose end this callback has pruned (saved in checkpoints)
        self.pruned_epochs: list[int] = []
        self._plots = plot_graph

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse what cannot be pruned before training; install the (all-kept) masks now,
        before the optimizer is built, so the parameter order is the same on resume."""
        if stage != "fit":
            return
        require_datamodule(trainer, "Prune")
        net = check_kan(require_net(pl_module, "Prune"), "Prune")
        if any(isinstance(callback, GridUpdate) for callback in trainer.callbacks):
            raise ValueError(
                "Prune cuts edges with masks on the coefficients, and GridUpdate cannot refit "
                "masked coefficients, so the two cannot run in the same fit; move the grids in "
                "an earlier fit (with GridUpdate), then fit again with Prune"
            )
        for layer in net.layers:
            set_edge_mask(layer, edge_mask(layer), install=True)
        self._plots = self.plot_graph
        if self.plot_graph:
            try:
                figure_class()
            except ImportError as error:
                self._plots = False
                rank_zero_warn(f"Prune logs no graph in this fit: {error}")

    def _scheduled(self, epoch: int) -> bool:
        if epoch < self.start_epoch or (epoch - self.start_epoch) % self.every_n_epochs:
            return False
        return self.until_epoch is None or epoch <= self.until_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self._scheduled(epoch) or epoch in self.pruned_epochs:
            return
        net = pl_module.net
        inputs = training_inputs(trainer, self.num_samples, "Prune").to(pl_module.device)
        was_training = net.training
        net.eval()
        keeps, scores = self._cuts(net, inputs)
        keeps = trainer.strategy.broadcast(keeps, src=0)  # one decision for every process
        for layer, keep in zip(net.layers, keeps, strict=True):
            set_edge_mask(layer, keep.to(layer.weight.device))
        self.pruned_epochs.append(epoch)
        self._log_counts(pl_module, net, keeps)
        if self._plots:
            folder = figure_folder(trainer, "prune")  # a collective: every process
            if trainer.is_global_zero:
                graph = plot_graph(net, inputs, scores, self.beta)
                log_figures(trainer, "prune", {"graph": graph}, folder, f"epoch={epoch}")
        net.train(was_training)

    @torch.no_grad()
    def _cuts(
        self, net: torch.nn.Module, inputs: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The edges to keep ``(O, I)`` per layer (earlier cuts stay cut) and the scores."""
        scores = edge_scores(net, inputs)
        nodes = node_scores(net, inputs)
        keeps = [
            edge_mask(layer) & (score >= self.edge_threshold)
            for layer, score in zip(net.layers, scores, strict=True)
        ]
        for boundary in range(1, len(net.layers)):
            weak = nodes[boundary] < self.node_threshold
            if bool(weak.all()):
                raise ValueError(
                    f"Prune: node_threshold={self.node_threshold!r} would cut every node of "
                    f"hidden layer {boundary} at epoch end (its best score is "
                    f"{float(nodes[boundary].max()):.3g}), disconnecting the outputs from the "
                    "inputs; use a smaller node_threshold or a later start_epoch (the "
                    "checkpoints written so far are kept)"
                )
            subnodes = net.subnodes(boundary)
            for node in torch.nonzero(weak).flatten().tolist():
                keeps[boundary - 1][list(subnodes[node])] = False  # its incoming edges
                keeps[boundary][:, node] = False  # its outgoing edges
        return [keep.cpu() for keep in keeps], [score.cpu() for score in scores]

    @staticmethod
    def _log_counts(pl_module: L.LightningModule, net: torch.nn.Module, keeps) -> None:
        """Kept edges per layer (numeric or symbolic) and kept nodes per hidden boundary
        (equal on every process, so the synchronised mean is the value)."""
        keeps = [
            keep if layer.symbolic is None else keep | layer.symbolic.active.cpu()
            for layer, keep in zip(net.layers, keeps, strict=True)
        ]
        metrics = {f"prune/layer_{index}/edges": keep.sum() for index, keep in enumerate(keeps)}
        metrics["prune/edges"] = sum(keep.sum() for keep in keeps)
        for boundary in range(1, len(net.layers)):
            outgoing = keeps[boundary].any(0)  # (widths[boundary],)
            metrics[f"prune/boundary_{boundary}/nodes"] = outgoing.sum()
        pl_module.log_dict(
            {key: value.to(pl_module.device, torch.float32) for key, value in metrics.items()},
            sync_dist=True,
        )

    def state_dict(self) -> dict[str, list[int]]:
        return {"pruned_epochs": list(self.pruned_epochs)}

    def load_state_dict(self, state_dict: dict[str, list[int]]) -> None:
        self.pruned_epochs = [int(epoch) for epoch in state_dict.get("pruned_epochs", [])]
