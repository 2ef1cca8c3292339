"""``RegressionTask``: function fitting with MSE, relative L2 and R2."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection

from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import RegressionScores

__all__ = ["RegressionTask"]


class RegressionTask(KANTask):
    """Regress ``y (N, D)`` from ``x``; loss MSE (or ``loss="l1"``/``"huber"``).

    Logs ``{stage}/loss``, ``{stage}/mse``, ``{stage}/rel_l2`` and ``{stage}/r2``.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: str = "mse",
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        regularization: float = 0.0,
    ) -> None:
        losses = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}
        if loss not in losses:
            raise ValueError(f"loss must be one of {sorted(losses)}, got {loss!r}")
        super().__init__(net, optimizer, lr_scheduler, regularization)
        self.loss_fn = losses[loss]()

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"scores": RegressionScores()})  # mse, rel_l2, r2

    def _shared_step(self, batch, stage):
        x, target = batch
        if target.dim() == 1:
            target = target.unsqueeze(-1)
        return super()._shared_step((x, target), stage)
