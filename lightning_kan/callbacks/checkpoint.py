"""Checkpoints that are never stale, never torn and never "best" when diverged.

:class:`ModelCheckpoint` is a drop-in subclass of Lightning's callback (same arguments,
same ``state_key``, so checkpoints of either resume with the other) that changes three
things Lightning does not guarantee:

- ``save_last=True`` keeps ``last.ckpt`` at the state of the end of the latest epoch,
  of the end of fit (early stopping, ``max_steps``) and of an interruption
  (Ctrl-C, :class:`~lightning_kan.tasks.NonFiniteLossError`). Lightning writes
  ``last`` only on steps where a top-k checkpoint was saved, so after the best epoch
  it goes stale.
- a checkpoint whose monitored value is NaN or infinite never enters the top k.
- every write is atomic (:class:`AtomicCheckpointIO`, installed when the strategy uses
  Lightning's default ``TorchCheckpointIO``), and temporaries that a killed run left in
  the checkpoint directory are deleted when the next fit starts there (rank 0).

:func:`load_checkpoint_file` reads a checkpoint and names a truncated or empty file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
from collections.abc import Iterator
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, Strategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_kan.atomic import atomic_link, atomic_torch_save, remove_stale_partials

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "ModelCheckpoint",
    "load_checkpoint_file",
    "reading_checkpoint",
    "use_atomic_checkpoint_io",
]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (missing, truncated, empty, not a checkpoint)."""


