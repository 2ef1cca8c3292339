"""Reproduce the README's PDE table: Chebyshev KAN vs MLP on every shipped PDE config.

    python examples/pde_table.py                       # all rows, one CPU thread
    python examples/pde_table.py --only elliptic helmholtz

Each ``configs/pde_*.yaml`` is trained as shipped (Chebyshev KAN, Adam then L-BFGS) and
with its network swapped for ``configs/nets/mlp.yaml``; the elliptic problem also with
``configs/nets/bspline_kan.yaml``. Rows: relative L2 error of the best validation
checkpoint against the exact solution on the 101-per-axis grid, trainable parameters
and the wall time of ``Trainer.fit`` (validation included) on one thread.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import yaml
from results_table import CONFIGS, run

#: problem name -> (config, networks to compare: label -> net config or None as shipped)
PROBLEMS = {
    "elliptic": ("pde_elliptic.yaml", ("chebyshev", "mlp", "bspline")),
    "helmholtz": ("pde_helmholtz.yaml", ("chebyshev", "mlp")),
    "allen_cahn": ("pde_allen_cahn.yaml", ("chebyshev", "mlp")),
    "allen_cahn_time": ("pde_allen_cahn_time.yaml", ("chebyshev", "mlp")),
    "burgers": ("pde_burgers.yaml", ("chebyshev", "mlp")),
}
NETWORKS = {
    "chebyshev": ("Chebyshev KAN", None),
    "mlp": ("MLP (tanh)", "nets/mlp.yaml"),
    "bspline": ("B-spline KAN", "nets/bspline_kan.yaml"),
}


def problem_label(config: str) -> str:
    """``"Helmholtz(a1=1.0, a2=4.0, k=1.0)"``: the config's problem and its parameter."""
    problem = yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"]["problem"]
    arguments = ", ".join(f"{k}={v}" for k, v in problem.get("init_args", {}).items())
    return f"{problem['class_path'].rsplit('.', 1)[-1]}({arguments})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| problem | network | parameters | rel. L2 | wall time (s) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            config, networks = PROBLEMS[name]
            for network in networks:
                if args.networks and network not in args.networks:
                    continue
                label, net_config = NETWORKS[network]
                overrides = [f"--model.init_args.net={CONFIGS / net_config}"] if net_config else []
                metrics = run(config, folder, *overrides)
                print(
                    f"| {problem_label(config)} | {label} | {metrics['parameters']} "
                    f"| {metrics['test/rel_l2']:.2e} | {metrics['seconds']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
