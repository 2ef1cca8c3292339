"""Reproduce the README's LoTRA tables: transfer a PINN-trained Chebyshev KAN between PDEs.

    python examples/lotra_transfer.py                 # both problems, ~25 CPU minutes
    python examples/lotra_transfer.py --only elliptic --epochs 10 --pretrain-epochs 10
    python examples/lotra_transfer.py --only strategies --widths 16 64 256 --seeds 0 1 2 \
        --lr-strategies uniform balanced --base-rates 0.01 0.03 0.1 0.3 --epochs 16 \
        --pretrain-epochs 30                          # the README's rate table

For each family (elliptic ``p: 1 -> 4``, steady Allen-Cahn ``eps: 0.3 -> 0.2``) a Chebyshev
KAN ``[2, 16, 16, 1]`` (degree 5) is pretrained at the first parameter, then trained at
the second by: LoTRA at three rank settings (the LoTRA callback, width-aware rates), full
fine-tuning (every parameter, from the pretrained weights), the same KAN from scratch and
an MLP of the same widths from scratch, all for the same number of Adam steps. Printed:
relative L2 error against the exact solution after 1/4, 1/2 and all of the steps, the
trainable parameters and the wall time. Then the learning-rate strategies (``--lr-strategies``,
each at every ``--base-rates``, on a KAN pretrained from every ``--seeds`` at every
``--widths``; the median over seeds and each strategy's best rate), and the ranks that 90 % of
the energy of the *full* fine-tuning update needs in each mode (the paper's low-rank evidence), with
the spectra drawn to ``lotra_spectra_<problem>.png``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from functools import partial

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_kan import lotra
from lightning_kan.nets import KAN, MLP
from lightning_kan.pde import Elliptic, PDEDataModule, PDEProblem, PINNTask, SteadyAllenCahn
from lightning_kan.utils import count_parameters

CHEBYSHEV = {"basis": "chebyshev", "basis_kwargs": {"degree": 5}}
FAMILIES = {
    "elliptic": (Elliptic(p=1.0), Elliptic(p=4.0)),
    "allen_cahn": (SteadyAllenCahn(eps=0.3), SteadyAllenCahn(eps=0.2)),
}


def ranks(rank: int) -> dict[str, list[int]]:
    """Rank ``rank`` in every mode, clipped explicitly where a mode is smaller (2 inputs,
    1 output, K = 6): LoTRA refuses silent clipping, so the script spells it out."""
    return {
        r"net\.layers\.0": [rank, min(rank, 2), min(rank, 6)],
        r"net\.layers\.2": [1, rank, min(rank, 6)],
        ".*": [rank, rank, min(rank, 6)],
    }


class Curve(Callback):
    """Records ``(global step, val/rel_l2)`` after every validation."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.points.append((trainer.global_step, float(trainer.callback_metrics["val/rel_l2"])))


