"""``KANTask``: the LightningModule every lightning_kan task builds on.

The network is a constructor argument (composition), so a config picks ``KAN``,
``ConvKAN`` or any ``nn.Module``. Optimizer and scheduler are ``OptimizerCallable`` /
``LRSchedulerCallable`` (LightningCLI builds them from the config); both are kept out
of the saved hyper-parameters so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection

from lightning_kan.bases.base import is_finite_number
from lightning_kan.callbacks.checkpoint import ModelCheckpoint, use_atomic_checkpoint_io
from lightning_kan.callbacks.grid_update import INITIAL_GRIDS, fit_initial_grids
from lightning_kan.protocols import SupportsParamGroups, SupportsRegularization, require
from lightning_kan.tasks.lbfgs import LBFGSPhase
from lightning_kan.utils import optimizer_config

__all__ = ["KANTask", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite; training stops there."""


def _given_by_cli() -> bool:
    """True while LightningCLI instantiates the module: it then supplies the config
    (plain dicts) as hyper-parameters instead of the instantiated objects."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # pragma: no cover - older/newer Lightning layouts
        return False
    return _given_hyperparameters.get() is not None


class KANTask(L.LightningModule):
    """Shared training logic: loss, optional KAN regularisation, metrics per stage.

    Args:
        net: the network ``x -> prediction``.
        optimizer: builds the optimizer from the parameters (default Adam, lr 1e-3).
        lr_scheduler: optional, builds a scheduler from the optimizer; stepped per epoch
            and, for ``ReduceLROnPlateau``, monitoring ``val/loss``.
        regularization: weight of the network's ``regularization(x)`` (pykan's L1 +
            entropy over edge magnitudes) added to the training loss; 0 disables it.
        lbfgs_epochs: the last ``lbfgs_epochs`` epochs of ``trainer.max_epochs`` run
            L-BFGS on one fixed batch (:class:`~lightning_kan.tasks.LBFGSPhase`, held
            as ``self.lbfgs``); 0 (default): the optimizer alone, automatic optimisation.
        lbfgs_max_iter: L-BFGS iterations per training step.
        lbfgs_history_size: curvature pairs L-BFGS keeps.
        lbfgs_tolerance_grad, lbfgs_tolerance_change: an L-BFGS step stops iterating once
            no gradient entry exceeds the first, or the loss or update changes by less
            than the second (torch's defaults 1e-7 and 1e-9; the MetaKAN authors' code and
            pykan use 1e-32 for both, so every step runs its ``lbfgs_max_iter``).
        initial_grid: how the B-spline grids are fitted to the first training inputs
            (1,024, rank 0's on every DDP process) when a fit starts, so that no layer
            computes on the constant extension of its splines outside the built
            ``[-1, 1]``. ``"cover"`` (default): every B-spline layer (dense, Slim, Meta)
            gets uniform knots (the fast path): the first layer's grid spans its inputs'
            range; a hidden layer's grows to cover its activations with a margin and never
            shrinks below the built range (hidden activations widen in training). Rules in
            :func:`~lightning_kan.callbacks.grid_update.fit_grids`. ``"inputs"``: the
            first B-spline layer only, knots at the input quantiles (pykan's rule);
            ``"all"``: every layer at its input quantiles in forward order (pykan's
            initialisation; it stalled a B-spline PINN, see the README); ``None``: keep
            the grids as built. A resumed fit keeps the checkpoint's grids (see
            :meth:`on_fit_start`). A network without B-spline layers (Chebyshev, RBF, an
            MLP) has no grid, so the option does nothing for it.

    Subclasses set ``self.loss_fn`` and implement :meth:`make_metrics`. Training
    minimises :meth:`training_loss` (supervised by default: ``loss_fn(net(x), y)`` plus
    the regularisation); a task with another objective (``PINNTask``) overrides it.

    Checkpoints: a trainer running a ``KANTask`` writes checkpoints atomically, and a
    plain Lightning ``ModelCheckpoint`` among its callbacks becomes a
    :class:`lightning_kan.callbacks.ModelCheckpoint` (same settings; ``last.ckpt``
    always current, no non-finite "best"); see :meth:`configure_callbacks`.
    """

    #: the validation metric (a ``make_metrics`` key) shown on the progress bar, if any
    progress_bar_metric: str | None = None
    #: where checkpoints keep the L-BFGS phase's fixed batch
    lbfgs_checkpoint_key = "lbfgs_batch"
    #: the values of ``initial_grid``
    initial_grids = INITIAL_GRIDS

    def __init__(
        self,
        net: nn.Module,
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
        super().__init__()
        if initial_grid not in self.initial_grids:
            raise ValueError(
                f"initial_grid must be 'cover' (when a fit starts, fit every B-spline layer's "
                f"grid to what it sees in the first training inputs, uniform knots, hidden "
                f"grids never narrower than built), 'inputs' (the first layer's, at the input "
                f"quantiles), 'all' (every layer's at its input quantiles, pykan's) or None "
                f"(keep the grids as built), got {initial_grid!r}; in a config write "
                "`initial_grid: cover`, `initial_grid: inputs`, `initial_grid: all` or "
                "`initial_grid: null`"
            )
        if not is_finite_number(regularization) or regularization < 0:
            raise ValueError(
                f"regularization must be >= 0, got {regularization!r} (the finite weight of "
                "the network's sparsity penalty net.regularization(x); 0 disables it)"
            )
        if regularization > 0:
            require(
                net,
                SupportsRegularization,
                caller=f"{type(self).__name__}(regularization={regularization})",
                needs="the network's sparsity penalty net.regularization(x)",
                where="net",
                fix="Use a KAN (every lightning_kan KAN has one) or set regularization to 0.",
            )
        ignore = [] if _given_by_cli() else ["net", "optimizer", "lr_scheduler"]
        self.save_hyperparameters(ignore=ignore)
        self.net = net
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.regularization = regularization
        self.initial_grid = initial_grid
        #: set once the grids come from a fit start or a checkpoint: never fitted again
        self.grids_fitted = False
        self.lbfgs = LBFGSPhase.from_epochs(
            lbfgs_epochs,
            lbfgs_max_iter,
            lbfgs_history_size,
            lbfgs_tolerance_grad,
            lbfgs_tolerance_change,
        )
        self.automatic_optimization = self.lbfgs is None
        self.loss_fn: nn.Module
        # one collection per stage, held as attributes so Lightning moves and resets them
        self.train_metrics = self.make_metrics().clone(prefix="train/")
        self.val_metrics = self.make_metrics().clone(prefix="val/")
        self.test_metrics = self.make_metrics().clone(prefix="test/")

    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def configure_callbacks(self) -> list[Callback]:
        """Adds no callback; makes the trainer's checkpointing safe (see the class docstring).

        Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when a
        top-k checkpoint is saved, so after early stopping or ``max_steps`` it holds an
        old state; its writes are not atomic. The trainer's Lightning ``ModelCheckpoint``
        callbacks are therefore upgraded in place (:meth:`ModelCheckpoint.adopt`) and the
        strategy's default ``TorchCheckpointIO`` is replaced by the atomic one.
        """
        trainer = self._trainer
        if trainer is not None:
            use_atomic_checkpoint_io(trainer.strategy)
            for callback in trainer.callbacks:
                if type(callback) is LightningModelCheckpoint:
                    ModelCheckpoint.adopt(callback)
        return []

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.lbfgs is not None:
            self.lbfgs.check(self.trainer)

    def on_fit_start(self) -> None:
        """With ``initial_grid`` set, fit B-spline grids to the first training inputs.

        Runs once per task (:func:`~lightning_kan.callbacks.grid_update.fit_initial_grids`:
        rank 0's first inputs on every process, so DDP ranks get the same grids; a PDE
        batch's interior collocation points). Lightning calls this hook after it restored
        a checkpoint's weights (``trainer.fit(..., ckpt_path=...)``), so a resumed fit,
        and a task loaded from a checkpoint, keep the checkpoint's grids. Layers whose
        grid was fitted already (not uniform) keep it, and ``"cover"`` leaves a grid that
        covers its inputs already as it is; see ``fit_grids`` for the rules.
        """
        if self.initial_grid is None or self.grids_fitted or self.trainer.ckpt_path is not None:
            return
        fit_initial_grids(self.trainer, self.net, type(self).__name__, self.initial_grid)
        self.grids_fitted = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _shared_step(self, batch: Any, stage: str, record: bool = True) -> torch.Tensor:
        """The supervised loss of ``batch = (x, target)``; logs it and updates the
        stage's metrics unless ``record`` is false."""
        x, target = batch
        prediction = self(x)
        loss = self.loss_fn(prediction, target)
        batch_size = x.shape[0]
        logs = record and (stage != "train" or self.logs_this_step())
        if logs:
            self.log(
                f"{stage}/loss",
                loss,
                prog_bar=True,
                # a float: Lightning floors an integer batch-size total when it averages
                # it over processes, inflating the epoch mean (Lightning issue #21859)
                batch_size=float(batch_size),
                sync_dist=stage != "train",
            )
        if stage == "train" and self.regularization > 0:
            penalty = self.net.regularization(x)
            if logs:
                self.log("train/regularization", penalty, batch_size=batch_size)
            loss = loss + self.regularization * penalty
        if record:
            getattr(self, f"{stage}_metrics").update(prediction, target)
        return loss

    def training_loss(self, batch: Any, record: bool = True) -> torch.Tensor:
        """The scalar that training minimises on ``batch``; ``record=False`` (L-BFGS'
        line-search evaluations after the first) neither logs nor updates metrics."""
        return self._shared_step(batch, "train", record)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """:meth:`training_loss`, checked finite; with an L-BFGS phase the phase steps."""

        def checked_loss(batch: Any, record: bool = True) -> torch.Tensor:
            loss = self.training_loss(batch, record)
            self._check_finite(loss, batch_idx)
            return loss

        if self.lbfgs is None:
            return checked_loss(batch)
        return self.lbfgs.training_step(self, batch, checked_loss)

    def logs_this_step(self) -> bool:
        """Whether the logger writes this training step (every ``log_every_n_steps``).

        Each ``self.log`` call costs Lightning about a millisecond on a CPU (it moves its
        result object, metadata included, to the value's device every call): more than a
        small KAN's whole step. Training steps the logger does not write skip it, so the
        progress bar's loss refreshes every ``log_every_n_steps`` steps. Assumes one
        optimizer step per batch (as the tasks here do, the L-BFGS phase included);
        with gradient accumulation the counts differ and every step logs.
        """
        trainer = self._trainer
        if trainer is None or trainer.fast_dev_run or trainer.accumulate_grad_batches != 1:
            return True
        return (self.global_step + 1) % trainer.log_every_n_steps == 0

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite on any process.

        Under DDP the decision is reduced over the processes (one scalar all-reduce per
        step), so all of them stop at the same step: a process that stopped alone would
        leave the others waiting in the gradient all-reduce until the backend's timeout.
        """
        finite = math.isfinite(loss.item())  # one host sync, as bool() would be; 15x cheaper
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            value = loss.item()
            cause = (
                "became non-finite on another process"
                if math.isfinite(value)
                else (f"became {value}")
            )
            raise NonFiniteLossError(
                f"the training loss {cause} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); training stopped and the "
                "checkpoints written so far are kept. Lower the learning rate, enable "
                "gradient clipping (trainer.gradient_clip_val) or check the data for NaN/inf."
            )

    def _log_epoch_metrics(self, stage: str) -> None:
        """Compute (synchronised across processes by torchmetrics), log and reset.

        Metrics are updated every step but computed once per epoch: going through
        ``self.log`` with metric objects every step costs more than a small KAN's step.
        """
        metrics = getattr(self, f"{stage}_metrics")
        # compute() already synchronised them: equal on every process, so Lightning's
        # mean over processes (sync_dist) keeps the value and silences its DDP warning
        values = metrics.compute()
        shown = f"val/{self.progress_bar_metric}" if stage == "val" else None
        self.log_dict({k: v for k, v in values.items() if k != shown}, sync_dist=True)
        if shown in values:  # the task's main validation metric, on the progress bar too
            self.log(shown, values[shown], prog_bar=True, sync_dist=True)
        # validate/test run under inference mode: states reset there would be inference
        # tensors that a later fit could not update in place
        with torch.inference_mode(False):
            metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")
        if self.lbfgs is not None:
            self.lbfgs.on_train_epoch_end(self)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x)

    def optimizer_parameters(self) -> Any:
        """What the optimizer is built from: the net's ``param_groups()`` if it has one
        (MetaKAN: separate learning rates for prompts and meta-learners), plus a group
        for any other parameter of the task; otherwise ``self.parameters()``."""
        if not isinstance(self.net, SupportsParamGroups):
            return self.parameters()
        groups = list(self.net.param_groups())
        taken = {id(p) for group in groups for p in group["params"]}
        rest = [p for p in self.parameters() if id(p) not in taken]
        return groups + ([{"params": rest}] if rest else [])

    def configure_optimizers(self) -> Any:
        """The configured optimizer and scheduler; with an L-BFGS phase also L-BFGS over
        all parameters (one group: L-BFGS has no per-group options)."""
        optimizer = self.optimizer(self.optimizer_parameters())
        scheduler = None if self.lr_scheduler is None else self.lr_scheduler(optimizer)
        config = optimizer_config(optimizer, scheduler)
        if self.lbfgs is None:
            return config
        return self.lbfgs.configure_optimizers(config, self.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.lbfgs is not None and self.lbfgs.batch is not None:
            checkpoint[self.lbfgs_checkpoint_key] = self.lbfgs.batch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.grids_fitted = True  # the grids are the checkpoint's
        if self.lbfgs is not None:
            self.lbfgs.batch = checkpoint.get(self.lbfgs_checkpoint_key)

    @property
    def _lbfgs_batch(self) -> Any | None:
        """The L-BFGS phase's fixed batch (PINNTask's former attribute)."""
        return None if self.lbfgs is None else self.lbfgs.batch
