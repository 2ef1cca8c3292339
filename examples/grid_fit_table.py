"""Grids that follow the data: the README's tables for ``KANTask(initial_grid=...)``.

    OMP_NUM_THREADS=1 python examples/grid_fit_table.py          # every table, one thread
    python examples/grid_fit_table.py --only feynman --seeds 3   # one table

Each row changes only ``initial_grid`` (``null``: grids as built; ``inputs``: the first
layer at its input quantiles; ``all``: every layer at its input quantiles, pykan's;
``cover``: the default, every layer, uniform knots, hidden grids grown to cover their
activations and never narrower than built), with the same budget:

* ``feynman``: I.6.20a ``exp(-theta^2/2)/sqrt(2 pi)`` on the KAN paper's raw
  ``theta in [-3, 3]`` (no normalisation) with the MetaKAN authors' recipe
  (``configs/feynman_kan_official.yaml``: ``KAN([1, 5, 1])``, G = 5, full-batch L-BFGS,
  100 steps of 20 iterations, their stopping tolerances 1e-32, best epoch by
  ``val/mae``); test MSE, geometric mean and range over the seeds (network seeds, the
  same samples). One more row adds pykan's grid refits to the default ``cover``:
  ``GridUpdate(every_n_epochs=5, until_epoch=50)`` on the 1,000 training inputs (pykan's
  ``fit`` refits at steps 0, 5, ..., 45; here the fit start fits the grid, then epochs
  5, ..., 50 refit it). The pykan 0.2.8 row (if
  ``import kan`` works: ``pip install --no-deps pykan==0.2.8``) trains the same widths
  on the same samples with its own ``fit`` (L-BFGS, lr 1, history 10, 100 steps, its
  grids refitted to the data every 5 steps until step 50, pykan's defaults; its final
  network, since it keeps no best epoch).
* ``pinn``: the B-spline elliptic PINN (``configs/pde_elliptic.yaml`` with
  ``configs/nets/bspline_kan.yaml``) for 12 epochs (2 Adam, 10 L-BFGS), validated at the
  end, on the library's default ``[-1, 1]`` grid and, for reference, the fragment's
  hand-set ``[-3, 3]``; rel. L2 against the exact solution.
* ``mnist``: one AdamW training step of the MNIST-5k KAN (``configs/mnist5k_kan.yaml``'s
  ``KAN([784, 64, 10])``, batch 128, real MNIST-5k batches) with the grids as built and
  after each fit: milliseconds per step (median of interleaved repeats) and the ratio to
  the built grid, which shows whether the uniform fast path is kept.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stderr

import torch
from results_table import CONFIGS, run

from lightning_kan.callbacks.grid_update import INITIAL_GRIDS, fit_grids
from lightning_kan.data import FunctionDataModule, ImageDataModule
from lightning_kan.nets import KAN

#: the rows of every table, in order: as built, the old rules, the default
RULES = (None, "inputs", "all", "cover")
#: the flag each rule's row shows
LABELS = {None: "as built (`null`)", "inputs": "`inputs`", "all": "`all`", "cover": "`cover`"}
assert set(RULES) == set(INITIAL_GRIDS)
#: pykan's grid refits (its ``fit``: every 5 steps until step 50) as a trainer callback
PYKAN_REFITS = (
    '--trainer.callbacks+={"class_path": "lightning_kan.callbacks.GridUpdate", '
    '"init_args": {"every_n_epochs": 5, "until_epoch": 50, "num_samples": 1000}}'
)


def option(rule: str | None) -> str:
    return f"--model.init_args.initial_grid={'null' if rule is None else rule}"


def geometric_summary(values: list[float]) -> str:
    """``"g (lo-hi)"``: geometric mean and range, or the value alone for one seed."""
    mean = math.exp(statistics.fmean(math.log(v) for v in values))
    if len(values) == 1:
        return f"{mean:.2e}"
    return f"{mean:.2e} ({min(values):.1e}-{max(values):.1e})"


# ------------------------------------------------------------------------- Feynman
FEYNMAN = ("feynman_kan_official.yaml", "--data.init_args.equation=I.6.20a")


def feynman(seeds: int, folder: str) -> None:
    print("| grid fit | test MSE (geometric mean, range) | seconds per run |")
    print("|---|---|---|")
    rows = [(LABELS[rule], (option(rule),)) for rule in RULES]
    rows.append(
        (
            "pykan's recipe: `cover` + `GridUpdate(every_n_epochs=5, until_epoch=50)`",
            (option("cover"), PYKAN_REFITS),
        )
    )
    for label, overrides in rows:
        errors, seconds = [], []
        for seed in range(seeds):
            metrics = run(FEYNMAN[0], folder, FEYNMAN[1], *overrides, f"--seed_everything={seed}")
            errors.append(metrics["test/mse"])
            seconds.append(metrics["seconds"])
        print(
            f"| {label} | {geometric_summary(errors)} | {statistics.fmean(seconds):.1f} |",
            flush=True,
        )
    pykan_row(seeds)


def pykan_row(seeds: int) -> None:
    try:
        from kan import KAN as PyKAN
    except ImportError:
        print("| pykan 0.2.8 | not installed (pip install --no-deps pykan==0.2.8) | |")
        return
    # the data of configs/feynman_kan_official.yaml with --data.init_args.equation=I.6.20a
    data = FunctionDataModule(
        "I.6.20a",
        ranges="kan_paper",
        normalize_inputs=False,
        num_train=1000,
        num_val=1000,
        num_test=1000,
        batch_size=1000,
    )
    data.setup()
    (x, y), (x_val, y_val), (x_test, y_test) = (
        (t.float() for t in data.splits[split].tensors) for split in ("train", "val", "test")
    )
    dataset = {"train_input": x, "train_label": y, "test_input": x_val, "test_label": y_val}
    errors, seconds = [], []
    for seed in range(seeds):
        model = PyKAN(width=[1, 5, 1], grid=5, k=3, seed=seed, auto_save=False)
        start = time.perf_counter()
        with redirect_stderr(io.StringIO()):  # its progress bar
            model.fit(dataset, opt="LBFGS", steps=100, lr=1.0)
        seconds.append(time.perf_counter() - start)
        with torch.no_grad():
            errors.append(float((model(x_test) - y_test).square().mean()))
    print(
        f"| pykan 0.2.8 (its `fit`: grids refitted every 5 steps until 50) "
        f"| {geometric_summary(errors)} | {statistics.fmean(seconds):.1f} |"
    )


# ---------------------------------------------------------------------------- PINN
PINN = (
    "pde_elliptic.yaml",
    f"--model.init_args.net={CONFIGS / 'nets/bspline_kan.yaml'}",
    "--trainer.max_epochs=12",
    "--trainer.check_val_every_n_epoch=12",
)
DEFAULT_GRID = (
    "--model.init_args.net.init_args.basis_kwargs="
    "{grid_size: 5, spline_order: 3, grid_range: [-1.0, 1.0]}"
)


def pinn(folder: str) -> None:
    print("| built grid | grid fit | rel. L2 | seconds |")
    print("|---|---|---|---|")
    rows = [("`[-1, 1]` (default)", rule, (DEFAULT_GRID,)) for rule in RULES]
    rows += [("`[-3, 3]` (hand-set)", rule, ()) for rule in (None, "cover")]
    for grid, rule, overrides in rows:
        metrics = run(PINN[0], folder, *PINN[1:], *overrides, option(rule))
        print(
            f"| {grid} | {LABELS[rule]} | {metrics['test/rel_l2']:.2e} "
            f"| {metrics['seconds']:.0f} |",
            flush=True,
        )


# --------------------------------------------------------------------------- MNIST
def mnist(steps: int, repeats: int) -> None:
    data = ImageDataModule("mnist5k", flatten=True, batch_size=128)
    data.setup("fit")
    batches = []
    for x, y in data.train_dataloader():
        batches.append((x, y))
    first = torch.cat([x for x, _ in batches])[:1024]
    nets = {}
    for rule in (None, "cover", "all"):
        torch.manual_seed(0)
        net = KAN([784, 64, 10], basis="bspline")
        if rule is not None:
            fit_grids(net, first, rule)
        optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        nets[rule] = (net, optimizer)

    def step(rule: str | None, index: int) -> None:
        net, optimizer = nets[rule]
        x, y = batches[index % len(batches)]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    times: dict[str | None, list[float]] = {rule: [] for rule in nets}
    for rule in nets:  # warm-up
        for index in range(10):
            step(rule, index)
    for _ in range(repeats):
        for rule in nets:
            start = time.perf_counter()
            for index in range(steps):
                step(rule, index)
            times[rule].append((time.perf_counter() - start) / steps * 1e3)
    built = statistics.median(times[None])
    print("| grid fit | uniform knots | ms per step | vs. as built |")
    print("|---|---|---|---|")
    for rule, (net, _) in nets.items():
        uniform = all(layer.basis.is_uniform for layer in net.layers)
        ms = statistics.median(times[rule])
        print(f"| {LABELS[rule]} | {'yes' if uniform else 'no'} | {ms:.1f} | {ms / built:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tables = ("feynman", "pinn", "mnist")
    parser.add_argument("--only", nargs="+", choices=tables, default=list(tables))
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the Feynman rows")
    parser.add_argument("--steps", type=int, default=100, help="MNIST steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="MNIST timing repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        for table in args.only:
            print(f"\n### {table}\n", flush=True)
            if table == "feynman":
                feynman(args.seeds, folder)
            elif table == "pinn":
                pinn(folder)
            else:
                mnist(args.steps, args.repeats)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
