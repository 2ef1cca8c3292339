"""Time of one physics-informed training step: nested autograd vs forward-mode jets.

    python benchmarks/pinn_step.py [--points 1000 2000] [--width 16] [--repeats 10] [--threads 1]

One step of ``PINNTask`` on the elliptic problem: the residual ``-div(a grad u) - f``
needs second derivatives of the network output with respect to its input, plus the
boundary loss, backward and an Adam update. The residual is computed two ways, as
``PINNTask(derivatives=...)`` does: ``autograd`` (nested autograd through every layer,
the fallback) and ``jet`` (value, gradient and the Laplacian's diagonal in one forward
pass, ``lightning_kan.layers.jet``). Rows: an MLP ``[2, w, w, 1]`` (tanh), a Chebyshev
KAN (also with the generic autograd input gradient it used before its closed form,
autograd only) and a B-spline KAN of the same widths, at each point count, all
measured in this run in interleaved rounds; ``jet/ag`` is the jet step over the
autograd step of the same network, ``vs mlp`` the autograd step over the MLP's.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from common import median_ms

from lightning_kan.bases import Basis, ChebyshevBasis, register_basis
from lightning_kan.layers.jet import jet_forward
from lightning_kan.nets import KAN, MLP
from lightning_kan.pde import Elliptic


@register_basis("chebyshev_autograd")
class AutogradChebyshev(ChebyshevBasis):
    """Chebyshev with ``Basis.input_grad`` (autograd of the recurrence): the "before" row."""

    input_grad = Basis.input_grad
    derivatives = Basis.derivatives


def pinn_step(net, optimizer, problem, interior, boundary, derivatives: str) -> None:
    x = interior.clone().requires_grad_(derivatives == "autograd")  # as PINNTask does
    if derivatives == "jet":
        jet = jet_forward(net, x, problem.second_derivatives)
        residual = problem.residual_from_jet(x, jet)
    else:
        residual = problem.residual(net, x)
    loss = residual.square().mean()
    loss = loss + 10 * F.mse_loss(net(boundary), problem.boundary_values(boundary))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    problem = Elliptic(p=1.0)
    widths = [2, args.width, args.width, 1]
    nets = {
        "mlp (tanh)": MLP(widths[1:-1], activation="tanh", in_features=2, out_features=1),
        "kan chebyshev d=5": KAN(widths, basis="chebyshev", basis_kwargs={"degree": 5}),
        "  same, autograd d/dx": KAN(
            widths, basis="chebyshev_autograd", basis_kwargs={"degree": 5}
        ),
        "kan bspline G=5 k=3": KAN(widths, basis="bspline"),
    }
    modes = {name: ("autograd",) if name.startswith(" ") else ("autograd", "jet") for name in nets}
    data = {}
    for count in args.points:
        generator = torch.Generator().manual_seed(0)
        interior = problem.sample_interior(count, generator)
        data[count] = (interior, problem.sample_boundary(count // 5, generator))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, interior points "
        f"{args.points}, widths {widths}, best of {args.rounds} interleaved rounds of a "
        f"median of {args.repeats}"
    )
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=1e-3) for name, net in nets.items()}
    cases = [(n, c, m) for c in args.points for n in nets for m in modes[n]]
    milliseconds = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):  # interleaved, so a busy spell on the machine hits all rows
        for name, count, mode in cases:
            step = partial(pinn_step, nets[name], optimizers[name], problem, *data[count], mode)
            key = (name, count, mode)
            milliseconds[key] = min(milliseconds[key], median_ms(step, args.repeats))
    print(
        f"{'network':>22} {'params':>7} {'points':>6} {'autograd ms':>11} {'jet ms':>7} "
        f"{'jet/ag':>6} {'vs mlp':>6}"
    )
    for count in args.points:
        reference = milliseconds[("mlp (tanh)", count, "autograd")]
        for name, net in nets.items():
            parameters = sum(p.numel() for p in net.parameters())
            autograd = milliseconds[(name, count, "autograd")]
            jet = milliseconds.get((name, count, "jet"))
            jet_text = f"{jet:7.1f} {jet / autograd:6.2f}" if jet is not None else f"{'':>14}"
            print(
                f"{name:>22} {parameters:7d} {count:6d} {autograd:11.1f} {jet_text} "
                f"{autograd / reference:6.2f}"
            )


if __name__ == "__main__":
    main()
