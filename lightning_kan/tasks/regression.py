"""``RegressionTask``: function fitting with MSE, relative L2 and R2."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection

from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import RegressionScores

__all__ = ["RegressionTask"]


class RegressionTask(KANTask):
    """Regress ``y (N, D)`` from ``x``; loss MSE (or ``loss="l1"``/``"huber"``).

    Logs ``{stage}/loss``, ``{stage}/mse``, ``{stage}/rel_l2`` and ``{stage}/r2``, and with
    ``mae=True`` ``{stage}/mae``, the mean absolute error (the MetaKAN paper's
    function-fitting metric; ``configs/feynman_metakan_official.yaml`` selects the best
    epoch by ``val/mae`` as the paper's code does on its test set).

    ``lbfgs_epochs=N``: the last N epochs refine with L-BFGS (the MetaKAN recipe for
    function fitting) on one fixed batch, the first of that phase: give the data module
    a ``batch_size`` of the whole training set for full-batch L-BFGS (a warning says
    when the batch is a part of it). See :class:`~lightning_kan.tasks.LBFGSPhase`.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: str = "mse",
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        regularization: float = 0.0,
        lbfgs_epochs: int = 0,
        lbfgs_max_iter: int = 20,
        lbfgs_history_size: int = 50,
        lbfgs_tolerance_grad: float = 1e-7,
        lbfgs_tolerance_change: float = 1e-9,
        initial_grid: str | None = "cover",
        mae: bool = False,
    ) -> None:
        if not isinstance(mae, bool):
            raise ValueError(
                f"mae must be true or false (also log the mean absolute error "
                f"{{stage}}/mae), got {mae!r}"
            )
        self.mae = mae  # read by make_metrics, which KANTask's constructor calls
        losses = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}
        if loss not in losses:
            raise ValueError(f"loss must be one of {sorted(losses)}, got {loss!r}")
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
        self.loss_fn = losses[loss]()

    def make_metrics(self) -> MetricCollection:
        # mse, rel_l2, r2 [, mae]
        return MetricCollection({"scores": RegressionScores(mae=self.mae)})

    def _shared_step(self, batch: Any, stage: str, record: bool = True) -> torch.Tensor:
        x, target = batch
        if target.dim() == 1:
            target = target.unsqueeze(-1)
        return super()._shared_step((x, target), stage, record)

    def on_train_start(self) -> None:
        batches = self.trainer.num_training_batches
        if self.lbfgs is not None and batches > 1:
            rank_zero_warn(
                f"lbfgs_epochs={self.lbfgs.epochs}: L-BFGS fits one fixed batch, the first "
                f"of its phase, out of {batches} per epoch; for full-batch L-BFGS set the "
                "data module's batch_size to the training set size"
            )
