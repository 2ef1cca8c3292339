"""One LoTRA fine-tuning step vs one full fine-tuning step of the same KAN, in one run.

    python benchmarks/lotra_step.py [--batch 1024] [--width 512] [--rank 8] [--repeats 10]

Model: a B-spline KAN ``[256, w, w, 10]`` (G = 5, k = 3, K = 8); step: forward, mean-square
loss, backward, ``Adam.step``. Rows: full fine-tuning (Adam over every parameter) and LoTRA
(Tucker adapters of ranks ``(r, r, r)`` on every layer, the rest frozen). Columns: step
time and its ratio to full fine-tuning, trainable parameters, Adam's state (exact bytes of
its moment buffers) and the step's transient peak above the resident set (measured in a
fresh process per row).
"""

from __future__ import annotations

import argparse
import sys

import torch
from common import MB, measure_in_subprocess, median_ms, peak_bytes

from lightning_kan import lotra
from lightning_kan.nets import KAN


def build(kind: str, width: int, rank: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = KAN([256, width, width, 10], basis="bspline")
    if kind == "full":
        return net, torch.optim.Adam(net.parameters(), lr=1e-3)
    net.requires_grad_(False)
    lotra.add_adapter(net, ranks={r"layers\.2": [min(rank, 10), rank, rank], ".*": rank})
    return net, torch.optim.Adam(lotra.lotra_param_groups(net, 1e-3), lr=1e-3)


def step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
    optimizer.step()


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value)
    )


def memory_worker(kind: str, batch: int, width: int, rank: int) -> None:
    net, optimizer = build(kind, width, rank)
    x = torch.randn(batch, 256)
    step(net, optimizer, x)  # allocate Adam's state and warm up the code paths
    print(peak_bytes(lambda: step(net, optimizer, x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--memory-worker", choices=["full", "lotra"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker, args.batch, args.width, args.rank)
        return
    x = torch.randn(args.batch, 256)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"KAN [256, {args.width}, {args.width}, 10] B-spline K=8, LoTRA ranks {args.rank}, "
        f"median of {args.repeats}"
    )
    print(
        f"{'fine-tuning':>12} {'trainable':>10} {'step ms':>8} {'vs full':>7} "
        f"{'adam MB':>8} {'vs full':>7} {'peak MB':>8} {'vs full':>7}"
    )
    reference = None
    for kind in ("full", "lotra"):
        net, optimizer = build(kind, args.width, args.rank)
        milliseconds = median_ms(lambda n=net, o=optimizer: step(n, o, x), args.repeats)
        state = optimizer_state_bytes(optimizer)
        peak = measure_in_subprocess(
            sys.argv[0],
            [kind, f"--batch={args.batch}", f"--width={args.width}", f"--rank={args.rank}"],
            [],
        )
        trainable = lotra.parameter_report(net).trainable
        reference = reference or (milliseconds, state, peak)
        print(
            f"{kind:>12} {trainable:>10,} {milliseconds:8.1f} {milliseconds / reference[0]:7.2f} "
            f"{state / MB:8.2f} {state / reference[1]:7.3f} {peak / MB:8.1f} "
            f"{peak / reference[2]:7.2f}"
        )


if __name__ == "__main__":
    main()
