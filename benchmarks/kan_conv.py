"""Speed and memory of ``KANConv2d`` against a convolution floor and ``nn.Conv2d``.

    python benchmarks/kan_conv.py [--compile] [--repeats 10]

Default case (issue 3): batch 64, 32 -> 64 channels, 3x3 kernel, 28x28 images,
B-spline basis G = 5, k = 3 (K = 8). Rows:

* ``floor``: ``F.conv2d`` over a ready ``(64, 32*K, 28, 28)`` expanded input: the
  convolution work every KAN convolution has to pay;
* ``conv2d``: a plain ``nn.Conv2d(32, 64, 3)`` of the same widths;
* ``kan-bspline`` (and ``kan-bspline+compile``): ``KANConv2d(32, 64, 3)``.

Columns as in ``kan_linear.py``; the KAN minimum is the expanded input kept for the
backward plus the weight gradient.
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

from lightning_kan.layers import KANConv2d

K = 8


def make_case(kind: str, batch: int, channels_in: int, channels_out: int, size: int) -> Case:
    torch.manual_seed(0)
    if kind == "floor":
        weight = nn.Parameter(torch.randn(channels_out, channels_in * K, 3, 3) * 0.02)
        x = torch.rand(batch, channels_in * K, size, size)
        return [weight], x, lambda inputs: F.conv2d(inputs, weight, padding=1)
    if kind == "conv2d":
        module: nn.Module = nn.Conv2d(channels_in, channels_out, 3, padding=1)
    else:
        module = KANConv2d(
            channels_in, channels_out, 3, padding=1, compiled=kind.endswith("+compile")
        )
    x = torch.rand(batch, channels_in, size, size) * 2 - 1
    return list(module.parameters()), x, module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="64x32x64x28", help="batch x in x out x size")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="add a compiled=True row")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parse_layer_benchmark_args(parser)
    batch, channels_in, channels_out, size = (int(n) for n in args.shape.split("x"))

    if args.memory_worker:
        warmup = make_case(args.memory_worker, 2, channels_in, channels_out, size)
        case = make_case(args.memory_worker, batch, channels_in, channels_out, size)
        print(peak_step_bytes(warmup, case))
        return

    kinds = ["floor", "conv2d", "kan-bspline"] + (["kan-bspline+compile"] if args.compile else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(HEADER)
    print("-" * len(HEADER))
    floor = None
    label = f"{batch}x{channels_in}->{channels_out}@{size}"
    for kind in kinds:
        times = time_case(make_case(kind, batch, channels_in, channels_out, size), args.repeats)
        floor = floor or times
        peak = None
        if not args.no_memory:
            worker_args = [kind, "--shape", args.shape]
            worker_args += ["--reuse-allocations"] if args.reuse_allocations else []
            peak = measure_in_subprocess(__file__, worker_args, args.env)
        minimum = None
        if kind.startswith("kan-"):
            expanded = batch * channels_in * (K + 1) * size * size
            minimum = 4 * (expanded + channels_out * channels_in * (K + 1) * 9)
        print(format_row(label, kind, times, floor, peak, minimum))


if __name__ == "__main__":
    main()
