"""Reading a KAN, timed against training it: scores, prune, auto_symbolic, formula.

Each row is the median wall time of one reading step on a ``[4, 8, 8, 1]`` B-spline KAN
with 1,000 samples, and its ratio to one full-batch training step (forward, MSE,
backward, SGD update: ``common.training_step``) of the same network on the same samples,
measured in the same run.

    python benchmarks/interpret.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import median_ms, training_step

from lightning_kan.interpret import auto_symbolic, edge_scores, prune, symbolic_formula
from lightning_kan.nets import KAN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    torch.manual_seed(0)
    net = KAN([4, 8, 8, 1])
    x = torch.rand(1000, 4) * 2 - 1
    step_ms = median_ms(lambda: training_step((list(net.parameters()), x, net)), 20)
    pruned = prune(net, x, 1e-2, 1e-2)
    fixed = copy.deepcopy(pruned)
    auto_symbolic(fixed, x)
    rows = {
        "edge_scores": lambda: edge_scores(net, x),
        "prune": lambda: prune(net, x, 1e-2, 1e-2),
        "auto_symbolic": lambda: auto_symbolic(copy.deepcopy(pruned), x),
        "symbolic_formula (no simplify)": lambda: symbolic_formula(fixed, simplify=False),
    }
    print(f"training step: {step_ms:.2f} ms (the reference)")
    print("| step | ms | / training step |\n|---|---|---|")
    for name, step in rows.items():
        ms = median_ms(step, repeats)
        print(f"| {name} | {ms:.0f} | {ms / step_ms:.0f}x |")


if __name__ == "__main__":
    main()
