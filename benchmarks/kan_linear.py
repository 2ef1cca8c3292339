"""Speed and memory of ``KANLinear`` against a GEMM floor and an MLP layer, in one run.

    python benchmarks/kan_linear.py                 # both default shapes, every basis
    python benchmarks/kan_linear.py --compile       # add KANLinear(compiled=True) rows
    python benchmarks/kan_linear.py --input-grad    # layers inside a network (x needs grad)

For every shape ``batch x in -> out`` it prints one row per model:

* ``floor``: ``F.linear`` on a ready ``(batch, in*K)`` basis matrix (K = 8): the GEMM
  work every KAN layer has to pay, nothing else;
* ``mlp``: an ``nn.Linear(in, out)`` followed by SiLU, the same widths;
* ``kan-<basis>``: ``KANLinear(in, out, basis)`` (B-spline: G = 5, k = 3; others K = 8).

Columns: forward time and training-step time (forward, backward, SGD update; median of
``--repeats``), their ratios to the floor, the peak memory of one training step and,
for KAN rows, its ratio to the minimum such a step needs: the basis matrix the
backward uses plus the weight gradient, and with ``--input-grad`` the gradient of that
matrix too (see ``common.py`` for how memory is measured).

CPU PyTorch has no caching allocator: a large tensor is page-faulted afresh on every
step, so fewer temporaries is speed too.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import (
    HEADER,
    Case,
    format_row,
    measure_in_subprocess,
    parse_layer_benchmark_args,
    peak_step_bytes,
    time_case,
)
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


def make_case(kind: str, batch: int, fan_in: int, fan_out: int, input_grad: bool) -> Case:
    torch.manual_seed(0)
    if kind == "floor":
        weight = nn.Parameter(torch.randn(fan_out, fan_in * FLOOR_K) / fan_in**0.5)
        x = torch.rand(batch, fan_in * FLOOR_K).requires_grad_(input_grad)
        return [weight], x, lambda inputs: F.linear(inputs, weight)
    if kind == "mlp":
        module: nn.Module = nn.Sequential(nn.Linear(fan_in, fan_out), nn.SiLU())
    else:
        basis = kind.removeprefix("kan-").removesuffix("+compile")
        module = KANLinear(
            fan_in,
            fan_out,
            basis=basis,
            basis_kwargs=BASIS_OPTIONS[basis],
            compiled=kind.endswith("+compile"),
        )
    x = (torch.rand(batch, fan_in) * 2 - 1).requires_grad_(input_grad)
    return list(module.parameters()), x, module


def minimum_step_bytes(
    kind: str, batch: int, fan_in: int, fan_out: int, input_grad: bool
) -> int | None:
    """Basis matrix kept for the backward plus the weight gradient (KAN rows only); with
    ``input_grad`` also the basis matrix's gradient, which the input gradient needs."""
    if not kind.startswith("kan-"):
        return None
    basis = kind.removeprefix("kan-").removesuffix("+compile")
    per_input = build_basis(basis, 2, **BASIS_OPTIONS[basis]).num_functions + 1  # + base
    matrices = 2 if input_grad else 1
    return 4 * (matrices * batch * fan_in * per_input + fan_out * fan_in * per_input)


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
    args = parse_layer_benchmark_args(parser)
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]

    if args.memory_worker:
        batch, fan_in, fan_out = shapes[0]
        warmup = make_case(args.memory_worker, 8, fan_in, fan_out, args.input_grad)
        case = make_case(args.memory_worker, batch, fan_in, fan_out, args.input_grad)
        print(peak_step_bytes(warmup, case))
        return

    kinds = ["floor", "mlp"] + [f"kan-{name}" for name in args.bases.split(",")]
    if args.compile:
        kinds += [f"kan-{name}+compile" for name in args.bases.split(",")]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"input grad: {args.input_grad}, median of {args.repeats}"
    )
    print(HEADER)
    print("-" * len(HEADER))
    for batch, fan_in, fan_out in shapes:
        floor = None
        for kind in kinds:
            times = time_case(
                make_case(kind, batch, fan_in, fan_out, args.input_grad), args.repeats
            )
            floor = floor or times
            peak = None
            if not args.no_memory:
                worker_args = [kind, "--shapes", f"{batch}x{fan_in}x{fan_out}"]
                worker_args += ["--input-grad"] if args.input_grad else []
                worker_args += ["--reuse-allocations"] if args.reuse_allocations else []
                peak = measure_in_subprocess(__file__, worker_args, args.env)
            minimum = minimum_step_bytes(kind, batch, fan_in, fan_out, args.input_grad)
            print(format_row(f"{batch}x{fan_in}->{fan_out}", kind, times, floor, peak, minimum))


if __name__ == "__main__":
    main()
