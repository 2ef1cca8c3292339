"""Reproduce the README's LoTRA tables: transfer a PINN-trained Chebyshev KAN between PDEs.

    python examples/lotra_transfer.py                 # both problems, ~25 CPU minutes
    python examples/lotra_transfer.py --only elliptic --epochs 10 --pretrain-epochs 10

For each family (elliptic ``p: 1 -> 4``, steady Allen-Cahn ``eps: 0.3 -> 0.2``) a Chebyshev
KAN ``[2, 16, 16, 1]`` (degree 5) is pretrained at the first parameter, then trained at
the second by: LoTRA at three rank settings (the LoTRA callback, width-aware rates), full
fine-tuning (every parameter, from the pretrained weights), the same KAN from scratch and
an MLP of the same widths from scratch, all for the same number of Adam steps. Printed:
relative L2 error against the exact solution after 1/4, 1/2 and all of the steps, the
trainable parameters and the wall time. Then the learning-rate strategies (uniform vs
width-aware LoTRA, each at several base rates) at two widths, and the ranks that 90 % of
the energy of the *full* fine-tuning update needs in each mode (the paper's low-rank evidence), with
the spectra drawn to ``lotra_spectra_<problem>.png``.
"""

from __future__ import annotations

import argparse
import copy
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
) -> dict:
    """Adam for ``epochs`` x 10 steps (cosine decay); the rel. L2 curve, params, seconds."""
    task = PINNTask(
        net,
        optimizer=partial(torch.optim.Adam, lr=lr),
        lr_scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
    )
    data = PDEDataModule(problem, num_interior=1000, num_boundary=200, steps_per_epoch=10)
    curve = Curve()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        check_val_every_n_epoch=max(epochs // 4, 1),
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
    epochs: int, pretrain_epochs: int, lrs: tuple[float, ...], widths: tuple[int, ...]
) -> None:
    """Uniform vs width-aware rates, each at several base rates (a fair comparison tunes
    both), on the elliptic transfer with LoTRA ranks 4."""
    source, target = FAMILIES["elliptic"]
    steps = epochs * 10
    print("\n#### learning-rate strategies, elliptic p: 1 -> 4, LoTRA ranks 4\n")
    print(
        f"| width | strategy | base lr | rel. L2 @ {steps // 4} steps "
        f"| @ {steps // 2} | @ {steps} |"
    )
    print("|---|---|---|---|---|---|")
    for width in widths:
        torch.manual_seed(0)
        base = train(KAN([2, width, width, 1], **CHEBYSHEV), source, pretrain_epochs, 5e-3)
        for strategy in ("uniform", "width"):
            for lr in lrs:
                callback = lotra.LoTRA(ranks=ranks(4), lr=lr, lr_strategy=strategy)
                result = train(copy.deepcopy(base["task"].net), target, epochs, lr, (callback,))
                errors = " | ".join(f"{result['curve'][i][1]:.2e}" for i in (0, 1, -1))
                print(f"| {width} | {strategy} | {lr:g} | {errors} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=[*FAMILIES, "strategies"])
    parser.add_argument("--epochs", type=int, default=40, help="10 steps each")
    parser.add_argument("--pretrain-epochs", type=int, default=80)
    parser.add_argument("--lr", type=float, default=1e-2, help="LoTRA base learning rate")
    parser.add_argument("--strategy-lrs", type=float, nargs="+", default=[3e-3, 1e-2, 3e-2, 1e-1])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 48])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.only or [*FAMILIES, "strategies"]:
        if name == "strategies":
            strategies(
                args.epochs, args.pretrain_epochs, tuple(args.strategy_lrs), tuple(args.widths)
            )
        else:
            transfer(name, args.epochs, args.pretrain_epochs, args.lr)


if __name__ == "__main__":
    main()
