"""``RunSummary``: say where a fit's results are, once, when it ends.

Lightning ends a fit with its stop line only; the checkpoint to use, its score and the
folders of the metrics and plots are left to find. The shipped configs add this callback
first in their ``callbacks`` list (first, so that ``--trainer.callbacks.<arg>=...``,
which sets the last callback, still reaches the one it did).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

__all__ = ["RunSummary", "describe_run"]


def _format(value: float) -> str:
    return f"{value:.4g}"


def _checkpoint_lines(callback: LightningModelCheckpoint) -> list[str]:
    """The best (with its monitored score and, for lightning_kan's ModelCheckpoint, the
    other metrics of the same stage at that moment) and the last checkpoint."""
    lines = []
    if callback.best_model_path and callback.monitor is not None:
        score = callback.best_model_score
        scores = [f"{callback.monitor}={_format(float(score))}"] if score is not None else []
        stage = callback.monitor.split("/")[0] + "/"
        metrics = getattr(callback, "best_model_metrics", {})
        scores += [
            f"{name}={_format(value)}"
            for name, value in sorted(metrics.items())
            if name != callback.monitor and name.startswith(stage)
        ]
        lines.append(f"best checkpoint: {callback.best_model_path} ({', '.join(scores)})")
    if callback.last_model_path:
        lines.append(f"last checkpoint: {callback.last_model_path}")
    elif callback.best_model_path and callback.monitor is None:
        lines.append(f"checkpoint: {callback.best_model_path}")
    return lines


def _logger_lines(logger: Logger, log_dir: Path) -> list[str]:
    """Where ``logger`` put the metrics and (for W&B, TensorBoard) the images."""
    if isinstance(logger, CSVLogger):
        return [f"metrics: {Path(logger.log_dir) / 'metrics.csv'}"]
    if isinstance(logger, TensorBoardLogger):
        return [
            f"metrics and plots: TensorBoard events in {logger.log_dir} "
            f"(tensorboard --logdir {logger.save_dir})"
        ]
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        folder = Path(run.dir).parent  # the run's folder; run.dir is its files/
        offline = getattr(run, "offline", False)  # an offline run's url only warns
        where = f"offline in {folder} (to upload: wandb sync {folder})" if offline else run.url
        lines = [f"metrics: W&B run {run.id}, {where}"]
        images = Path(run.dir) / "media" / "images"
        if images.is_dir():
            lines.append(f"plots: W&B images, local copies in {images}")
        return lines
    return [f"metrics: {type(logger).__name__} in {log_dir}"]


def _png_folders(log_dir: Path) -> list[Path]:
    """Subfolders of the run folder holding PNG files (ActivationPlot, Prune with CSV logs)."""
    return sorted({png.parent for png in log_dir.glob("*/*.png")})


def describe_run(trainer: L.Trainer, log_dir: str | Path | None) -> list[str]:
    """The summary lines of ``trainer``'s finished fit: every checkpoint callback's best
    and last checkpoints, every logger's metrics (and images), the folders of the PNG
    plots in ``log_dir`` (the trainer's ``log_dir``; resolve it on every process)."""
    folder = Path(log_dir or trainer.default_root_dir)
    lines = [f"fit ended after {trainer.current_epoch} epochs ({trainer.global_step} steps)"]
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, LightningModelCheckpoint):
            lines += _checkpoint_lines(callback)
    for logger in trainer.loggers:
        lines += _logger_lines(logger, folder)
    lines += [f"plots: {png_folder}" for png_folder in _png_folders(folder)]
    return lines


class RunSummary(Callback):
    """At the end of a fit, print (rank 0, through Lightning's log like its stop line)::

        lightning_kan: fit ended after 40 epochs (400 steps)
          best checkpoint: runs/quickstart/version_0/checkpoints/epoch=39-step=400.ckpt (val/lo...
          last checkpoint: runs/quickstart/version_0/checkpoints/last.ckpt
          metrics: runs/quickstart/version_0/metrics.csv
          plots: runs/quickstart/version_0/activations

    The metrics beside the monitored one are those lightning_kan's
    :class:`~lightning_kan.callbacks.ModelCheckpoint` recorded when it saved the best
    checkpoint (of the monitored metric's stage, ``val/``). A fit that raised prints
    nothing (the checkpoint callback names the file it saved).
    """

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """After every callback's ``on_fit_end`` (the final plots are written); Lightning
        calls it only when the fit succeeded."""
        if stage != "fit":
            return
        log_dir = trainer.log_dir  # a broadcast: every process takes part
        if trainer.is_global_zero:
            lines = describe_run(trainer, log_dir)
            rank_zero_info("lightning_kan: " + "\n  ".join(lines))
