"""``PINNTask``: physics-informed training of a network on a :class:`PDEProblem`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import grad_norm
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection

from lightning_kan.layers.jet import JetUnsupported, jet_forward, jet_gaps, refusal_message
from lightning_kan.pde.inverse import Unknowns, data_misfit
from lightning_kan.pde.problems import PDEProblem
from lightning_kan.pde.weighting import (
    LossWeighting,
    WeightingContext,
    get_loss_weighting,
    nonnegative_weight,
    residual_gradient_loss,
)
from lightning_kan.tasks.base import KANTask
from lightning_kan.tasks.metrics import RelativeL2Error

__all__ = ["DERIVATIVES", "PINNTask"]

#: how the residual's input derivatives are computed (``PINNTask(derivatives=...)``)
DERIVATIVES = ("auto", "jet", "autograd")


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

    Inverse problems and extra terms: ``unknowns`` (e.g. ``{"nu": 0.01}``) makes those
    problem parameters trainable from the given guesses
    (:class:`~lightning_kan.pde.inverse.Unknowns`), fitted to the data module's
    observations; ``data_weight`` weighs the data misfit ``train/data`` of batches with
    observations; ``gradient_weight > 0`` adds gPINN's ``mean |grad_x r|^2``
    (``train/residual_gradient``). Training logs each unknown (``train/nu``), validation
    its value and error against the problem's true value (``val/nu``, ``val/nu_error``).

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
        lbfgs_tolerance_grad: float = 1e-7,
        lbfgs_tolerance_change: float = 1e-9,
        loss_weighting: str | LossWeighting = "fixed",
        loss_weighting_kwargs: dict[str, Any] | None = None,
        initial_grid: str | None = "cover",
        unknowns: dict[str, float] | None = None,
        data_weight: float = 1.0,
        gradient_weight: float = 0.0,
        derivatives: str = "auto",
    ) -> None:
        if derivatives not in DERIVATIVES:
            raise ValueError(
                f"PINNTask: derivatives must be one of {list(DERIVATIVES)}, got "
                f"{derivatives!r}; 'auto' (the default) computes the residual from one "
                "forward-mode pass (a jet) when the network and the problem support it and "
                "with nested autograd otherwise, 'jet' insists on the jet, 'autograd' always "
                "uses nested autograd."
            )
        if not boundary_weight >= 0:
            raise ValueError(f"boundary_weight must be >= 0, got {boundary_weight!r}")
        super().__init__(
            net,
            optimizer,
            lr_scheduler,
            lbfgs_epochs=lbfgs_epochs,
            lbfgs_max_iter=lbfgs_max_iter,
            lbfgs_history_size=lbfgs_history_size,
            lbfgs_tolerance_grad=lbfgs_tolerance_grad,
            lbfgs_tolerance_change=lbfgs_tolerance_change,
            initial_grid=initial_grid,
        )
        self.loss_fn = nn.MSELoss()  # validation/test: against the exact solution
        self.boundary_weight = boundary_weight
        self.problem = problem
        self.loss_weighting = get_loss_weighting(loss_weighting, loss_weighting_kwargs)
        self.unknowns = Unknowns(unknowns)
        self.derivatives = derivatives
        self.data_weight = nonnegative_weight(data_weight, "data_weight", "the data misfit")
        self.gradient_weight = nonnegative_weight(
            gradient_weight, "gradient_weight", "the residual's squared x-gradient (gPINN)"
        )

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
        datamodule = getattr(self.trainer, "datamodule", None)
        self.unknowns.bind(self.problem, datamodule if stage == "fit" else None)
        if stage == "fit":
            self.loss_weighting.bind_data(datamodule)
        super().setup(stage)

    def training_loss(self, batch: Any, record: bool = True) -> torch.Tensor:
        """The residual loss on ``batch["interior"]`` and the boundary loss, combined by
        the loss weighting (``record=False``: L-BFGS' line search, whose evaluations
        neither log nor move a weight)."""
        interior = batch["interior"].requires_grad_(True)
        with torch.enable_grad():
            residual = self._residual(self.unknowns.problem(self.problem), interior)
        boundary = batch["boundary"]
        residual_loss = residual.square().mean()
        boundary_loss = F.mse_loss(self.net(boundary), self.problem.boundary_values(boundary))
        context = self._weighting_context(record, batch.get("interior_index"))
        loss, weights = self.loss_weighting(
            residual, interior, boundary_loss, self.boundary_weight, context
        )
        added, logs = self._added_terms(batch, residual, interior)
        loss, weights = loss + added, {**weights, **logs}
        if record and self.logs_this_step():
            size = interior.shape[0]
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
            self.log("train/residual", residual_loss, batch_size=size)
            self.log("train/boundary", boundary_loss, batch_size=size)
            for name, value in weights.items():
                self.log(name, value, batch_size=size)
        return loss

    def _added_terms(
        self, batch: Any, residual: torch.Tensor, interior: torch.Tensor
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """The data misfit, the gPINN term and the unknowns' values (logs only)."""
        added, logs = 0.0, self.unknowns.logs("train/")
        misfit = data_misfit(self.net, batch)
        if misfit is None and self.unknowns.names:
            raise ValueError(
                f"unknowns={self.unknowns.initial} are fitted to observations, and this "
                "batch has none (no 'observed' entry); use PDEDataModule(..., observations=N)."
            )
        if misfit is not None:
            added, logs["train/data"] = self.data_weight * misfit, misfit.detach()
        if self.gradient_weight > 0:
            penalty = residual_gradient_loss(residual, interior)
            added = added + self.gradient_weight * penalty
            logs["train/residual_gradient"] = penalty.detach()
        return added, logs

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.unknowns.names:
            self.log_dict(self.unknowns.errors("val/"), sync_dist=True)

    def _residual(self, problem: PDEProblem, interior: torch.Tensor) -> torch.Tensor:
        """The residual ``(N, 1)``: from one jet of the network (value, gradient and the
        problem's ``second_derivatives``) where ``derivatives`` allows and both support it,
        else the problem's nested-autograd ``residual``; the two agree to round-off."""
        if self.derivatives == "autograd":
            return problem.residual(self.net, interior)
        gaps = jet_gaps(self.net)
        if not problem.has_jet_residual:
            gaps.append(
                f"the problem {type(problem).__name__} has no residual_from_jet of its own "
                "residual (second_derivatives unset or inherited)"
            )
        if not gaps:
            # the jet needs no graph to x unless a term differentiates the residual in x
            x = interior if self.gradient_weight > 0 else interior.detach()
            jet = jet_forward(self.net, x, problem.second_derivatives)
            return problem.residual_from_jet(x, jet)
        if self.derivatives == "jet":
            raise JetUnsupported(f"PINNTask(derivatives='jet'): {refusal_message(gaps)}")
        return problem.residual(self.net, interior)

    def _weighting_context(
        self, update: bool, index: torch.Tensor | None = None
    ) -> WeightingContext:
        """The network's trainable parameters, the step, the cross-process reductions and
        the interior points' indices (fixed collocation sets)."""
        trainer = self._trainer
        params = [p for p in self.net.parameters() if p.requires_grad]
        if trainer is None:
            return WeightingContext(params, self.global_step, update, index=index)
        strategy = trainer.strategy
        return WeightingContext(
            params,
            self.global_step,
            update,
            mean=lambda t: strategy.reduce(t, reduce_op="mean"),
            sum=lambda t: strategy.reduce(t, reduce_op="sum"),
            max=lambda t: strategy.reduce(t, reduce_op="max"),
            index=index,
        )

    def on_train_epoch_end(self) -> None:
        """No training metrics (there is no exact solution to compare with in training);
        the L-BFGS phase steps the scheduler."""
        if self.lbfgs is not None:
            self.lbfgs.on_train_epoch_end(self)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.logs_this_step():
            self.log("train/grad_norm", grad_norm(self.net, norm_type=2)["grad_2.0_norm_total"])
