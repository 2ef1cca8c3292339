"""lightning_kan's PINN options against PINA's KAN and MLP, side by side (issue 15).

    python benchmarks/pde_vs_pina.py                      # 15 s per row, one thread (~6 min)
    python benchmarks/pde_vs_pina.py --steps 500          # the same steps for every row
    python benchmarks/pde_vs_pina.py --problems burgers --methods plain pina-kan

Every row solves the same problem on the same collocation points (one seeded set of
``--interior`` interior and ``--boundary`` boundary points, drawn by ``PDEDataModule``
and handed to PINA as ``Condition(input=LabelTensor(...), equation=...)``), with the
same loss (``mean(residual^2) + 10 * mean((u - g)^2)``; PINA: ``ScalarWeighting``), the
same optimizer (Adam, lr 5e-3, constant), the same seed and the same budget: by default
equal wall time per row (``--seconds``; a callback stops either library's Lightning
trainer after the step that passes it), or equal steps (``--steps``). Each library runs
its own Lightning loop, one full batch per step. Rows: relative L2 against the exact
solution on the 101-per-axis grid, trainable parameters, steps taken, wall time of
``Trainer.fit``. Writes ``benchmarks/results/pde_vs_pina.md`` and prints it.

PINA is a benchmark-only dependency, installed without touching torch or lightning:

    pip install --no-deps "pina-mathlab==0.3.*" torch_geometric psutil

(pina-mathlab 0.3.2 imports torch_geometric, which imports psutil; the rest of their
requirements are already there). Without PINA the PINA rows are skipped, with a note.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from lightning_kan.atomic import atomic_write_text
from lightning_kan.nets import KAN, MLP
from lightning_kan.pde import (
    Burgers,
    HardDirichlet,
    Helmholtz,
    PDEDataModule,
    PDEProblem,
    PINNTask,
    R3Sampling,
    SteadyAllenCahn,
)

RESULTS = Path(__file__).resolve().parent / "results" / "pde_vs_pina.md"
BOUNDARY_WEIGHT = 10.0
LR = 5e-3
#: every network in the table: the shipped configs' nets (configs/pde_*.yaml, nets/mlp.yaml)
KAN_WIDTHS, KAN_DEGREE = (16, 16), 5
MLP_WIDTHS = (64, 64, 64)
#: PINA's KAN: quadratic B-splines (its default order 3) with 6 functions per edge, so it
#: has exactly the parameters of our Chebyshev KAN (degree 5: 6 functions per edge)
PINA_ORDER, PINA_KNOTS = 3, 9


@dataclass(frozen=True)
class Problem:
    """A table problem: how to build it and the names PINA gives its coordinates."""

    build: Callable[[], PDEProblem]
    variables: tuple[str, ...]


PROBLEMS: dict[str, Problem] = {
    "helmholtz": Problem(lambda: Helmholtz(a1=1.0, a2=4.0, k=1.0), ("x", "y")),
    "allen_cahn": Problem(lambda: SteadyAllenCahn(eps=0.1), ("x", "y")),
    "burgers": Problem(lambda: Burgers(nu=0.05), ("x", "t")),
}


@dataclass(frozen=True)
class Budget:
    """Points, seed and when to stop: ``steps`` (equal steps) or ``seconds`` (equal time)."""

    interior: int = 1000
    boundary: int = 200
    seed: int = 0
    steps: int | None = None
    seconds: float | None = 15.0
    test_points: int = 101


@dataclass
class Result:
    """One row: the trained network's error and what it cost."""

    rel_l2: float
    parameters: int
    steps: int
    seconds: float
    net: nn.Module = field(repr=False)


@dataclass(frozen=True)
class Method:
    """A table row's recipe. ``library`` is ``"lightning_kan"`` or ``"pina"``; ``only``
    limits it to some problems (``causal`` needs time); ``net`` is ``"kan"`` or ``"mlp"``
    (the verdicts compare like with like). The lightning_kan fields are the task's
    options, the data module's ``adaptive`` mode, extra callbacks and ``hard`` (wrap the
    network in ``HardDirichlet``); ``pina_model`` builds PINA's network from the input
    dimension."""

    label: str
    library: str = "lightning_kan"
    net: str = "kan"
    task: dict[str, Any] = field(default_factory=dict)
    adaptive: bool = False
    callbacks: Callable[[], list[L.Callback]] = list
    hard: bool = False
    only: tuple[str, ...] | None = None
    pina_model: Callable[[int], nn.Module] | None = None


def pina_kan(dim: int) -> nn.Module:
    """PINA's KAN ``[dim, 16, 16, 1]``, SiLU base branch and grid ``[-1, 1]`` as it ships."""
    from pina.model import KolmogorovArnoldNetwork

    return KolmogorovArnoldNetwork(
        [dim, *KAN_WIDTHS, 1], spline_order=PINA_ORDER, n_knots=PINA_KNOTS
    )


