"""Reproduce the README's "Slim KAN and MetaKAN" tables (CPU, one thread).

    OMP_NUM_THREADS=1 python examples/slim_meta_table.py          # every table
    OMP_NUM_THREADS=1 python examples/slim_meta_table.py --only digits
    OMP_NUM_THREADS=1 python examples/slim_meta_table.py --only feynman --recipes official \
        --official-code /tmp/MetaKAN/function_fitting   # + the authors' own code

Feynman fitting, on the five equations of the MetaKAN paper's table, with two recipes:
``ours`` (the shipped ``configs/feynman_*.yaml``: AI Feynman ranges mapped onto
``[-1, 1]``, Adam at batch 128 with a cosine schedule, best epoch by ``val/loss``) and
``official`` (``configs/feynman_{kan,metakan}_official.yaml``: the MetaKAN authors'
full-batch L-BFGS on the KAN paper's ranges, best epoch by ``val/mae``; the Slim KAN and
MLP take that recipe with their shipped network, the Slim KAN at the official width).
Rows: test MSE, relative L2 and mean absolute error of the selected checkpoint, the best
``val/mae`` over the epochs (the authors' protocol, which selects on its evaluation set),
trainable parameters. ``--official-code DIR`` adds a row per equation from the authors'
``train_hyper.py`` (run in DIR with this interpreter; its own samples of the same ranges,
its best test-set MAE over the epochs). Digits: KAN, Slim KAN,
MetaKAN, ConvKAN, Slim ConvKAN, MetaConvKAN and MLP configs (test accuracy, trainable
parameters, and the peak memory of one training step at batch 1024, measured in a fresh process as
``benchmarks/common.py`` does). Every model trains with its shipped config, unchanged;
``run`` is ``examples/results_table.py``'s. Compression: the trained digits KAN turned
into Slim KANs by ``SlimKAN.from_dense`` at several energies, tested without fine-tuning.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))

from common import MB, peak_step_bytes  # noqa: E402
from results_table import CONFIGS, run  # noqa: E402

from lightning_kan.cli import build_cli  # noqa: E402
from lightning_kan.data import FEYNMAN_EQUATIONS  # noqa: E402
from lightning_kan.nets import MetaKAN, SlimKAN  # noqa: E402
from lightning_kan.utils import count_parameters  # noqa: E402

#: the MetaKAN paper's table of Feynman equations
EQUATIONS = ("I.6.20a", "I.8.4", "I.9.18", "I.12.5", "I.15.3x")
NET = "--model.init_args.net"


def _net_of(config: str, **changes: object) -> str:
    """``--model.init_args.net=<json>``: the network of a shipped config, with changes."""
    net = yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]["net"]
    net["init_args"].update(changes)
    return f"{NET}={json.dumps(net)}"


#: recipe -> rows (model label, config, overrides); ``--model.init_args.mae=true`` logs
#: val/mae under our recipe too
RECIPES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "ours": (
        ("KAN", "feynman_kan.yaml", ()),
        ("Slim KAN", "feynman_slimkan.yaml", ()),
        ("MetaKAN", "feynman_metakan.yaml", ()),  # init xavier, the default
        ("MetaKAN (init scaled)", "feynman_metakan.yaml", (f"{NET}.init_args.init=scaled",)),
        ("MLP", "feynman_mlp.yaml", ()),
    ),
    "official": (
        ("KAN", "feynman_kan_official.yaml", ()),
        ("Slim KAN", "feynman_kan_official.yaml", (_net_of("feynman_slimkan.yaml", widths=[5]),)),
        ("MetaKAN", "feynman_metakan_official.yaml", ()),
        (
            "MetaKAN (init scaled)",
            "feynman_metakan_official.yaml",
            (f"{NET}.init_args.init=scaled",),
        ),
        ("MLP", "feynman_kan_official.yaml", (_net_of("feynman_mlp.yaml"),)),
    ),
}
#: the authors' command for their MetaKAN (function_fitting/train_hyper.py)
OFFICIAL_COMMAND = (
    "train_hyper.py --model HyperKAN --optimizer lbfgs --lr 1 --embedding_dim 1 "
    "--hidden_dim 16 --loss mse --epochs 100 --batch-size 1000 --no-cuda --log-interval 1000"
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


def best_epoch_mae(folder: Path) -> float:
    """The least ``val/mae`` over the epochs, from the run's CSV log under ``folder``."""
    (metrics_csv,) = folder.glob("**/metrics.csv")
    with open(metrics_csv) as handle:
        values = [float(row["val/mae"]) for row in csv.DictReader(handle) if row.get("val/mae")]
    return min(values)


def official_code_mae(directory: str, equation: str) -> float:
    """Best test-set MAE over the epochs of the authors' ``train_hyper.py`` on ``equation``."""
    command = [sys.executable, *OFFICIAL_COMMAND.split(), "--dataset", equation]
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    losses = re.findall(r"test set: Average loss: ([0-9.eE+-]+)", result.stdout)
    if result.returncode or not losses:
        raise RuntimeError(
            f"{' '.join(command)} in {directory} gave no test loss (exit code "
            f"{result.returncode}; its dependencies, e.g. fvcore, must be importable):\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )
    return min(map(float, losses))


def feynman_table(folder: str, recipes: list[str], models: list[str] | None, code: str | None):
    """Print the Feynman rows: every equation, recipe and model (see the module docstring)."""
    print(
        "| equation | recipe | model | test MSE | test rel. L2 | test MAE | best-epoch MAE "
        "| parameters |\n|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    for equation in EQUATIONS:
        for recipe in recipes:
            for name, config, overrides in RECIPES[recipe]:
                if models and name not in models:
                    continue
                run_folder = Path(tempfile.mkdtemp(dir=folder))
                m = run(
                    config,
                    str(run_folder),
                    f"--data.init_args.equation={equation}",
                    "--model.init_args.mae=true",
                    *overrides,
                )
                print(
                    f"| {equation} | {recipe} | {name} | {m['test/mse']:.2e} "
                    f"| {m['test/rel_l2']:.2e} | {m['test/mae']:.2e} "
                    f"| {best_epoch_mae(run_folder):.2e} | {m['parameters']} |",
                    flush=True,
                )
        if code is not None:
            width = FEYNMAN_EQUATIONS[equation].num_variables
            parameters = count_parameters(MetaKAN([width, 5, 1], hidden_dim=16))
            print(
                f"| {equation} | official | MetaKAN, the authors' code | - | - | - "
                f"| {official_code_mae(code, equation):.2e} | {parameters} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("feynman", "digits", "compress"))
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--models", nargs="+", help="Feynman rows to run (model labels)")
    parser.add_argument("--official-code", metavar="DIR", help="the authors' function_fitting")
    parser.add_argument("--memory-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "feynman"):
            feynman_table(folder, args.recipes, args.models, args.official_code)
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
