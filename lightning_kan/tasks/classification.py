"""``ClassificationTask``: cross-entropy with accuracy and macro F1."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection

__all__ = ["ClassificationTask"]

from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import ClassificationScores


class ClassificationTask(KANTask):
    """Classify into ``num_classes``; the network returns logits ``(N, num_classes)``.

    Logs ``{stage}/loss``, ``{stage}/accuracy`` and ``{stage}/f1`` (macro).
    ``lbfgs_*``: an L-BFGS phase at the end, as :class:`~lightning_kan.tasks.KANTask`.
    """

    progress_bar_metric = "accuracy"

    def __init__(
        self,
        net: nn.Module,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        regularization: float = 0.0,
        lbfgs_epochs: int = 0,
        lbfgs_max_iter: int = 20,
        lbfgs_history_size: int = 50,
        lbfgs_tolerance_grad: float = 1e-7,
        lbfgs_tolerance_change: float = 1e-9,
        initial_grid: str | None = "cover",
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an integer >= 2, got {num_classes!r} "
                "(the CLI fills it in from the data module)"
            )
        self.num_classes = num_classes
        super().__init__(
            net,
            optimizer,
            lr_scheduler,
            regularization,
            lbfgs_epochs=lbfgs_epochs,
            lbfgs_max_iter=lbfgs_max_iter,
            lbfgs_history_size=lbfgs_history_size,
            lbfgs_tolerance_grad=lbfgs_tolerance_grad,
            lbfgs_tolerance_change=lbfgs_tolerance_change,
            initial_grid=initial_grid,
        )
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"scores": ClassificationScores(self.num_classes)})  # accuracy, f1
