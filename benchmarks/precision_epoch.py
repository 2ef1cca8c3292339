"""Training-epoch time of a KAN per Lightning precision, in one run (issue 19's target:
``bf16-mixed`` at least 1.5x faster than float32 on a GPU).

    python benchmarks/precision_epoch.py                       # GPU: [1024, 1024, 1024, 10]
    python benchmarks/precision_epoch.py --accelerator cpu --widths 16,16 --samples 2048

Each precision fits a fresh ``RegressionTask(KAN(widths))`` (B-spline G = 5, k = 3,
Adam, no logger, checkpoints or validation) on the same random data for
``--epochs`` epochs; the first is a warm-up, the median of the others is reported with
its ratio to the first precision listed (``32-true``: float32 with TF32 off, torch's
default; ``32-tf32``: float32 with TF32 matmuls and convolutions). Epoch boundaries are
synchronised with the device, so each time covers all of that epoch's GPU work.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.nets import KAN
from lightning_kan.tasks import RegressionTask

PRECISIONS = ("32-true", "32-tf32", "bf16-mixed", "16-mixed")


class EpochTimer(Callback):
    """Wall time of every training epoch, device-synchronised at both ends."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def _sync(self, trainer: L.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.seconds.append(time.perf_counter() - self.start)


def epoch_seconds(args: argparse.Namespace, precision: str, data: TensorDataset) -> float:
    """Median epoch time (warm-up epoch excluded) of one fit in ``precision``."""
    tf32 = precision == "32-tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    widths = [int(w) for w in args.widths.split(",")]
    task = RegressionTask(KAN([args.features, *widths, 10]), initial_grid=None)
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision="32-true" if tf32 else precision,
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(task, DataLoader(data, batch_size=args.batch_size, shuffle=True))
    return statistics.median(timer.seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--widths", default="1024,1024", help="hidden widths: %(default)s")
    parser.add_argument("--samples", type=int, default=65536)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4, help="including one warm-up epoch")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    args = parser.parse_args()
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise SystemExit(
            "--accelerator gpu: no CUDA device is available to this process "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False); run on a "
            "machine with an NVIDIA GPU, or pass --accelerator cpu"
        )
    if args.epochs < 2:
        raise SystemExit(f"--epochs must be at least 2 (one warm-up epoch), got {args.epochs}")
    precisions = args.precisions.split(",")
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise SystemExit(f"--precisions: unknown {unknown}; choose from {', '.join(PRECISIONS)}")
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.rand(args.samples, args.features, generator=generator) * 2 - 1,
        torch.randn(args.samples, 10, generator=generator),
    )
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else "cpu"
    print(
        f"torch {torch.__version__}, {device}, KAN [{args.features}, {args.widths}, 10], "
        f"{args.samples} samples, batch {args.batch_size}, median of {args.epochs - 1} epochs"
    )
    print(f"{'precision':>12} {'epoch s':>9} {'speedup':>9}")
    reference = None
    for precision in precisions:
        seconds = epoch_seconds(args, precision, data)
        reference = reference or seconds
        print(f"{precision:>12} {seconds:9.3f} {reference / seconds:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