def pina_mlp(dim: int) -> nn.Module:
    """PINA's MLP with our MLP's widths and activation (the same ``nn.Linear`` layers in
    the same order, so the same seed gives the same initial network)."""
    from pina.model import FeedForward

    return FeedForward(dim, 1, inner_size=MLP_WIDTHS[0], n_layers=len(MLP_WIDTHS), func=nn.Tanh)


#: the rows, in table order; add a row here (another engineer's options go the same way)
METHODS: dict[str, Method] = {
    "plain": Method("PINNTask, Chebyshev KAN"),
    "r3": Method(
        "+ R3 adaptive collocation",
        adaptive=True,
        callbacks=lambda: [R3Sampling(every_n_epochs=10)],
    ),
    "annealing": Method("+ annealing loss weights", task={"loss_weighting": "annealing"}),
    "causal": Method(
        "+ causal weights",
        task={"loss_weighting": "causal", "loss_weighting_kwargs": {"bins": 16, "eps": 1.0}},
        only=("burgers",),
    ),
    "hard": Method("+ HardDirichlet", hard=True),
    "mlp": Method("PINNTask, MLP (tanh)", net="mlp"),
    "pina-kan": Method("PINA, KolmogorovArnoldNetwork", library="pina", pina_model=pina_kan),
    "pina-mlp": Method("PINA, FeedForward (tanh)", library="pina", net="mlp", pina_model=pina_mlp),
}
#: the verdicts compare the best row of each library among these networks (Method.net)
NETWORKS = {"kan": "KAN", "mlp": "MLP", "any": "any network"}


class StopAfter(L.Callback):
    """Stops a fit (either library's trainer) after the first step that ends past
    ``seconds`` from the start of training."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() - self.start >= self.seconds:
            trainer.should_stop = True


def collocation(problem: PDEProblem, budget: Budget) -> dict[str, torch.Tensor]:
    """The one point set every row trains on: ``PDEDataModule``'s first batch."""
    data = PDEDataModule(problem, budget.interior, budget.boundary, 1, False, seed=budget.seed)
    return next(iter(data.train_dataloader()))


def trainer_options(budget: Budget) -> dict[str, Any]:
    """Lightning options both libraries get: CPU, no logging, no validation, the budget."""
    steps = budget.steps if budget.steps is not None else 10**9
    callbacks = [] if budget.seconds is None else [StopAfter(budget.seconds)]
    return {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": steps,  # one full batch per epoch in both libraries
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "callbacks": callbacks,
    }


def relative_l2(
    model: Callable[[torch.Tensor], torch.Tensor], problem: PDEProblem, points: int
) -> float:
    """``||u - u_exact|| / ||u_exact||`` on the problem's test grid."""
    grid = problem.test_grid(points).float()
    with torch.no_grad():
        error = model(grid).reshape(-1, 1) - problem.exact(grid)
    return float(error.norm() / problem.exact(grid).norm())


