"""Objects the CLI tests name by class path (importable with tests/ on PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class SaveRankWeights(Callback):
    """At the end of fit, every process writes its weights to ``<folder>/rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        torch.save(state, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


class PoisonWeightsAtStep(Callback):
    """Sets a network weight to NaN before training step ``step`` (to test NaN handling),
    on every process or only on process ``rank``."""

    def __init__(self, step: int, rank: int | None = None) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))