@contextlib.contextmanager
def reading_checkpoint(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn the errors of reading the checkpoint ``path`` inside the block into a
    :class:`CheckpointError` naming the path (torch says ``EOFError`` or
    ``OSError: [Errno 22]`` without one for an empty or truncated file)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist (or is not a file)")
    try:
        yield
    except (EOFError, OSError, RuntimeError, pickle.UnpicklingError) as error:
        if not _is_truncation(error):
            raise
        reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
        raise CheckpointError(
            f"{path!r} is not a complete checkpoint ({os.path.getsize(path)} bytes; {reason}); "
            "it was probably cut off by a killed run: use another one, e.g. last.ckpt or a "
            "top-k checkpoint of the same run"
        ) from error


def _is_truncation(error: BaseException) -> bool:
    """Whether ``torch.load`` failed because the file ends early (or is not a torch file)."""
    if isinstance(error, EOFError):
        return True
    if isinstance(error, OSError):
        return error.errno == errno.EINVAL
    return any(text in str(error) for text in ("PytorchStreamReader", "invalid load key"))


def load_checkpoint_file(path: str | os.PathLike[str], **torch_load_kwargs: Any) -> dict[str, Any]:
    """``torch.load(path, **torch_load_kwargs)`` of a Lightning checkpoint, with the errors
    of :func:`reading_checkpoint` and one for a file that holds no checkpoint dict."""
    with reading_checkpoint(path):
        checkpoint = torch.load(path, **torch_load_kwargs)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{os.fspath(path)!r} is not a Lightning checkpoint: it holds a "
            f"{type(checkpoint).__name__}, not a dict with 'state_dict'"
        )
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes go through :func:`atomic_torch_save`
    (temporary file in the checkpoint's directory, fsync, ``os.replace``) and whose reads
    name an incomplete file. Remote (fsspec) paths are written as Lightning does."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> Any:
        local = _is_local_file_protocol(path)
        with reading_checkpoint(path) if local else contextlib.nullcontext():
            return super().load_checkpoint(path, map_location, weights_only)


def use_atomic_checkpoint_io(strategy: Strategy) -> None:
    """Install :class:`AtomicCheckpointIO` where ``strategy`` uses the default IO; a
    user's own ``CheckpointIO`` (async, cloud, ...) is left alone."""
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with an always-current ``last.ckpt``, no
    non-finite "best" and atomic writes (see the module docstring). Use it exactly as
    Lightning's; ``save_last="link"`` writes a real file whenever the newest top-k
    checkpoint is older than the current step (a link would point at stale weights).
    A :class:`~lightning_kan.tasks.KANTask` upgrades a plain Lightning ``ModelCheckpoint``
    of its trainer to this class (:meth:`adopt`)."""

    _last_written_step: int | None = None  # global step of the newest last.ckpt
    _train_start_step: int | None = None  # global step when fit started (None: not started)
    _best_metrics: dict[str, float] | None = None  # see best_model_metrics
    _previous_last: str | None = None  # last_model_path before this save of last, if saving

    @classmethod
    def adopt(cls, callback: _LightningModelCheckpoint) -> ModelCheckpoint:
        """Turn a Lightning ``ModelCheckpoint`` (exactly that class) into this one in place,
        keeping its settings and state."""
        if type(callback) is not _LightningModelCheckpoint:
            raise TypeError(f"adopt expects a lightning ModelCheckpoint, got {type(callback)}")
        callback.__class__ = cls
        return callback  # type: ignore[return-value]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        use_atomic_checkpoint_io(trainer.strategy)
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.is_global_zero and _is_local_file_protocol(self.dirpath):
            for stale in remove_stale_partials(self.dirpath):
                rank_zero_info(f"ModelCheckpoint: removed {stale}, left by a killed run")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As Lightning's, but a saved ``dirpath`` naming this callback's folder another
        way (relative to the fit's working directory) is the same folder: no warning that
        it changed, and the saved best/last paths are kept."""
        saved = state_dict.get("dirpath")
        if (
            saved
            and self.dirpath
            and _is_local_file_protocol(saved)
            and os.path.realpath(saved) == os.path.realpath(self.dirpath)
        ):
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._train_start_step = trainer.global_step
        self._best_metrics = None

    @property
    def best_model_metrics(self) -> dict[str, float]:
        """The scalar metrics (``val/loss``, ``val/rel_l2``, ...) of the moment the best
        checkpoint of this fit was saved; empty before one is (and, after resuming, until
        this fit saves a new best: checkpoints keep only the monitored score)."""
        return dict(self._best_metrics or {})

    def _update_best_and_save(
        self, current: torch.Tensor, trainer: L.Trainer, monitor_candidates: dict[str, Any]
    ) -> None:
        """As Lightning's; also keeps the metrics of a new best (:attr:`best_model_metrics`)."""
        super()._update_best_and_save(current, trainer, monitor_candidates)
        if self.best_model_score is self.current_score:  # the file just saved is the best
            self._best_metrics = {
                name: float(value)
                for name, value in monitor_candidates.items()
                if name not in ("epoch", "step") and torch.as_tensor(value).numel() == 1
            }

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        """As Lightning's, except that a NaN or infinite value never enters the top k."""
        if current is not None and not bool(torch.isfinite(torch.as_tensor(current)).all()):
            rank_zero_warn(
                f"ModelCheckpoint: {self.monitor}={float(current)} at step {trainer.global_step} "
                "is not finite; that state is not kept as a top-k checkpoint"
            )
            return False
        return super().check_monitor_top_k(trainer, current)

    def _save_last_checkpoint(
        self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]
    ) -> None:
        if self.save_last == "link" and self._last_global_step_saved != trainer.global_step:
            self._last_checkpoint_saved = ""  # the newest top-k file is stale: write a file
        self._previous_last = self.last_model_path
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self._previous_last = None
        if self.save_last:
            self._last_written_step = trainer.global_step

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """As Lightning's, except that ``last`` at a step whose top-k checkpoint was just
        written becomes a hard link to that file (:func:`~lightning_kan.atomic.atomic_link`):
        the same state, serialised and written once instead of twice (MNIST-5k's 5.5 MB:
        one atomic write less per improving epoch). Only where ``last`` keeps its name
        (``last.ckpt`` again): the top-k file's saved callback state is then exactly the
        one Lightning would write into ``last``."""
        source = self._last_checkpoint_saved
        if not (
            self._previous_last == filepath
            and source
            and self._last_global_step_saved == trainer.global_step
            and type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO  # replaces files
            and _is_local_file_protocol(filepath)
            and os.path.abspath(source) != os.path.abspath(filepath)
        ):
            super()._save_checkpoint(trainer, filepath)
            return
        if trainer.is_global_zero:
            atomic_link(source, filepath)
        trainer.strategy.barrier("ModelCheckpoint.link_last")
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _last_is_stale(self, trainer: L.Trainer) -> bool:
        """Whether ``last`` is wanted and older than the current step of this fit."""
        return not (
            not self.save_last
            or trainer.fast_dev_run
            or trainer.sanity_checking
            or self._train_start_step is None
            or trainer.global_step in (self._last_written_step, self._train_start_step)
        )

    def _refresh_last(self, trainer: L.Trainer) -> None:
        """Write ``last`` if it is older than the current step (and fit has trained)."""
        if not self._last_is_stale(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Write ``last`` with the state reached before the exception.

        Under (single-device or) DDP the write uses no collective: the exception may
        have stopped one rank only, and a barrier would hang the other. Rank 0 writes.
        Weights that are no longer finite (a diverged run) are not written over the
        previous ``last.ckpt``: that one is the newest state worth resuming.
        """
        super().on_exception(trainer, pl_module, exception)
        if not self._last_is_stale(trainer):
            return
        if not all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            rank_zero_info(
                f"{type(exception).__name__} at step {trainer.global_step}: the weights are "
                f"not finite, so they are not saved; {self.last_model_path or 'no last.ckpt'} "
                f"keeps the state of step {self._last_written_step}"
            )
            return
        if not isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy):
            self._refresh_last(trainer)  # sharded strategies: the collective path
            return
        candidates = self._monitor_candidates(trainer)
        self.last_model_path = self.last_model_path or self.format_checkpoint_name(
            candidates, self.CHECKPOINT_NAME_LAST
        )
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        if trainer.is_global_zero:
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.last_model_path)
            rank_zero_info(
                f"{type(exception).__name__} at step {trainer.global_step}: the state reached "
                f"is saved in {self.last_model_path}"
            )
        self._last_written_step = trainer.global_step
