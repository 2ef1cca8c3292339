"""Time of one physics-informed training step: KANs vs an MLP of the same width.

    python benchmarks/pinn_step.py [--points 2000] [--width 16] [--repeats 10]

One step of ``PINNTask`` on the elliptic problem: the residual ``-div(a grad u) - f``
needs second derivatives of the network output with respect to its input (double
backward through every layer), plus the boundary loss, backward and an Adam update.
Rows: an MLP ``[2, w, w, 1]`` (tanh), a Chebyshev KAN and a B-spline KAN of the same
widths, measured in this run; the ratio column is against the MLP.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import median_ms

from lightning_kan.nets import KAN, MLP
from lightning_kan.pde import Elliptic


def pinn_step(net: torch.nn.Module, optimizer, problem, interior, boundary) -> None:
    x = interior.clone().requires_grad_(True)
    loss = problem.residual(net, x).square().mean()
    loss = loss + 10 * F.mse_loss(net(boundary), problem.boundary_values(boundary))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2000, help="interior collocation points")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    problem = Elliptic(p=1.0)
    generator = torch.Generator().manual_seed(0)
    interior = problem.sample_interior(args.points, generator)
    boundary = problem.sample_boundary(args.points // 5, generator)
    widths = [2, args.width, args.width, 1]
    nets = {
        "mlp (tanh)": MLP(widths[1:-1], activation="tanh", in_features=2, out_features=1),
        "kan chebyshev d=5": KAN(widths, basis="chebyshev", basis_kwargs={"degree": 5}),
        "kan bspline G=5 k=3": KAN(widths, basis="bspline"),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.points} "
        f"interior points, widths {widths}, median of {args.repeats}"
    )
    print(f"{'network':>22} {'params':>8} {'step ms':>9} {'vs mlp':>7}")
    reference = None
    for name, net in nets.items():
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        milliseconds = median_ms(
            lambda net=net, optimizer=optimizer: pinn_step(
                net, optimizer, problem, interior, boundary
            ),
            args.repeats,
        )
        reference = reference or milliseconds
        parameters = sum(p.numel() for p in net.parameters())
        print(f"{name:>22} {parameters:8d} {milliseconds:9.1f} {milliseconds / reference:7.2f}")


if __name__ == "__main__":
    main()
