"""``PINNTask``: physics-informed training of a network on a :class:`PDEProblem`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import grad_norm
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection

from lightning_kan.pde.problems import PDEProblem
from lightning_kan.pde.weighting import LossWeighting, WeightingContext, get_loss_weighting
from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import RelativeL2Error

__all__ = ["PINNTask"]


class PINNTask(KANTask):
    """Minimise ``mean(residual^2) + boundary_weight * mean((u - g)^2)`` (by default).

    The residual is the problem's operator applied to the network with autograd (second
    derivatives through the KAN layers); ``g`` is the boundary / initial data; batches
    are ``{"interior": (N, d), "boundary": (M, d)}`` points (``PDEDataModule``).
    Validation and test compare the network with the exact solution on the problem's
    test grid (the supervised step of :class:`KANTask`): ``{val,test}/rel_l2`` (the main
    metric) and ``{val,test}/mse``. Training logs ``train/loss``, ``train/residual``,
    ``train/boundary``, the boundary weight in use ``train/boundary_weight`` and the
    gradient's L2 norm ``train/grad_norm``.

    Loss weighting: ``loss_weighting`` names a strategy of
    :data:`~lightning_kan.pde.weighting.LOSS_WEIGHTINGS` (``fixed``, the default;
    ``annealing``: the boundary weight follows gradient statistics; ``causal``: time bins
    of the residual weighted by the loss before them, logged as
    ``train/causal_min_weight``) with ``loss_weighting_kwargs``, or is a
    :class:`~lightning_kan.pde.weighting.LossWeighting` instance (a config's class path).

    The problem comes from the data module (``PDEDataModule.problem``), so a config names
    it once; pass ``problem`` to use the task without one.

    L-BFGS after Adam: with ``lbfgs_epochs > 0`` the last ``lbfgs_epochs`` epochs of
    ``trainer.max_epochs`` (all of them if there are fewer, e.g. under ``fast_dev_run``)
    run L-BFGS on one fixed batch, kept in checkpoints; see
    :class:`~lightning_kan.tasks.LBFGSPhase`. The gradient norm is then logged at every
    closure evaluation.
    """

    #: the checkpoint key of the fixed L-BFGS batch (older checkpoints use it too)
    lbfgs_checkpoint_key = "pinn_lbfgs_batch"
    progress_bar_metric = "rel_l2"

    def __init__(
        self,
        net: nn.Module,
        boundary_weight: float = 10.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        problem: PDEProblem | None = None,
        lbfgs_epochs: int = 0,
        lbfgs_max_iter: int = 20,
        lbfgs_history_size: int = 50,
        loss_weighting: str | LossWeighting = "fixed",
        loss_weighting_kwargs: dict[str, Any] | None = None,
        initial_grid: str | None = "inputs",
    ) -> None:
        if not boundary_weight >= 0:
            raise ValueError(f"boundary_weight must be >= 0, got {boundary_weight!r}")
        super().__init__(
            net,
            optimizer,
            lr_scheduler,
            lbfgs_epochs=lbfgs_epochs,
            lbfgs_max_iter=lbfgs_max_iter,
            lbfgs_history_size=lbfgs_history_size,
            initial_grid=initial_grid,
        )
        self.loss_fn = nn.MSELoss()  # validation/test: against the exact solution
        self.boundary_weight = boundary_weight
        self.problem = problem
        self.loss_weighting = get_loss_weighting(loss_weighting, loss_weighting_kwargs)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"mse": MeanSquaredError(), "rel_l2": RelativeL2Error()})

    def setup(self, stage: str) -> None:
        if self.problem is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            self.problem = getattr(datamodule, "problem", None)
        if self.problem is None:
            raise ValueError(
                "PINNTask needs a PDE problem: use a PDEDataModule or pass problem=..."
            )
        # an output transform that takes its problem late (``pde.HardDirichlet``) gets this
        # one, so a config names the problem once, in the data module
        bind = getattr(self.net, "bind_problem", None)
        if callable(bind) and getattr(self.net, "problem", None) is None:
            bind(self.problem)
        self.loss_weighting.bind(self.problem)
        super().setup(stage)

    def training_loss(self, batch: Any, record: bool = True) -> torch.Tensor:
        """The residual loss on ``batch["interior"]`` and the boundary loss, combined by
        the loss weighting (``record=False``: L-BFGS' line search, whose evaluations
        neither log nor move a weight)."""
        interior = batch["interior"].requires_grad_(True)
        with torch.enable_grad():
            residual = self.problem.residual(self.net, interior)
        boundary = batch["boundary"]
        residual_loss = residual.square().mean()
        boundary_loss = F.mse_loss(self.net(boundary), self.problem.boundary_values(boundary))
        loss, weights = self.loss_weighting(
            residual, interior, boundary_loss, self.boundary_weight, self._weighting_context(record)
        )
        if record and self.logs_this_step():
            size = interior.shape[0]
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
            self.log("train/residual", residual_loss, batch_size=size)
            self.log("train/boundary", boundary_loss, batch_size=size)
            for name, value in weights.items():
                self.log(name, value, batch_size=size)
        return loss

    def _weighting_context(self, update: bool) -> WeightingContext:
        """The network's trainable parameters, the step and the cross-process reductions."""
        trainer = self._trainer
        params = [p for p in self.net.parameters() if p.requires_grad]
        if trainer is None:
            return WeightingContext(params, self.global_step, update)
        strategy = trainer.strategy
        return WeightingContext(
            params,
            self.global_step,
            update,
            mean=lambda t: strategy.reduce(t, reduce_op="mean"),
            sum=lambda t: strategy.reduce(t, reduce_op="sum"),
        )

    def on_train_epoch_end(self) -> None:
        """No training metrics (there is no exact solution to compare with in training);
        the L-BFGS phase steps the scheduler."""
        if self.lbfgs is not None:
            self.lbfgs.on_train_epoch_end(self)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.logs_this_step():
            self.log("train/grad_norm", grad_norm(self.net, norm_type=2)["grad_2.0_norm_total"])
