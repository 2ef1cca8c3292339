"""Reproduce the README's "Slim KAN and MetaKAN" tables (CPU, one thread, ~15 minutes).

    OMP_NUM_THREADS=1 python examples/slim_meta_table.py          # both tables
    OMP_NUM_THREADS=1 python examples/slim_meta_table.py --only digits

Feynman fitting: KAN, Slim KAN, MetaKAN and MLP configs on three equations (test MSE
of the best validation checkpoint, trainable parameters). Digits: KAN, Slim KAN,
MetaKAN, ConvKAN, Slim ConvKAN, MetaConvKAN and MLP configs (test accuracy, trainable
parameters, and the peak memory of one training step at batch 1024, measured in a fresh process as
``benchmarks/common.py`` does). Every model trains with its shipped config, unchanged;
``run`` is ``examples/results_table.py``'s. Compression: the trained digits KAN turned
into Slim KANs by ``SlimKAN.from_dense`` at several energies, tested without fine-tuning.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))

from common import MB, peak_step_bytes  # noqa: E402
from results_table import CONFIGS, EQUATIONS, run  # noqa: E402

from lightning_kan.cli import build_cli  # noqa: E402
from lightning_kan.nets import SlimKAN  # noqa: E402
from lightning_kan.utils import count_parameters  # noqa: E402

FEYNMAN = (
    ("KAN", "feynman_kan.yaml"),
    ("Slim KAN", "feynman_slimkan.yaml"),
    ("MetaKAN", "feynman_metakan.yaml"),
    ("MLP", "feynman_mlp.yaml"),
)
DIGITS = (
    ("KAN", "digits_kan.yaml"),
    ("Slim KAN", "digits_slimkan.yaml"),
    ("MetaKAN", "digits_metakan.yaml"),
    ("ConvKAN", "digits_convkan.yaml"),
    ("Slim ConvKAN", "digits_slimconvkan.yaml"),
    ("MetaConvKAN", "digits_metaconvkan.yaml"),
    ("MLP", "digits_mlp.yaml"),
)
MEMORY_BATCH = 1024


def _net(config: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The config's network and the shape of one input sample."""
    with tempfile.TemporaryDirectory() as folder:
        cli = build_cli(
            ["--config", str(CONFIGS / config), f"--trainer.default_root_dir={folder}"],
            run=False,
        )
        cli.datamodule.setup("fit")
        x, _ = next(iter(cli.datamodule.train_dataloader()))
    return cli.model.net, tuple(x.shape[1:])


def memory_worker(config: str) -> None:
    """Print the peak bytes of one training step at ``MEMORY_BATCH`` (fresh process)."""
    torch.manual_seed(0)
    net, sample_shape = _net(config)
    net.train()
    parameters = [p for p in net.parameters() if p.requires_grad]
    warmup = (parameters, torch.rand(8, *sample_shape), net)
    case = (parameters, torch.rand(MEMORY_BATCH, *sample_shape), net)
    print(peak_step_bytes(warmup, case))


def peak_mb(config: str) -> float:
    command = [sys.executable, __file__, "--memory-worker", config]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) / MB


def compress_table(folder: str) -> None:
    """Train the digits KAN, compress it with ``SlimKAN.from_dense`` at several energies
    (HOSVD + 2 HOOI sweeps, no fine-tuning) and test every compressed network."""
    cli = build_cli(
        [
            "--config",
            str(CONFIGS / "digits_kan.yaml"),
            f"--trainer.default_root_dir={folder}",
            f"--trainer.logger.init_args.save_dir={folder}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, cli.datamodule)
    best = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)
    task = cli.model
    task.load_state_dict(best["state_dict"])
    dense = task.net
    print("\n| compressed digits KAN | ranks per layer | max rel. error | test acc. | params |")
    print("|---|---|---|---|---|")
    (base,) = cli.trainer.test(task, cli.datamodule, verbose=False)
    print(f"| dense KAN | - | 0 | {base['test/accuracy']:.3f} | {count_parameters(dense)} |")
    for energy in (0.999, 0.99, 0.95, 0.9):
        task.net = SlimKAN.from_dense(dense, energy=energy, hooi_iters=2)
        (m,) = cli.trainer.test(task, cli.datamodule, verbose=False)
        ranks = " / ".join("x".join(map(str, r)) for r in task.net.ranks)
        print(
            f"| energy {energy} | {ranks} | {max(task.net.compression_errors):.3f} "
            f"| {m['test/accuracy']:.3f} | {count_parameters(task.net)} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("feynman", "digits", "compress"))
    parser.add_argument("--memory-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "feynman"):
            print("| equation | model | test MSE | test rel. L2 | parameters | s/epoch |")
            print("|---|---|---|---|---|---|")
            for equation in EQUATIONS:
                for name, config in FEYNMAN:
                    m = run(config, folder, f"--data.init_args.equation={equation}")
                    print(
                        f"| {equation} | {name} | {m['test/mse']:.2e} | {m['test/rel_l2']:.2e} "
                        f"| {m['parameters']} | {m['seconds_per_epoch']:.2f} |",
                        flush=True,
                    )
        if args.only in (None, "compress"):
            compress_table(folder)
        if args.only in (None, "digits"):
            print(f"\n| model | test accuracy | parameters | peak step MB (batch {MEMORY_BATCH}) |")
            print("|---|---|---|---|")
            for name, config in DIGITS:
                m = run(config, folder)
                print(
                    f"| {name} | {m['test/accuracy']:.3f} | {m['parameters']} "
                    f"| {peak_mb(config):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
