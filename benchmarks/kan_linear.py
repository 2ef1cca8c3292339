"""Speed and memory of ``KANLinear`` against a GEMM floor and an MLP layer, in one run.

    python benchmarks/kan_linear.py                 # both default shapes, every basis
    python benchmarks/kan_linear.py --input-grad    # layers inside a network (x needs grad)

For every shape ``batch x in -> out`` it prints one row per model:

* ``floor``: ``F.linear`` on a ready ``(batch, in*K)`` basis matrix (K = 8): the GEMM
  work every KAN layer has to pay, nothing else;
* ``mlp``: an ``nn.Linear(in, out)`` followed by SiLU, the same widths;
* ``kan-<basis>``: ``KANLinear(in, out, basis)`` (B-spline: G = 5, k = 3; others K = 8).

Columns: forward and forward+backward time (median of ``--repeats``), their ratio to
the floor, the peak memory of one training step (forward, backward, SGD update) and,
for KAN rows, its ratio to the minimum such a step needs: the basis matrix the
backward uses plus the weight gradient. Peak memory is measured in a fresh subprocess
per row: Linux's peak-RSS counter is reset (``/proc/self/clear_refs``) after a warm-up
step, so the figure is what the step itself touches above the model and data.

CPU PyTorch has no caching allocator: a large tensor is page-faulted afresh on every
step. Run with ``THP_MEM_ALLOC_ENABLE=1`` to let PyTorch back large tensors with
transparent huge pages; ``--env THP_MEM_ALLOC_ENABLE=1`` passes it to the subprocesses.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan import KANLinear
from lightning_kan.bases import build_basis

BASIS_OPTIONS = {
    "bspline": {"grid_size": 5, "spline_order": 3},
    "chebyshev": {"degree": 7},
    "rbf": {"num_centers": 8},
    "rswaf": {"num_centers": 8},
    "legendre": {"degree": 7},
    "gram": {"degree": 7},
}
FLOOR_K = 8


def build(kind: str, fan_in: int, fan_out: int) -> nn.Module:
    """The module a row measures; ``floor`` is a bare weight used by :func:`run_step`."""
    if kind == "floor":
        layer = nn.Module()
        layer.weight = nn.Parameter(torch.randn(fan_out, fan_in * FLOOR_K) / fan_in**0.5)
        return layer
    if kind == "mlp":
        return nn.Sequential(nn.Linear(fan_in, fan_out), nn.SiLU())
    basis = kind.removeprefix("kan-").removesuffix("+compile")
    return KANLinear(
        fan_in,
        fan_out,
        basis=basis,
        basis_kwargs=BASIS_OPTIONS[basis],
        compiled=kind.endswith("+compile"),
    )


def make_input(kind: str, batch: int, fan_in: int, input_grad: bool) -> torch.Tensor:
    width = fan_in * FLOOR_K if kind == "floor" else fan_in
    x = torch.rand(batch, width) * 2 - 1
    return x.requires_grad_(input_grad)


def forward(kind: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if kind == "floor":
        return F.linear(x, module.weight)
    return module(x)


def run_step(kind: str, module: nn.Module, x: torch.Tensor, lr: float = 1e-3) -> None:
    """One training step: forward, loss, backward, plain SGD update."""
    loss = forward(kind, module, x).square().mean()
    loss.backward()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(parameter.grad, alpha=-lr)
            parameter.grad = None
    x.grad = None


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def minimum_step_bytes(kind: str, batch: int, fan_in: int, fan_out: int) -> int | None:
    """Basis matrix kept for the backward plus the weight gradient (KAN rows only)."""
    if not kind.startswith("kan-"):
        return None
    basis = kind.removeprefix("kan-").removesuffix("+compile")
    per_input = build_basis(basis, 2, **BASIS_OPTIONS[basis]).num_functions + 1  # + base
    return 4 * (batch * fan_in * per_input + fan_out * fan_in * per_input)


# ---------------------------------------------------------------- memory worker
def _read_status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_worker(kind: str, batch: int, fan_in: int, fan_out: int, input_grad: bool) -> int:
    """Peak bytes one training step touches above the model and data (fresh process)."""
    torch.manual_seed(0)
    module = build(kind, fan_in, fan_out)
    run_step(kind, module, make_input(kind, 8, fan_in, input_grad))  # load code paths
    x = make_input(kind, batch, fan_in, input_grad)
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
        baseline = _read_status("VmRSS")
        run_step(kind, module, x)
        return _read_status("VmHWM") - baseline
    except OSError:  # no /proc reset: fall back to the high-water mark of the process
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        run_step(kind, module, x)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline


def measure_memory(kind: str, batch: int, fan_in: int, fan_out: int, args) -> int:
    command = [
        sys.executable,
        __file__,
        "--memory-worker",
        kind,
        "--shapes",
        f"{batch}x{fan_in}x{fan_out}",
    ] + (["--input-grad"] if args.input_grad else [])
    env = dict(os.environ, **dict(item.split("=", 1) for item in args.env))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return int(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ main
def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(n) for n in shape.split("x")) for shape in text.split(",")]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes",
        default="1024x784x64,4096x256x256",
        help="comma-separated batch x in x out (default: %(default)s)",
    )
    parser.add_argument(
        "--bases",
        default=",".join(BASIS_OPTIONS),
        help="comma-separated basis names (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--input-grad",
        action="store_true",
        help="the input requires grad, as for a layer inside a network",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add KANLinear(compiled=True) rows (torch.compile; slow first call)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the memory subprocesses (repeatable)",
    )
    parser.add_argument("--memory-worker", metavar="KIND", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_worker:
        (shape,) = parse_shapes(args.shapes)
        print(memory_worker(args.memory_worker, *shape, args.input_grad))
        return

    kinds = ["floor", "mlp"] + [f"kan-{name}" for name in args.bases.split(",")]
    if args.compile:
        kinds += [f"kan-{name}+compile" for name in args.bases.split(",")]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"input grad: {args.input_grad}, median of {args.repeats}"
    )
    header = (
        f"{'shape':>16} {'model':>14} {'fwd ms':>8} {'f+b ms':>8} {'fwd/fl':>7} "
        f"{'f+b/fl':>7} {'peak MB':>8} {'min MB':>7} {'peak/min':>8}"
    )
    print(header)
    print("-" * len(header))
    for batch, fan_in, fan_out in parse_shapes(args.shapes):
        floor_times = None
        for kind in kinds:
            torch.manual_seed(0)
            module = build(kind, fan_in, fan_out)
            x = make_input(kind, batch, fan_in, args.input_grad)

            def forward_only(kind=kind, module=module, x=x) -> None:
                with torch.no_grad():
                    forward(kind, module, x)

            times = (
                median_ms(forward_only, args.repeats),
                median_ms(
                    lambda kind=kind, module=module, x=x: run_step(kind, module, x), args.repeats
                ),
            )
            floor_times = floor_times or times
            peak = None if args.no_memory else measure_memory(kind, batch, fan_in, fan_out, args)
            minimum = minimum_step_bytes(kind, batch, fan_in, fan_out)
            mb = 2.0**20
            print(
                f"{batch}x{fan_in}->{fan_out:<5} {kind:>14} {times[0]:8.1f} {times[1]:8.1f} "
                f"{times[0] / floor_times[0]:7.2f} {times[1] / floor_times[1]:7.2f} "
                + (f"{peak / mb:8.1f} " if peak is not None else f"{'-':>8} ")
                + (f"{minimum / mb:7.1f} " if minimum else f"{'-':>7} ")
                + (f"{peak / minimum:8.2f}" if peak is not None and minimum else f"{'-':>8}")
            )


if __name__ == "__main__":
    main()
