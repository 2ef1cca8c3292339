"""Time per training epoch of the quick-start job: ``lightning_kan fit`` vs a plain loop.

    python benchmarks/lightning_overhead.py [--epochs 30]

Both run in this process on the same model (configs/quickstart.yaml: a [2, 5, 1]
B-spline KAN, Adam, batch 100, 1,000 training and 200 validation samples) and data:

* ``plain``: a hand-written PyTorch loop doing the same work per epoch (training steps
  and a validation pass), no logging;
* ``lightning``: ``lightning_kan fit --config configs/quickstart.yaml`` with its CSV
  logger, checkpointing, progress bar and metrics (callbacks that do extra work on a
  schedule, GridUpdate and ActivationPlot, are removed so both do the same training);
* ``lightning-lean``: the same without logger, checkpoints and progress bar.

Prints the median epoch time of each (the best of ``--rounds`` alternating repetitions)
and the overhead over the plain loop.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
import torch.nn.functional as F

from lightning_kan.cli import main as cli_main
from lightning_kan.data import FunctionDataModule
from lightning_kan.nets import KAN

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


class EpochTimer(L.Callback):
    """Records the wall time of every training epoch (validation included)."""

    times: ClassVar[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and hasattr(self, "_start"):
            EpochTimer.times.append(time.perf_counter() - self._start)


def plain_loop(epochs: int) -> list[float]:
    torch.manual_seed(0)
    data = FunctionDataModule("kan-toy", num_train=1000, batch_size=100)
    data.setup()
    net = KAN([2, 5, 1], basis_kwargs={"grid_size": 5, "spline_order": 3})
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    train, val = data.train_dataloader(), data.val_dataloader()
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        train.sampler.set_epoch(epoch)
        net.train()
        for x, y in train:
            loss = F.mse_loss(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for x, y in val:
                F.mse_loss(net(x), y)
        times.append(time.perf_counter() - start)
    return times


def lightning_fit(epochs: int, lean: bool) -> list[float]:
    sys.path.insert(0, str(Path(__file__).parent))
    import lightning_overhead  # the module the CLI imports the timer from (not __main__)

    lightning_overhead.EpochTimer.times = []
    with tempfile.TemporaryDirectory() as folder:
        arguments = [
            "fit",
            "--config",
            str(CONFIG),
            f"--trainer.max_epochs={epochs}",
            f"--trainer.default_root_dir={folder}",
            f"--trainer.logger.init_args.save_dir={folder}",
            "--trainer.callbacks=lightning_overhead.EpochTimer",  # replaces the config's list
            "--trainer.enable_model_summary=false",
        ]
        if lean:
            arguments += [
                "--trainer.logger=false",
                "--trainer.enable_checkpointing=false",
                "--trainer.enable_progress_bar=false",
            ]
        else:
            arguments += [
                "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                f"--trainer.callbacks.dirpath={folder}/checkpoints",
                "--trainer.callbacks.monitor=val/loss",
                "--trainer.callbacks.save_last=true",
            ]
        cli_main(arguments)
    return list(lightning_overhead.EpochTimer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions")
    args = parser.parse_args()
    runs = {
        "plain": lambda: plain_loop(args.epochs),
        "lightning": lambda: lightning_fit(args.epochs, lean=False),
        "lightning-lean": lambda: lightning_fit(args.epochs, lean=True),
    }
    # the runs alternate and each keeps its best round: on a shared machine other jobs
    # only ever add time, so the minimum over rounds is the least disturbed figure
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            median = statistics.median(run()[2:])  # skip warm-up epochs
            best[name] = min(best.get(name, median), median)
    reference = best["plain"]
    print(f"\n{'run':>16} {'ms/epoch':>9} {'overhead':>9}   (best of {args.rounds} rounds)")
    for name, median in best.items():
        print(f"{name:>16} {median * 1e3:9.1f} {median / reference - 1:9.0%}")


if __name__ == "__main__":
    main()
