"""Shared timing and peak-memory helpers for the benchmark scripts.

A benchmark script describes its rows as *cases*: ``make_case(kind, shape)`` returns
``(parameters, x, forward)``. This module times a case in-process and measures the
peak memory of one training step in a fresh subprocess (the script re-invoked with
``--memory-worker``), where Linux's peak-RSS counter is reset after a warm-up step
(``/proc/self/clear_refs``), so the figure is what the step itself touches above the
model and data.

On CUDA (``--device cuda``) the same cases are timed with CUDA events and the peak is
``torch.cuda.max_memory_allocated`` during one step above what was allocated before it,
measured in-process (the caching allocator's counters reset per step).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import torch

from lightning_kan.cpu import reuse_large_allocations

Case = tuple[Iterable[torch.nn.Parameter], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]
MB = 2.0**20


def training_step(case: Case, lr: float = 1e-3) -> None:
    """Forward, mean-square loss, backward and a plain SGD update (no optimizer state)."""
    parameters, x, forward = case
    forward(x).square().mean().backward()
    with torch.no_grad():
        for parameter in parameters:
            parameter.add_(parameter.grad, alpha=-lr)
            parameter.grad = None
    x.grad = None


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds after three warm-up calls."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def time_case(case: Case, repeats: int) -> tuple[float, float]:
    """(forward ms, training-step ms) of a case."""
    _, x, forward = case

    def forward_only() -> None:
        with torch.no_grad():
            forward(x)

    return median_ms(forward_only, repeats), median_ms(lambda: training_step(case), repeats)


def time_cases_interleaved(
    cases: list[Case], repeats: int, device: str
) -> list[tuple[float, float]]:
    """(forward ms, training-step ms) of every case, medians of ``repeats`` rounds in
    which each case runs in turn (an untimed call, then the timed one, so each case finds
    its own data in cache as when timed alone), after three warm-up calls of each.

    Interleaving is what makes the ratios to the floor (the first case) trustworthy on a
    shared VM: a slow spell of the host slows every row of the round alike, where timing
    the rows one after another charges it to whichever row was running (seen here: the
    same floor 2.4 ms in one run, 4.2 ms in the next)."""
    clock = _cuda_elapsed_ms if device == "cuda" else _wall_ms
    steps = []
    for case in cases:
        _, x, forward = case

        def forward_only(x: torch.Tensor = x, forward: Callable = forward) -> None:
            with torch.no_grad():
                forward(x)

        steps.append((forward_only, lambda case=case: training_step(case)))
    for forward_only, step in steps:
        for _ in range(3):
            forward_only()
            step()
    samples = [([], []) for _ in cases]
    for _ in range(repeats):
        for (forward_only, step), (forward_ms, step_ms) in zip(steps, samples, strict=True):
            forward_only()  # untimed: the timed call finds its case's data in cache
            forward_ms.append(clock(forward_only))
            step()
            step_ms.append(clock(step))
    return [(statistics.median(f), statistics.median(s)) for f, s in samples]


def _wall_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _cuda_elapsed_ms(fn: Callable[[], object]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def cuda_peak_step_bytes(case: Case) -> int:
    """Peak CUDA bytes one training step of ``case`` allocates above what is allocated
    before it (model, data); warmed up first so lazy state is not counted."""
    training_step(case)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    training_step(case)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - baseline


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_bytes(step: Callable[[], object]) -> int:
    """Peak bytes above the current resident set that one call of ``step`` touches."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
        baseline = _status_bytes("VmRSS")
        step()
        return _status_bytes("VmHWM") - baseline
    except OSError:  # no /proc reset available: fall back to the process high-water mark
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline


def peak_step_bytes(warmup: Case, case: Case) -> int:
    """Peak bytes one training step of ``case`` touches (call in a fresh process)."""
    training_step(warmup)  # load code paths and autograd machinery first
    return peak_bytes(lambda: training_step(case))


def measure_in_subprocess(script: str, arguments: list[str], env: list[str]) -> int:
    """Run ``script --memory-worker ...`` in a fresh interpreter; it prints the bytes."""
    command = [sys.executable, script, "--memory-worker", *arguments]
    environment = dict(os.environ, **dict(item.split("=", 1) for item in env))
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def format_row(
    label: str,
    kind: str,
    times: tuple[float, float],
    floor: tuple[float, float],
    peak: int | None,
    minimum: int | None,
) -> str:
    """One table row; ``-`` where a figure does not apply."""
    cells = [
        f"{label:>18} {kind:>22}",
        f"{times[0]:8.1f} {times[1]:8.1f}",
        f"{times[0] / floor[0]:7.2f} {times[1] / floor[1]:7.2f}",
        f"{peak / MB:8.1f}" if peak is not None else f"{'-':>8}",
        f"{minimum / MB:7.1f}" if minimum else f"{'-':>7}",
        f"{peak / minimum:8.2f}" if peak is not None and minimum else f"{'-':>8}",
    ]
    return " ".join(cells)


HEADER = (
    f"{'shape':>18} {'model':>22} {'fwd ms':>8} {'step ms':>8} {'fwd/fl':>7} {'step/fl':>7} "
    f"{'peak MB':>8} {'min MB':>7} {'peak/min':>8}"
)


def parse_layer_benchmark_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add ``--reuse-allocations`` and the hidden ``--memory-worker``, parse, and apply the
    allocator setting (before anything is allocated)."""
    parser.add_argument(
        "--reuse-allocations",
        action="store_true",
        help="lightning_kan.cpu.reuse_large_allocations() (also in subprocesses)",
    )
    parser.add_argument("--memory-worker", metavar="KIND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reuse_allocations:
        reuse_large_allocations()
    return args
