"""Quick start: fit f(x, y) = exp(sin(pi x) + y^2) with a B-spline KAN in plain PyTorch.

    python examples/quickstart.py [--steps 1500] [--out runs/examples/quickstart]

The quick start's function and ``[2, 5, 1]`` network without Lightning, with its own
recipe (not configs/quickstart.yaml's): full-batch Adam on 1,000 points, the grid refined
from 5 to 10 intervals a third of the way through (pykan's grid extension: same function,
more resolution), cosine learning rates. Prints the test MSE on 1,000 other points and
writes the weights to ``<out>/kan.pt``: its own folder, apart from the Lightning runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lightning_kan import KAN


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/quickstart"))
    args = parser.parse_args()

    torch.manual_seed(0)
    train_x, test_x = torch.rand(1000, 2) * 2 - 1, torch.rand(1000, 2) * 2 - 1
    train_y, test_y = target(train_x), target(test_x)
    net = KAN([2, 5, 1], basis="bspline", basis_kwargs={"grid_size": 5})
    refine_at = args.steps // 3
    start = time.perf_counter()
    for step in range(args.steps):
        if step in (0, refine_at):
            if step == refine_at:
                net.refine_grid(10)
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-2 if step == 0 else 5e-3)
            remaining = refine_at if step == 0 else args.steps - refine_at
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, remaining)
        loss = torch.nn.functional.mse_loss(net(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  train MSE {loss.item():.3e}")
    with torch.no_grad():
        test_mse = torch.nn.functional.mse_loss(net(test_x), test_y).item()
    print(
        f"test MSE {test_mse:.3e}  ({net.num_parameters()} parameters, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "kan.pt")
    print(f"weights written to {args.out / 'kan.pt'}")


if __name__ == "__main__":
    main()
