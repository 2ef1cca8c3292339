"""``PINNTask``: physics-informed training of a network on a :class:`PDEProblem`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import grad_norm, rank_zero_warn
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection

from lightning_kan.pde.problems import PDEProblem
from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import RelativeL2Error

__all__ = ["PINNTask"]


class PINNTask(KANTask):
    """Minimise ``mean(residual^2) + boundary_weight * mean((u - g)^2)``.

    The residual is the problem's operator applied to the network with autograd (second
    derivatives through the KAN layers); ``g`` is the boundary / initial data. Validation
    and test compare the network with the exact solution on the problem's test grid:
    ``{val,test}/rel_l2`` (the main metric) and ``{val,test}/mse``. The gradient's L2 norm
    is logged as ``train/grad_norm``.

    The problem comes from the data module (``PDEDataModule.problem``), so a config names
    it once; pass ``problem`` to use the task without one.

    L-BFGS after Adam: with ``lbfgs_epochs > 0`` the last ``lbfgs_epochs`` epochs of
    ``trainer.max_epochs`` (all of them if there are fewer, e.g. under ``fast_dev_run``)
    run ``torch.optim.LBFGS`` (strong-Wolfe line search, up to
    ``lbfgs_max_iter`` iterations per training step) on one fixed batch: the first batch
    of that phase, kept in checkpoints so a resumed run continues on the same points.
    The task then uses Lightning's manual optimisation (``trainer.gradient_clip_val``
    is not supported there); the scheduler still steps once per Adam epoch, the
    gradient norm is logged at every closure evaluation and a non-finite loss stops
    training as in :class:`KANTask`. ``configure_optimizers`` returns
    ``[adam, lbfgs]`` and the scheduler, so both optimizers' states resume.
    """

    def __init__(
        self,
        net: nn.Module,
        boundary_weight: float = 10.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        problem: PDEProblem | None = None,
        lbfgs_epochs: int = 0,
        lbfgs_max_iter: int = 20,
    ) -> None:
        if not boundary_weight >= 0:
            raise ValueError(f"boundary_weight must be >= 0, got {boundary_weight!r}")
        for name, value, low in [
            ("lbfgs_epochs", lbfgs_epochs, 0),
            ("lbfgs_max_iter", lbfgs_max_iter, 1),
        ]:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        super().__init__(net, optimizer, lr_scheduler)
        self.loss_fn = nn.MSELoss()  # validation/test: against the exact solution
        self.boundary_weight = boundary_weight
        self.problem = problem
        self.lbfgs_epochs, self.lbfgs_max_iter = lbfgs_epochs, lbfgs_max_iter
        self.automatic_optimization = lbfgs_epochs == 0
        self._lbfgs_batch: dict[str, torch.Tensor] | None = None  # L-BFGS' fixed points

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
        max_epochs = self.trainer.max_epochs
        if stage != "fit" or not self.lbfgs_epochs:
            return
        if max_epochs is None or max_epochs < 0:
            raise ValueError(
                f"lbfgs_epochs={self.lbfgs_epochs} are the last epochs of trainer.max_epochs, "
                f"which is {max_epochs} (no end): set a finite max_epochs"
            )
        if max_epochs <= self.lbfgs_epochs and not self.trainer.fast_dev_run:
            rank_zero_warn(
                f"lbfgs_epochs={self.lbfgs_epochs} >= trainer.max_epochs={max_epochs}: every "
                "epoch uses L-BFGS, none Adam; lower lbfgs_epochs to keep an Adam phase"
            )

    def _shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        if stage != "train":
            return super()._shared_step(batch, stage)
        interior = batch["interior"].requires_grad_(True)
        with torch.enable_grad():
            residual = self.problem.residual(self.net, interior)
        boundary = batch["boundary"]
        residual_loss = residual.square().mean()
        boundary_loss = F.mse_loss(self.net(boundary), self.problem.boundary_values(boundary))
        loss = residual_loss + self.boundary_weight * boundary_loss
        if self.logs_this_step():
            size = interior.shape[0]
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
            self.log("train/residual", residual_loss, batch_size=size)
            self.log("train/boundary", boundary_loss, batch_size=size)
        return loss

    def _in_lbfgs_phase(self) -> bool:
        return bool(self.lbfgs_epochs) and (
            self.current_epoch >= max(self.trainer.max_epochs - self.lbfgs_epochs, 0)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.automatic_optimization:
            return super().training_step(batch, batch_idx)
        adam, lbfgs = self.optimizers()
        if not self._in_lbfgs_phase():
            loss = super().training_step(batch, batch_idx)
            adam.zero_grad()
            self.manual_backward(loss)
            adam.step()
            return loss.detach()
        if self._lbfgs_batch is None:
            self._lbfgs_batch = {key: value.detach().clone() for key, value in batch.items()}
        fixed = {key: value.to(self.device) for key, value in self._lbfgs_batch.items()}

        def closure() -> torch.Tensor:
            loss = super(PINNTask, self).training_step(fixed, batch_idx)
            lbfgs.zero_grad()
            self.manual_backward(loss)  # under DDP: the gradient averaged over processes
            # the line search compares loss values: every process must see the same one,
            # the mean over processes (the loss whose gradient DDP gives), or they take
            # different steps and different numbers of closure calls (a hang)
            return self.trainer.strategy.reduce(loss.detach().clone(), reduce_op="mean")

        return lbfgs.step(closure=closure).detach()

    def configure_optimizers(self) -> Any:
        """Adam (and its scheduler) as in :class:`KANTask`; with ``lbfgs_epochs`` also L-BFGS."""
        config = super().configure_optimizers()
        if not self.lbfgs_epochs:
            return config
        lbfgs = torch.optim.LBFGS(
            self.parameters(),
            lr=1.0,
            max_iter=self.lbfgs_max_iter,
            history_size=50,
            line_search_fn="strong_wolfe",
        )
        if isinstance(config, dict):  # manual optimisation: on_train_epoch_end steps it
            scheduler = config["lr_scheduler"]["scheduler"]
            return [config["optimizer"], lbfgs], [scheduler]
        return [config, lbfgs]

    def on_train_epoch_end(self) -> None:
        """Step the scheduler per Adam epoch under manual optimisation.

        Training has no exact-solution metrics (validation measures them).
        """
        scheduler = None if self.automatic_optimization else self.lr_schedulers()
        if scheduler is None or self._in_lbfgs_phase():
            return
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitored = self.trainer.callback_metrics.get("val/loss")
            if monitored is not None:
                scheduler.step(monitored)
        else:
            scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._lbfgs_batch is not None:
            checkpoint["pinn_lbfgs_batch"] = self._lbfgs_batch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._lbfgs_batch = checkpoint.get("pinn_lbfgs_batch")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.logs_this_step():
            self.log("train/grad_norm", grad_norm(self.net, norm_type=2)["grad_2.0_norm_total"])