def count(net: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def fit(trainer: L.Trainer, *args: Any) -> float:
    """Wall time of ``trainer.fit(*args)`` in seconds."""
    start = time.perf_counter()
    trainer.fit(*args)
    return time.perf_counter() - start


def run_ours(method: Method, problem: PDEProblem, budget: Budget) -> Result:
    """One lightning_kan row: ``PINNTask`` on ``PDEDataModule``'s fixed first batch."""
    L.seed_everything(budget.seed, verbose=False)
    widths = (problem.dim, *(KAN_WIDTHS if method.net == "kan" else MLP_WIDTHS), 1)
    if method.net == "kan":
        net = KAN(list(widths), basis="chebyshev", basis_kwargs={"degree": KAN_DEGREE})
    else:
        net = MLP(list(widths), activation="tanh")
    model = HardDirichlet(net) if method.hard else net
    task = PINNTask(
        model,
        boundary_weight=BOUNDARY_WEIGHT,
        optimizer=lambda p: torch.optim.Adam(p, lr=LR),
        **method.task,
    )
    data = PDEDataModule(
        problem,
        budget.interior,
        budget.boundary,
        1,
        False,
        seed=budget.seed,
        adaptive=method.adaptive,
    )
    options = trainer_options(budget)
    trainer = L.Trainer(**{**options, "callbacks": options["callbacks"] + method.callbacks()})
    seconds = fit(trainer, task, data)
    task.eval()
    return Result(
        relative_l2(task.net, problem, budget.test_points),
        count(net),
        trainer.global_step,
        seconds,
        net,
    )


def pina_residual(problem: PDEProblem) -> Callable[[Any, Any], torch.Tensor]:
    """The problem's residual written with PINA's operators (``pina.operator``), on
    PINA's labelled tensors; equal to ``problem.residual`` (tested in float64)."""
    from pina.operator import grad, laplacian

    def plain(tensor: Any) -> torch.Tensor:
        return tensor.as_subclass(torch.Tensor)

    if isinstance(problem, Helmholtz):
        k2, a2 = problem.k**2, (problem.a1**2 + problem.a2**2) * torch.pi**2

        def helmholtz(input_: Any, output_: Any) -> torch.Tensor:
            lap = plain(laplacian(output_, input_, components=["u"], d=["x", "y"]))
            return lap + k2 * plain(output_) - (k2 - a2) * problem.exact(plain(input_))

        return helmholtz
    if isinstance(problem, SteadyAllenCahn):
        eps2 = problem.eps**2

        def allen_cahn(input_: Any, output_: Any) -> torch.Tensor:
            u = plain(output_)
            return (
                eps2 * plain(laplacian(output_, input_, components=["u"], d=["x", "y"])) + u - u**3
            )

        return allen_cahn
    if isinstance(problem, Burgers):

        def burgers(input_: Any, output_: Any) -> torch.Tensor:
            du = grad(output_, input_, components=["u"], d=["x", "t"])
            u_xx = plain(laplacian(output_, input_, components=["u"], d=["x"]))
            return (
                plain(du.extract(["dudt"]))
                + plain(output_) * plain(du.extract(["dudx"]))
                - problem.nu * u_xx
            )

        return burgers
    raise ValueError(
        f"problem {problem!r} has no PINA residual in benchmarks/pde_vs_pina.py; write one "
        "in pina_residual (Helmholtz, SteadyAllenCahn and Burgers have one)."
    )


def pina_problem(
    problem: PDEProblem, variables: Sequence[str], points: dict[str, torch.Tensor]
) -> Any:
    """A PINA problem on exactly our points: an ``interior`` condition (the residual) and
    a ``boundary`` condition (``u - g``, boundary and initial data as in ``PDEProblem``).

    Time coordinates go to a ``TimeDependentProblem``'s temporal domain, as PINA's own
    Burgers does: PINA orders a network's inputs as spatial variables (sorted by name),
    then temporal ones, which is our column order ``(x, t)``.
    """
    from pina import Condition, LabelTensor
    from pina.domain import CartesianDomain
    from pina.equation import Equation
    from pina.problem import SpatialProblem, TimeDependentProblem

    labels = list(variables)
    ranges = {name: list(bounds) for name, bounds in zip(labels, problem.bounds, strict=True)}
    times = [labels[d] for d in problem.time_dims]
    space = [name for name in labels if name not in times]
    if space + times != sorted(space) + times:
        raise ValueError(
            f"variables {labels} of {problem!r}: PINA feeds its network the spatial "
            "variables sorted by name, then the temporal ones; name them so that this is "
            "the problem's column order."
        )

    def boundary(input_: Any, output_: Any) -> torch.Tensor:
        plain = input_.as_subclass(torch.Tensor)
        return output_.as_subclass(torch.Tensor) - problem.boundary_values(plain)

    attributes = {
        "output_variables": ["u"],
        "spatial_domain": CartesianDomain({name: ranges[name] for name in space}),
        "conditions": {
            "interior": Condition(
                input=LabelTensor(points["interior"], labels),
                equation=Equation(pina_residual(problem)),
            ),
            "boundary": Condition(
                input=LabelTensor(points["boundary"], labels), equation=Equation(boundary)
            ),
        },
    }
    bases: tuple[type, ...] = (SpatialProblem,)
    if times:
        bases += (TimeDependentProblem,)
        attributes["temporal_domain"] = CartesianDomain({name: ranges[name] for name in times})
    return type("OurPoints", bases, attributes)()


def run_pina(
    method: Method, problem: PDEProblem, variables: Sequence[str], budget: Budget
) -> Result:
    """One PINA row: its ``PhysicsInformedSingleModelSolver`` (PINA's ``PINN``) and
    ``Trainer`` on :func:`pina_problem` of the same points, the whole set as one batch."""
    from pina import LabelTensor, Trainer
    from pina.optim import TorchOptimizer
    from pina.solver import PhysicsInformedSingleModelSolver
    from pina.weighting import ScalarWeighting

    points = collocation(problem, budget)
    L.seed_everything(budget.seed, verbose=False)
    model = method.pina_model(problem.dim)
    solver = PhysicsInformedSingleModelSolver(
        pina_problem(problem, variables, points),
        model,
        optimizer=TorchOptimizer(torch.optim.Adam, lr=LR),
        weighting=ScalarWeighting({"boundary": BOUNDARY_WEIGHT}),
    )
    trainer = Trainer(solver, batch_size=None, shuffle=False, **trainer_options(budget))
    seconds = fit(trainer, solver, trainer.data_module)
    solver.eval()
    labels = list(variables)
    error = relative_l2(
        lambda x: solver.forward(LabelTensor(x, labels)).as_subclass(torch.Tensor),
        problem,
        budget.test_points,
    )
    return Result(error, count(model), trainer.global_step, seconds, model)


def pina_available() -> bool:
    """Whether ``pina`` (pina-mathlab) imports."""
    try:
        import pina  # noqa: F401
    except ImportError:
        return False
    return True


def row_line(problem: str, method: Method, result: Result) -> str:
    per_step = 1000 * result.seconds / max(result.steps, 1)
    return (
        f"| {problem} | {method.label} | {method.library} | {result.parameters} | {result.steps} "
        f"| {result.rel_l2:.2e} | {result.seconds:.1f} | {per_step:.1f} |"
    )


def verdict(problem: str, network: str, rows: Sequence[tuple[str, Method, Result]]) -> str | None:
    """``"- problem, network: best lightning_kan row (...) is [NOT] lower than the best
    PINA row (...)."`` over the rows of that network (``"any"``: all), or ``None`` when a
    library has no such row."""
    best = {}
    for library in ("lightning_kan", "pina"):
        errors = [
            (result.rel_l2, method.label)
            for name, method, result in rows
            if name == problem and method.library == library and network in ("any", method.net)
        ]
        if not errors:
            return None
        best[library] = min(errors)
    (ours, label), (theirs, their_label) = best["lightning_kan"], best["pina"]
    word = "lower than" if ours < theirs else "NOT lower than"
    return (
        f"- {problem}, {NETWORKS[network]}: best lightning_kan row ({label}, {ours:.2e}) is "
        f"{word} the best PINA row ({their_label}, {theirs:.2e})."
    )


def table(rows: Sequence[tuple[str, Method, Result]]) -> list[str]:
    """The markdown table, then the verdicts per problem: KANs, MLPs, any network."""
    lines = [
        "| problem | method | library | parameters | steps | rel. L2 | wall time (s) | ms/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [row_line(*row) for row in rows]
    lines.append("")
    for problem in dict.fromkeys(name for name, _, _ in rows):
        found = (verdict(problem, network, rows) for network in NETWORKS)
        lines += [line for line in found if line is not None]
    return lines


def budget_line(budget: Budget) -> str:
    stop = (
        f"{budget.steps} steps" if budget.steps is not None else f"{budget.seconds:g} s of training"
    )
    return (
        f"Budget per row: {stop}; {budget.interior} interior + {budget.boundary} boundary points "
        f"(one fixed set, seed {budget.seed}); Adam lr {LR:g}; "
        f"{torch.get_num_threads()} thread(s); "
        f"rel. L2 on the {budget.test_points}-per-axis grid."
    )


def main(argv: Sequence[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seconds", type=float, default=15.0, help="training wall time per row")
    parser.add_argument("--steps", type=int, default=None, help="equal steps instead of equal time")
    parser.add_argument("--interior", type=int, default=1000)
    parser.add_argument("--boundary", type=int, default=200)
    parser.add_argument("--test-points", type=int, default=101, help="test grid points per axis")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(
            f"--steps must be a positive number of steps, got {args.steps}; omit it to "
            "give every row the same wall time (--seconds) instead."
        )
    if not args.seconds > 0:
        parser.error(
            f"--seconds must be a positive training time per row, got {args.seconds}; "
            "pass e.g. --seconds 20, or --steps N for equal steps."
        )
    torch.set_num_threads(args.threads)
    budget = Budget(
        args.interior,
        args.boundary,
        args.seed,
        args.steps,
        None if args.steps is not None else args.seconds,
        args.test_points,
    )
    has_pina = pina_available()
    rows = []
    for name in args.problems:
        spec = PROBLEMS[name]
        for key in args.methods:
            method = METHODS[key]
            if method.only is not None and name not in method.only:
                continue
            if method.library == "pina" and not has_pina:
                continue
            problem = spec.build()
            if method.library == "pina":
                result = run_pina(method, problem, spec.variables, budget)
            else:
                result = run_ours(method, problem, budget)
            rows.append((f"{name} {problem.extra_repr()}".strip(), method, result))
            print(row_line(*rows[-1]), flush=True)
    lines = [budget_line(budget), "", *table(rows)]
    if not has_pina:
        lines.append("PINA is not installed: its rows are left out (see the install line above).")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main(sys.argv[1:])
