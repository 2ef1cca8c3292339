"""Speed and memory of ``KANLinear`` against a GEMM floor and an MLP layer, in one run.

    python benchmarks/kan_linear.py                 # both default shapes, every basis
    python benchmarks/kan_linear.py --compile       # add KANLinear(compiled=True) rows
    python benchmarks/kan_linear.py --compile bspline   # ... for the B-spline layer only
    python benchmarks/kan_linear.py --input-grad    # layers inside a network (x needs grad)
    python benchmarks/kan_linear.py --shapes 512x64x64:g20   # B-spline G = 20 (K = 23)
    python benchmarks/kan_linear.py --device cuda --compile  # GPU shapes, CUDA events

For every shape ``batch x in -> out`` it prints one row per model:

* ``floor``: ``F.linear`` on a ready ``(batch, in*K)`` basis matrix (K = 8): the GEMM
  work every KAN layer has to pay, nothing else;
* ``mlp``: an ``nn.Linear(in, out)`` followed by SiLU, the same widths;
* ``kan-<basis>``: ``KANLinear(in, out, basis)`` (B-spline: G = 5, k = 3; others K = 8);
  a shape suffix ``:gG`` sets B-spline G (K = G + 3) and gives the floor and the other
  families the same K;
* ``inkan`` / ``efficient-kan``: the same layer from those packages, when they import
  (benchmark-only dependencies; ``inkan.KANLayer`` with its defaults, compiled basis).

Columns: forward time and training-step time (forward, backward, SGD update; median of
``--repeats`` rounds that run every row of a shape once in turn, so a slow spell of a
shared machine slows all rows alike), their ratios to the floor, the peak memory of one
training step and, for KAN rows, its ratio to the minimum such a step needs: the basis matrix the
backward uses plus the weight gradient, and with ``--input-grad`` the gradient of that
matrix too (see ``common.py`` for how memory is measured). A B-spline layer that takes the
local contraction (``K >= 3 (k + 1)``, e.g. ``:g20``; ``layers/local_spline.py``) builds
no basis matrix at all, so its ratio is below 1.

With ``--device cuda`` the default shapes are GPU sizes, times come from CUDA events
and the peak is ``torch.cuda.max_memory_allocated`` above the model and data.
CPU PyTorch has no caching allocator: a large tensor is page-faulted afresh on every
step, so fewer temporaries is speed too.
"""

from __future__ import annotations

import argparse
import importlib.util

import torch
import torch.nn.functional as F
from common import (
    HEADER,
    Case,
    cuda_peak_step_bytes,
    format_row,
    measure_in_subprocess,
    parse_layer_benchmark_args,
    peak_step_bytes,
    time_cases_interleaved,
)
from torch import nn

from lightning_kan import KANLinear
from lightning_kan.bases import available_bases, build_basis

SPLINE_ORDER = 3
FLOOR_K = 8  # K of every family at the default G = 5
CPU_SHAPES = "1024x784x64,4096x256x256"
# issue 19: the CPU shapes scaled up to GPU sizes (batch 8192-65536, widths 512-4096)
CUDA_SHAPES = "16384x2048x512,65536x512x512,8192x4096x4096"
#: other libraries' layers, benchmarked when their package imports
FOREIGN = {"inkan": "inkan", "efficient-kan": "efficient_kan"}


