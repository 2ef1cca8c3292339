"""Training-step memory and time of KAN vs Slim KAN vs MetaKAN (and an MLP), in one run.

    OMP_NUM_THREADS=1 python benchmarks/slim_meta.py
    python benchmarks/slim_meta.py --shapes 784-64-10 --ranks 8 --hidden 16

For every network ``in-hidden-...-out`` at ``--batch`` it prints one row per model:

* ``kan``: ``KAN`` (B-spline, G = 5, k = 3, so K = 8);
* ``slim-r<r>``: ``SlimKAN`` with Tucker ranks ``min(r, mode)`` per layer;
* ``meta-h<h>``: ``MetaKAN`` with one meta-learner of hidden width ``h`` (d_z = 1);
* ``mlp``: ``MLP`` with SiLU, the same widths.

Columns: trainable parameters, forward and training-step time (forward, backward, SGD
update; median of ``--repeats``), peak memory of one training step (fresh process, see
``common.py``) and each figure's ratio to the KAN row. The input does not need a
gradient (the first layer of a network).
"""

from __future__ import annotations

import argparse

import torch
from common import MB, Case, measure_in_subprocess, peak_step_bytes, time_case

from lightning_kan.nets import KAN, MLP, MetaKAN, SlimKAN
from lightning_kan.utils import count_parameters


def make_net(kind: str, widths: list[int]) -> torch.nn.Module:
    if kind == "kan":
        return KAN(widths)
    if kind.startswith("slim-r"):
        return SlimKAN(widths, ranks=int(kind.removeprefix("slim-r")))
    if kind.startswith("meta-h"):
        return MetaKAN(widths, hidden_dim=int(kind.removeprefix("meta-h")))
    if kind == "mlp":
        return MLP(widths[1:-1], in_features=widths[0], out_features=widths[-1])
    raise ValueError(f"unknown model kind {kind!r}")


def make_case(kind: str, widths: list[int], batch: int) -> Case:
    torch.manual_seed(0)
    net = make_net(kind, widths)
    x = torch.rand(batch, widths[0]) * 2 - 1
    return [p for p in net.parameters() if p.requires_grad], x, net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", default="784-64-10,1024-1024", help="comma-separated widths (%(default)s)"
    )
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--ranks", type=int, default=16, help="Slim KAN rank (%(default)s)")
    parser.add_argument("--hidden", type=int, default=32, help="MetaKAN hidden (%(default)s)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-worker", metavar="KIND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = [[int(w) for w in shape.split("-")] for shape in args.shapes.split(",")]

    if args.memory_worker:
        warmup = make_case(args.memory_worker, shapes[0], 8)
        print(peak_step_bytes(warmup, make_case(args.memory_worker, shapes[0], args.batch)))
        return

    kinds = ["kan", f"slim-r{args.ranks}", f"meta-h{args.hidden}", "mlp"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"median of {args.repeats}"
    )
    header = (
        f"{'widths':>12} {'model':>10} {'params':>9} {'fwd ms':>8} {'step ms':>8} "
        f"{'peak MB':>8} | {'params/KAN':>10} {'step/KAN':>8} {'peak/KAN':>8}"
    )
    print(header)
    print("-" * len(header))
    for widths in shapes:
        label = "-".join(map(str, widths))
        reference = None
        for kind in kinds:
            case = make_case(kind, widths, args.batch)
            params = count_parameters(case[2])
            times = time_case(case, args.repeats)
            peak = None
            if not args.no_memory:
                worker_args = [kind, "--shapes", label, "--batch", str(args.batch)]
                peak = measure_in_subprocess(__file__, worker_args, [])
            reference = reference or (params, times[1], peak)
            peak_cells = (
                (f"{peak / MB:8.1f}", f"{peak / reference[2]:8.2f}")
                if peak is not None
                else (f"{'-':>8}", f"{'-':>8}")
            )
            print(
                f"{label:>12} {kind:>10} {params:9d} {times[0]:8.1f} {times[1]:8.1f} "
                f"{peak_cells[0]} | {params / reference[0]:10.3f} "
                f"{times[1] / reference[1]:8.2f} {peak_cells[1]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
