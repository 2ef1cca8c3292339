"""``LBFGSPhase``: the last epochs of a run in L-BFGS, after Adam, for any ``KANTask``.

PINN papers and the MetaKAN function-fitting recipe train with Adam first, then refine
with ``torch.optim.LBFGS`` (strong-Wolfe line search). A task holds one ``LBFGSPhase``
(built from its ``lbfgs_epochs``, ``lbfgs_max_iter``, ``lbfgs_history_size``,
``lbfgs_tolerance_grad``, ``lbfgs_tolerance_change``) and hands it its training step;
the phase owns everything that the second optimizer changes: Lightning's manual
optimisation, the optimizer pair, the scheduler stepping, the fixed batch and the
DDP-consistent closure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import apply_to_collection, move_data_to_device
from lightning.pytorch.utilities import rank_zero_warn

from lightning_kan.bases.base import is_finite_number

__all__ = ["LBFGSPhase"]

#: the task's loss on a batch; ``record=False``: neither log nor update metrics
TrainingLoss = Callable[..., torch.Tensor]


def _check_arguments(
    epochs: Any,
    max_iter: Any,
    history_size: Any,
    tolerance_grad: Any,
    tolerance_change: Any,
    least_epochs: int,
) -> None:
    """A clear error for a count that is not a whole number in range (bools included)
    or a tolerance that is not a finite number > 0."""
    for name, value, low, meaning in [
        ("lbfgs_epochs", epochs, least_epochs, "the number of final epochs that run L-BFGS"),
        ("lbfgs_max_iter", max_iter, 1, "L-BFGS iterations per training step"),
        ("lbfgs_history_size", history_size, 1, "curvature pairs L-BFGS keeps"),
    ]:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"{name} must be an integer >= {low}, got {value!r} ({meaning}; "
                "lbfgs_epochs=0 trains without L-BFGS)"
            )
    for name, value, default, meaning in [
        ("lbfgs_tolerance_grad", tolerance_grad, 1e-7, "no gradient entry exceeds it"),
        (
            "lbfgs_tolerance_change",
            tolerance_change,
            1e-9,
            "the loss or the update changes by less than it",
        ),
    ]:
        if not is_finite_number(value) or value <= 0:
            raise ValueError(
                f"{name} must be a finite number > 0, got {value!r} (an L-BFGS step stops "
                f"iterating early once {meaning}); use torch's default {default:g}, or "
                "1e-32 as the MetaKAN authors' code and pykan do, so that every step runs "
                "its lbfgs_max_iter iterations unless the loss stalls exactly"
            )


class LBFGSPhase:
    """The last ``epochs`` epochs of ``trainer.max_epochs`` run L-BFGS on one fixed batch.

    Every earlier epoch steps the task's own optimizer (Adam by default) once per batch,
    and its scheduler once per epoch; every step of the phase runs ``torch.optim.LBFGS``
    (``lr=1``, strong-Wolfe line search, up to ``max_iter`` iterations, ``history_size``
    curvature pairs, the stopping tolerances below) on one fixed batch: the first batch
    of the phase, detached and kept in checkpoints (:attr:`batch`) so a resumed run
    continues on the same points. For full-batch L-BFGS on a data set, make that batch
    the whole training set.

    The task then runs under Lightning's manual optimisation (``gradient_clip_val`` is
    not supported); ``configure_optimizers`` returns ``[optimizer, lbfgs]`` (and the
    scheduler), so both optimizers' states resume. Under DDP the closure returns the
    loss averaged over the processes, the loss whose gradient DDP gives: every process
    then takes the same line-search decisions and the same number of closure calls.

    Args:
        epochs: how many final epochs use L-BFGS (>= 1; a task with ``lbfgs_epochs=0``
            holds no phase).
        max_iter: L-BFGS iterations per training step.
        history_size: curvature pairs L-BFGS keeps.
        tolerance_grad: a step stops iterating once no entry of the gradient exceeds this
            in size (``torch.optim.LBFGS``'s ``tolerance_grad``; torch's default 1e-7).
        tolerance_change: a step stops iterating once the loss changes by less than
            this, or no entry of the parameter update exceeds it (torch's
            ``tolerance_change``, default 1e-9; its line search also uses it). Near a
            good fit, gradients and loss changes get that small, so torch's defaults end
            its steps early; pykan and the MetaKAN authors' code set both to 1e-32, so
            every step runs ``max_iter`` iterations unless the loss stalls exactly.
            (Their L-BFGS also takes ``tolerance_ys=1e-32``, the least curvature ``y.s``
            of a pair it keeps; torch's keeps pairs with ``y.s > 1e-10``, no option.)
    """

    def __init__(
        self,
        epochs: int,
        max_iter: int = 20,
        history_size: int = 50,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        _check_arguments(
            epochs, max_iter, history_size, tolerance_grad, tolerance_change, least_epochs=1
        )
        self.epochs, self.max_iter, self.history_size = epochs, max_iter, history_size
        self.tolerance_grad, self.tolerance_change = float(tolerance_grad), float(tolerance_change)
        self.batch: Any | None = None  # the fixed batch, set at the phase's first step

    @classmethod
    def from_epochs(
        cls,
        epochs: int,
        max_iter: int = 20,
        history_size: int = 50,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> LBFGSPhase | None:
        """The phase a task's ``lbfgs_*`` arguments ask for; ``None`` for ``epochs=0``."""
        _check_arguments(
            epochs, max_iter, history_size, tolerance_grad, tolerance_change, least_epochs=0
        )
        if not epochs:
            return None
        return cls(epochs, max_iter, history_size, tolerance_grad, tolerance_change)

    def __repr__(self) -> str:
        return (
            f"LBFGSPhase(epochs={self.epochs}, max_iter={self.max_iter}, "
            f"history_size={self.history_size}, tolerance_grad={self.tolerance_grad:g}, "
            f"tolerance_change={self.tolerance_change:g})"
        )

    def check(self, trainer: L.Trainer) -> None:
        """At ``setup("fit")``: the phase needs a finite ``max_epochs`` to count back from."""
        max_epochs = trainer.max_epochs
        if max_epochs is None or max_epochs < 0:
            raise ValueError(
                f"lbfgs_epochs={self.epochs} are the last epochs of trainer.max_epochs, "
                f"which is {max_epochs} (no end): set a finite max_epochs"
            )
        if max_epochs <= self.epochs and not trainer.fast_dev_run:
            rank_zero_warn(
                f"lbfgs_epochs={self.epochs} >= trainer.max_epochs={max_epochs}: every "
                "epoch uses L-BFGS, none Adam; lower lbfgs_epochs to keep an Adam phase"
            )

    def active(self, trainer: L.Trainer) -> bool:
        """Whether the current epoch belongs to the L-BFGS phase."""
        return trainer.current_epoch >= max(trainer.max_epochs - self.epochs, 0)

    def configure_optimizers(self, config: Any, parameters: Any) -> Any:
        """Add L-BFGS over ``parameters`` to the task's ``optimizer_config`` result."""
        lbfgs = torch.optim.LBFGS(
            parameters,
            lr=1.0,
            max_iter=self.max_iter,
            history_size=self.history_size,
            tolerance_grad=self.tolerance_grad,
            tolerance_change=self.tolerance_change,
            line_search_fn="strong_wolfe",
        )
        if isinstance(config, dict):  # manual optimisation: on_train_epoch_end steps it
            return [config["optimizer"], lbfgs], [config["lr_scheduler"]["scheduler"]]
        return [config, lbfgs]

    def training_step(
        self, task: L.LightningModule, batch: Any, training_loss: TrainingLoss
    ) -> torch.Tensor:
        """One manual step: the task's optimizer before the phase, L-BFGS in it.

        ``training_loss(batch, record=...)`` is the task's (finite-checked) loss; an
        L-BFGS step records (logs, updates metrics) only its first evaluation, the
        step's starting point, as an Adam step does.
        """
        first, lbfgs = task.optimizers()
        if not self.active(task.trainer):
            loss = training_loss(batch)
            first.zero_grad()
            task.manual_backward(loss)
            first.step()
            return loss.detach()
        if self.batch is None:
            self.batch = apply_to_collection(batch, torch.Tensor, lambda t: t.detach().clone())
        fixed = move_data_to_device(self.batch, task.device)
        evaluations = 0

        def closure() -> torch.Tensor:
            nonlocal evaluations
            loss = training_loss(fixed, record=evaluations == 0)
            evaluations += 1
            lbfgs.zero_grad()
            task.manual_backward(loss)  # under DDP: the gradient averaged over processes
            return task.trainer.strategy.reduce(loss.detach().clone(), reduce_op="mean")

        return lbfgs.step(closure=closure).detach()

    def on_train_epoch_end(self, task: L.LightningModule) -> None:
        """Step the scheduler once per epoch before the phase (manual optimisation
        leaves that to the module); ``ReduceLROnPlateau`` monitors ``val/loss``."""
        scheduler = task.lr_schedulers()
        if scheduler is None or self.active(task.trainer):
            return
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitored = task.trainer.callback_metrics.get("val/loss")
            if monitored is not None:
                scheduler.step(monitored)
        else:
            scheduler.step()
