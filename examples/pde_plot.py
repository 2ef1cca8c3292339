"""Plot a trained PINN: its solution, the exact solution and the error field (PNG).

    lightning_kan fit --config configs/pde_elliptic.yaml
    python examples/pde_plot.py runs/pde_elliptic/version_0       # -> .../solution.png

Rebuilds the model and data module from the run's ``config.yaml``, loads
``checkpoints/last.ckpt``, evaluates on the problem's test grid and draws three panels
over the (2-D) domain. Prints the relative L2 error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from matplotlib.figure import Figure

from lightning_kan.cli import build_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with config.yaml and checkpoints/")
    parser.add_argument("--points", type=int, default=101, help="grid points per axis")
    args = parser.parse_args()

    config = yaml.safe_load((args.run / "config.yaml").read_text())
    for fit_only in ("ckpt_path", "weights_only"):  # fit-time settings; last.ckpt is loaded below
        config.pop(fit_only, None)
    config["trainer"]["logger"] = False
    cli = build_cli(config, run=False)
    checkpoint = torch.load(args.run / "checkpoints" / "last.ckpt", weights_only=True)
    task, problem = cli.model, cli.datamodule.problem
    task.load_state_dict(checkpoint["state_dict"])
    task.eval()
    grid = problem.test_grid(args.points)
    with torch.no_grad():
        predicted = task(grid.float()).double()
    exact = problem.exact(grid)
    error = (predicted - exact).norm() / exact.norm()
    print(f"{problem}: relative L2 error {error.item():.3e}")

    shape = (args.points, args.points)
    x, y = (grid[:, d].reshape(shape) for d in range(2))
    figure = Figure(figsize=(13, 3.8))
    panels = [("network", predicted), ("exact", exact), ("|error|", (predicted - exact).abs())]
    for index, (title, values) in enumerate(panels):
        axis = figure.add_subplot(1, 3, index + 1)
        image = axis.pcolormesh(x, y, values.reshape(shape), shading="auto", cmap="viridis")
        figure.colorbar(image, ax=axis)
        axis.set_title(title)
        axis.set_aspect("equal" if not problem.time_dims else "auto")
    figure.suptitle(f"{problem}  (relative L2 {error.item():.2e})")
    figure.tight_layout()
    output = args.run / "solution.png"
    figure.savefig(output, dpi=110)
    print(f"written {output}")


if __name__ == "__main__":
    main()