def basis_options(basis: str, k: int) -> dict:
    """Options giving family ``basis`` K = ``k`` functions (B-spline: G = k - 3, cubic);
    a family not listed here is built with its defaults."""
    sized = {
        "bspline": {"grid_size": k - SPLINE_ORDER, "spline_order": SPLINE_ORDER},
        "chebyshev": {"degree": k - 1},
        "legendre": {"degree": k - 1},
        "gram": {"degree": k - 1},
        "rbf": {"num_centers": k},
        "rswaf": {"num_centers": k},
        "fourierkan": {"grid_size": k // 2},  # cos and sin of each harmonic: K = 2 g
        "bernstein": {"degree": k - 1},
        "jacobi": {"degree": k - 1},
        "wavelet": {"num_wavelets": k},
        "relukan": {"grid_size": k - SPLINE_ORDER, "order": SPLINE_ORDER},
    }
    return sized.get(basis, {})


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``BxIxO`` or ``BxIxO:gG`` -> (batch, in, out, K); K = G + 3 (default G = 5)."""
    dims, _, grid = text.partition(":")
    try:
        batch, fan_in, fan_out = (int(n) for n in dims.split("x"))
        k = FLOOR_K if not grid else int(grid.removeprefix("g")) + SPLINE_ORDER
    except ValueError:
        raise SystemExit(
            f"--shapes: {text!r} is not batch x in x out, optionally with a B-spline grid "
            "size; write e.g. 1024x784x64 or 512x64x64:g20"
        ) from None
    return batch, fan_in, fan_out, k


def foreign_module(kind: str, fan_in: int, fan_out: int, k: int) -> nn.Module:
    """inkan's or efficient-kan's cubic B-spline layer with G = k - 3."""
    grid = k - SPLINE_ORDER
    if kind == "inkan":
        from inkan import KANLayer

        return KANLayer(fan_in, fan_out, grid_size=grid, spline_order=SPLINE_ORDER)
    from efficient_kan import KANLinear as EfficientKANLinear

    return EfficientKANLinear(fan_in, fan_out, grid_size=grid, spline_order=SPLINE_ORDER)


def make_case(
    kind: str, batch: int, fan_in: int, fan_out: int, input_grad: bool, k: int, device: str
) -> Case:
    torch.manual_seed(0)
    if kind == "floor":
        weight = nn.Parameter(torch.randn(fan_out, fan_in * k, device=device) / fan_in**0.5)
        x = torch.rand(batch, fan_in * k, device=device).requires_grad_(input_grad)
        return [weight], x, lambda inputs: F.linear(inputs, weight)
    if kind == "mlp":
        module: nn.Module = nn.Sequential(nn.Linear(fan_in, fan_out), nn.SiLU())
    elif kind in FOREIGN:
        module = foreign_module(kind, fan_in, fan_out, k)
    else:
        basis = kind.removeprefix("kan-").removesuffix("+compile")
        module = KANLinear(
            fan_in,
            fan_out,
            basis=basis,
            basis_kwargs=basis_options(basis, k),
            compiled=kind.endswith("+compile"),
        )
    module.to(device)
    x = (torch.rand(batch, fan_in, device=device) * 2 - 1).requires_grad_(input_grad)
    return list(module.parameters()), x, module


def minimum_step_bytes(
    kind: str, batch: int, fan_in: int, fan_out: int, input_grad: bool, k: int
) -> int | None:
    """Basis matrix kept for the backward plus the weight gradient (KAN rows only); with
    ``input_grad`` also the basis matrix's gradient, which the input gradient needs."""
    if not kind.startswith("kan-"):
        return None
    basis = kind.removeprefix("kan-").removesuffix("+compile")
    per_input = build_basis(basis, 2, **basis_options(basis, k)).num_functions + 1  # + base
    matrices = 2 if input_grad else 1
    return 4 * (matrices * batch * fan_in * per_input + fan_out * fan_in * per_input)


def check_device(device: str) -> None:
    """Refuse ``--device cuda`` without a usable GPU, in one paragraph."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device cuda: no CUDA device is available to this process (torch "
            f"{torch.__version__}, torch.cuda.is_available() is False); run on a machine "
            "with an NVIDIA GPU and a CUDA build of torch, or use --device cpu"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes",
        help=f"comma-separated batch x in x out[:gG] (default: {CPU_SHAPES}; "
        f"with --device cuda: {CUDA_SHAPES})",
    )
    parser.add_argument(
        "--bases",
        default=",".join(available_bases()),
        help="comma-separated basis names (default: every registered family)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--no-foreign",
        action="store_true",
        help="skip the inkan / efficient-kan rows even where those packages import",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--input-grad",
        action="store_true",
        help="the input requires grad, as for a layer inside a network",
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="",
        metavar="BASES",
        help="add KANLinear(compiled=True) rows (torch.compile; slow first call) for every "
        "basis of --bases, or for the comma-separated BASES given",
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
    check_device(args.device)
    default_shapes = CUDA_SHAPES if args.device == "cuda" else CPU_SHAPES
    shapes = [parse_shape(shape) for shape in (args.shapes or default_shapes).split(",")]

    if args.memory_worker:
        batch, fan_in, fan_out, k = shapes[0]
        kind, grad = args.memory_worker, args.input_grad
        case = make_case(kind, batch, fan_in, fan_out, grad, k, "cpu")
        # a compiled kernel is specialised to its shapes: warm it up on the measured case
        compiled = kind.endswith("+compile") or kind == "inkan"
        warmup = case if compiled else make_case(kind, 8, fan_in, fan_out, grad, k, "cpu")
        print(peak_step_bytes(warmup, case))
        return

    foreign = [] if args.no_foreign else [k for k, m in FOREIGN.items() if importable(m)]
    kinds = ["floor", "mlp"] + [f"kan-{name}" for name in args.bases.split(",")]
    if args.compile is not None:
        kinds += [f"kan-{name}+compile" for name in (args.compile or args.bases).split(",")]
    kinds += foreign
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"torch {torch.__version__}, {device_name}, {torch.get_num_threads()} threads, "
        f"input grad: {args.input_grad}, median of {args.repeats}"
    )
    print(HEADER)
    print("-" * len(HEADER))
    for batch, fan_in, fan_out, k in shapes:
        label = f"{batch}x{fan_in}->{fan_out}" + (f" K={k}" if k != FLOOR_K else "")
        cases = [
            make_case(kind, batch, fan_in, fan_out, args.input_grad, k, args.device)
            for kind in kinds
        ]
        all_times = time_cases_interleaved(cases, args.repeats, args.device)
        for kind, case, times in zip(kinds, cases, all_times, strict=True):
            peak = None
            if args.device == "cuda":
                peak = None if args.no_memory else cuda_peak_step_bytes(case)
            elif not args.no_memory:
                shape = f"{batch}x{fan_in}x{fan_out}:g{k - SPLINE_ORDER}"
                worker_args = [kind, "--shapes", shape]
                worker_args += ["--input-grad"] if args.input_grad else []
                worker_args += ["--reuse-allocations"] if args.reuse_allocations else []
                peak = measure_in_subprocess(__file__, worker_args, args.env)
            minimum = minimum_step_bytes(kind, batch, fan_in, fan_out, args.input_grad, k)
            print(format_row(label, kind, times, all_times[0], peak, minimum), flush=True)
        del cases


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (a benchmark-only dependency)."""
    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
