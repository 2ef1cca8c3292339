"""Reproduce the README's results tables from the shipped configs (CPU, a few minutes).

    python examples/results_table.py            # prints two Markdown tables

Feynman fitting: KAN (configs/feynman_kan.yaml) vs MLP (configs/feynman_mlp.yaml) on
three equations, test MSE of the best validation checkpoint and trainable parameters.
Digits: KAN, ConvKAN and MLP configs, test accuracy, parameters and time per epoch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lightning_kan.cli import build_cli
from lightning_kan.utils import count_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EQUATIONS = ("I.9.18", "I.12.2", "I.37.4")


def run(config: str, folder: str, *overrides: str) -> dict[str, float]:
    """Fit one config, test its best checkpoint; metrics, parameters, fit seconds (total and
    per epoch)."""
    cli = build_cli(
        [
            "--config",
            str(CONFIGS / config),
            f"--trainer.default_root_dir={folder}",
            f"--trainer.logger.init_args.save_dir={folder}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *overrides,
        ],
        run=False,
    )
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    seconds = time.perf_counter() - start
    (metrics,) = cli.trainer.test(cli.model, cli.datamodule, ckpt_path="best", verbose=False)
    metrics["parameters"] = count_parameters(cli.model.net)
    metrics["seconds"] = seconds
    metrics["seconds_per_epoch"] = seconds / max(cli.trainer.current_epoch, 1)
    return metrics


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        print("| equation | model | test MSE | test rel. L2 | parameters |")
        print("|---|---|---|---|---|")
        for equation in EQUATIONS:
            for name, config in (("KAN", "feynman_kan.yaml"), ("MLP", "feynman_mlp.yaml")):
                m = run(config, folder, f"--data.init_args.equation={equation}")
                print(
                    f"| {equation} | {name} | {m['test/mse']:.2e} | {m['test/rel_l2']:.2e} "
                    f"| {m['parameters']} |",
                    flush=True,
                )
        print("\n| model | test accuracy | parameters | s/epoch |")
        print("|---|---|---|---|")
        for name, config in (
            ("KAN", "digits_kan.yaml"),
            ("ConvKAN", "digits_convkan.yaml"),
            ("MLP", "digits_mlp.yaml"),
        ):
            m = run(config, folder)
            print(
                f"| {name} | {m['test/accuracy']:.3f} | {m['parameters']} "
                f"| {m['seconds_per_epoch']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
