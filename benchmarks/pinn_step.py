"""Time of one physics-informed training step: KANs vs an MLP of the same width.

    python benchmarks/pinn_step.py [--points 2000] [--width 16] [--repeats 10] [--threads 1]

One step of ``PINNTask`` on the elliptic problem: the residual ``-div(a grad u) - f``
needs second derivatives of the network output with respect to its input (double
backward through every layer), plus the boundary loss, backward and an Adam update.
Rows: an MLP ``[2, w, w, 1]`` (tanh), a Chebyshev KAN (also with the generic autograd
input gradient it used before its closed form) and a B-spline KAN of the same widths,
measured in this run; the ratio column is against the MLP.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from common import median_ms

from lightning_kan.bases import Basis, ChebyshevBasis, register_basis
from lightning_kan.nets import KAN, MLP
from lightning_kan.pde import Elliptic


@register_basis("chebyshev_autograd")
class AutogradChebyshev(ChebyshevBasis):
    """Chebyshev with ``Basis.input_grad`` (autograd of the recurrence): the "before" row."""

    input_grad = Basis.input_grad


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    problem = Elliptic(p=1.0)
    generator = torch.Generator().manual_seed(0)
    interior = problem.sample_interior(args.points, generator)
    boundary = problem.sample_boundary(args.points // 5, generator)
    widths = [2, args.width, args.width, 1]
    nets = {
        "mlp (tanh)": MLP(widths[1:-1], activation="tanh", in_features=2, out_features=1),
        "kan chebyshev d=5": KAN(widths, basis="chebyshev", basis_kwargs={"degree": 5}),
        "  same, autograd d/dx": KAN(
            widths, basis="chebyshev_autograd", basis_kwargs={"degree": 5}
        ),
        "kan bspline G=5 k=3": KAN(widths, basis="bspline"),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.points} "
        f"interior points, widths {widths}, best of {args.rounds} interleaved rounds "
        f"of a median of {args.repeats}"
    )
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=1e-3) for name, net in nets.items()}
    milliseconds = {name: float("inf") for name in nets}
    for _ in range(args.rounds):  # interleaved, so a busy spell on the machine hits all rows
        for name, net in nets.items():
            step = partial(pinn_step, net, optimizers[name], problem, interior, boundary)
            milliseconds[name] = min(milliseconds[name], median_ms(step, args.repeats))
    print(f"{'network':>22} {'params':>8} {'step ms':>9} {'vs mlp':>7}")
    reference = milliseconds["mlp (tanh)"]
    for name, net in nets.items():
        parameters = sum(p.numel() for p in net.parameters())
        ms = milliseconds[name]
        print(f"{name:>22} {parameters:8d} {ms:9.1f} {ms / reference:7.2f}")


if __name__ == "__main__":
    main()