def train(
    net: torch.nn.Module,
    problem: PDEProblem,
    epochs: int,
    lr: float,
    callbacks: tuple[Callback, ...] = (),
    seed: int = 0,
    validations: int = 4,
) -> dict:
    """Adam for ``epochs`` x 10 steps (cosine decay) on collocation points drawn from
    ``seed``, validated ``validations`` times; the rel. L2 curve, params, seconds."""
    task = PINNTask(
        net,
        optimizer=partial(torch.optim.Adam, lr=lr),
        lr_scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
    )
    data = PDEDataModule(
        problem, num_interior=1000, num_boundary=200, steps_per_epoch=10, seed=seed
    )
    curve = Curve()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        check_val_every_n_epoch=max(epochs // validations, 1),
        callbacks=[curve, *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(task, data)
    return {
        "curve": curve.points,
        "seconds": time.perf_counter() - start,
        "trainable": count_parameters(task),
        "task": task,
    }


def row(label: str, result: dict) -> str:
    """A Markdown row: rel. L2 after 1/4, 1/2 and all steps (validation every 1/4)."""
    quarter, half, end = (result["curve"][i][1] for i in (0, 1, -1))
    return (
        f"| {label} | {result['trainable']:,} | {quarter:.2e} | {half:.2e} | {end:.2e} "
        f"| {result['seconds']:.0f} |"
    )


def transfer(name: str, epochs: int, pretrain_epochs: int, lr: float) -> None:
    source, target = FAMILIES[name]
    torch.manual_seed(0)
    pretrained = train(KAN([2, 16, 16, 1], **CHEBYSHEV), source, pretrain_epochs, 5e-3)
    base = pretrained["task"].net
    print(
        f"\n#### {name}: pretrained at {source.extra_repr()} (rel. L2 "
        f"{pretrained['curve'][-1][1]:.2e}), trained at {target.extra_repr()}\n"
    )
    steps = epochs * 10
    print(
        f"| method | trainable params | rel. L2 @ {steps // 4} steps | @ {steps // 2} "
        f"| @ {steps} | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for rank in (2, 4, 6):
        callback = lotra.LoTRA(ranks=ranks(rank), lr=lr, lr_strategy="width")
        result = train(copy.deepcopy(base), target, epochs, lr, (callback,))
        print(row(f"LoTRA ranks {rank}", result), flush=True)
    full = train(copy.deepcopy(base), target, epochs, 2e-3)
    print(row("full fine-tuning", full), flush=True)
    torch.manual_seed(1)
    print(row("KAN from scratch", train(KAN([2, 16, 16, 1], **CHEBYSHEV), target, epochs, 5e-3)))
    torch.manual_seed(1)
    mlp = MLP([16, 16], activation="tanh", in_features=2, out_features=1)
    print(row("MLP from scratch", train(mlp, target, epochs, 5e-3)), flush=True)
    suggested = lotra.suggest_ranks(base, full["task"].net, energy=0.9)
    print(f"\nranks keeping 90% of each mode of the full fine-tuning update: {suggested}")
    figure = lotra.plot_spectra(lotra.update_spectra(base, full["task"].net))
    figure.savefig(f"lotra_spectra_{name}.png", dpi=100)


def strategies(
    epochs: int,
    pretrain_epochs: int,
    lrs: tuple[float, ...],
    widths: tuple[int, ...],
    lr_strategies: tuple[str, ...] = ("uniform", "width"),
    seeds: tuple[int, ...] = (0,),
) -> None:
    """Learning-rate strategies on the elliptic transfer with LoTRA ranks 4: every
    strategy at every base rate (a fair comparison tunes each), on a KAN pretrained from
    every seed (which also draws the collocation points). Prints each run, the median
    over seeds, and each strategy's best base rate with the steps its median curve needs
    to reach the worse of the strategies' best final errors (validated every 1/8)."""
    source, target = FAMILIES["elliptic"]
    steps = epochs * 10
    print(f"\n#### learning-rate strategies, elliptic p: 1 -> 4, LoTRA ranks 4, {steps} steps\n")
    print("| width | seed | strategy | base lr | rel. L2 @ 1/4 | @ 1/2 | @ end |")
    print("|---|---|---|---|---|---|---|")
    curves: dict[tuple[int, str, float], list[list[tuple[int, float]]]] = {}
    for width in widths:
        for seed in seeds:
            torch.manual_seed(seed)
            net = KAN([2, width, width, 1], **CHEBYSHEV)
            base = train(net, source, pretrain_epochs, 5e-3, seed=seed)["task"].net
            for strategy, lr in itertools.product(lr_strategies, lrs):
                callback = lotra.LoTRA(ranks=ranks(4), lr=lr, lr_strategy=strategy)
                result = train(copy.deepcopy(base), target, epochs, lr, (callback,), seed, 8)
                curves.setdefault((width, strategy, lr), []).append(result["curve"])
                errors = quarters(result["curve"])
                print(f"| {width} | {seed} | {strategy} | {lr:g} | {errors} |", flush=True)
    medians = {key: median_curve(runs) for key, runs in curves.items()}
    print(f"\nmedian over seeds {list(seeds)}:\n")
    print("| width | strategy | base lr | rel. L2 @ 1/4 | @ 1/2 | @ end |")
    print("|---|---|---|---|---|---|")
    for (width, strategy, lr), curve in medians.items():
        errors = quarters(curve)
        print(f"| {width} | {strategy} | {lr:g} | {errors} |")
    print("\neach strategy at its best base rate (by the median final error):\n")
    print("| width | strategy | best lr | median final rel. L2 | seeds' range | steps to target |")
    print("|---|---|---|---|---|---|")
    for width in widths:
        best = {
            s: min(lrs, key=lambda lr, s=s: medians[(width, s, lr)][-1][1]) for s in lr_strategies
        }
        goal = max(medians[(width, s, lr)][-1][1] for s, lr in best.items())
        for strategy, lr in best.items():
            finals = sorted(curve[-1][1] for curve in curves[(width, strategy, lr)])
            reached = next(step for step, error in medians[(width, strategy, lr)] if error <= goal)
            print(
                f"| {width} | {strategy} | {lr:g} | {medians[(width, strategy, lr)][-1][1]:.2e} "
                f"| {finals[0]:.2e} - {finals[-1]:.2e} | {reached} (to {goal:.2e}) |"
            )


def quarters(curve: list[tuple[int, float]]) -> str:
    """The errors after about 1/4, 1/2 and all of the steps, as Markdown cells."""
    points = (curve[len(curve) // 4 - 1], curve[len(curve) // 2 - 1], curve[-1])
    return " | ".join(f"{error:.2e}" for _, error in points)


def median_curve(runs: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The point-wise median of validation curves taken at the same steps."""
    return [
        (points[0][0], statistics.median(e for _, e in points))
        for points in zip(*runs, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=[*FAMILIES, "strategies"])
    parser.add_argument("--epochs", type=int, default=40, help="10 steps each")
    parser.add_argument("--pretrain-epochs", type=int, default=80)
    parser.add_argument("--lr", type=float, default=1e-2, help="LoTRA base learning rate")
    parser.add_argument(
        "--base-rates",
        "--strategy-lrs",
        type=float,
        nargs="+",
        default=[3e-3, 1e-2, 3e-2, 1e-1],
        help="base rates every learning-rate strategy is tried at",
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 48])
    parser.add_argument(
        "--lr-strategies", nargs="+", choices=lotra.LR_STRATEGIES, default=["uniform", "width"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.only or [*FAMILIES, "strategies"]:
        if name == "strategies":
            strategies(
                args.epochs,
                args.pretrain_epochs,
                tuple(args.base_rates),
                tuple(args.widths),
                tuple(args.lr_strategies),
                tuple(args.seeds),
            )
        else:
            transfer(name, args.epochs, args.pretrain_epochs, args.lr)


if __name__ == "__main__":
    main()
