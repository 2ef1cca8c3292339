"""Symbolic regression, lightning_kan against pykan 0.2.8, on the same data and budget.

    python examples/symbolic_table.py                                  # every function
    python examples/symbolic_table.py --functions kan-toy xy --quick   # a smoke test
    python examples/symbolic_table.py --libraries lightning_kan        # without pykan

Every function is sampled once (1000 train and 1000 test points, uniform on its ranges,
float64, seed 0) and both libraries get those tensors and pykan's workflow with the same
budget: a B-spline KAN (grid 5, order 3) of the same widths (multiplication nodes where
pykan's width has ``[sum, mult]`` entries), full-batch L-BFGS (lr 1, 20 iterations and
10 history pairs per step, strong Wolfe line search, pykan's tolerances) for
``--steps`` steps with the sparsity penalty ``lamb * (l1 + 2 * entropy)`` and grid
updates every 5 steps, pruning (node threshold 1e-2, edge threshold 3e-2), ``--steps``
steps without penalty, ``auto_symbolic`` on the same function library, ``--steps``
steps of fine-tuning, and the formula. pykan runs as its tutorials do
(``model.fit(dataset, opt="LBFGS", steps=..., lamb=...)``, ``model.prune()``,
``model.auto_symbolic(lib=...)``, ``model.fit``, ``model.symbolic_formula()``);
lightning_kan with ``torch.optim.LBFGS`` in a plain loop and
``lightning_kan.interpret.prune`` / ``auto_symbolic`` / ``symbolic_formula``. Each
library's penalty is its own reading of pykan's (pykan: spline spread over input spread;
lightning_kan: mean ``|phi|``). pykan needs ``pip install --no-deps pykan==0.2.8``
(a dev-only dependency of this script); ``--libraries lightning_kan`` runs without it.

Exact recovery, the same rule for both libraries (:func:`is_exact`): the float constants
``c`` of the formula are snapped (:func:`snap`: 0 when ``|c| < 5e-3``, otherwise the
simplest number within a relative 1e-3 of the forms ``r``, ``r * pi``, ``r / pi`` or a
square root of one of them, ``r`` a fraction with denominator <= 12; ``c`` stays when
there is none) after ``sympy.expand`` (which multiplies constants together, so
``0.5 * exp(u + 0.6931)`` becomes ``1.0 * exp(u)``), or before and after it (so a small
shift inside a square is dropped before it becomes a linear term); the formula is
recovered when one of the two readings satisfies ``sympy.simplify(snapped - truth) ==
0``, the variables real (positive on positive ranges). The MSEs are on the test set: the
formula through ``sympy.lambdify`` (unrounded, as the library returns it), the
fine-tuned symbolic network it was read from, and the pruned spline network before
``auto_symbolic``; a formula is "worse than its network" when its MSE exceeds the
network's by 10%.
Jobs (one library on one function) run in ``--jobs`` processes of one thread each; the
time is the job's wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import multiprocessing
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy
import torch

from lightning_kan.atomic import atomic_write_text
from lightning_kan.data.feynman import EQUATIONS, Equation
from lightning_kan.interpret import auto_symbolic, prune, symbolic_formula
from lightning_kan.nets import KAN

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "symbolic_table.md"
LIBRARIES = ("lightning_kan", "pykan")

#: candidate functions of ``auto_symbolic`` (pykan's names, the same list for both)
SYMBOLIC_LIBRARY = (
    "x",
    "x^2",
    "x^3",
    "x^4",
    "1/x",
    "1/x^2",
    "sqrt",
    "exp",
    "log",
    "sin",
    "cos",
    "tanh",
    "abs",
    "gaussian",
)
#: pykan's pruning thresholds (``MultKAN.prune`` defaults), used by both
NODE_THRESHOLD, EDGE_THRESHOLD = 1e-2, 3e-2
#: pykan's grid schedule in ``fit``: an update every 5 steps before step 50
GRID_EVERY, GRID_UNTIL = 5, 50
#: exact recovery: constants below this are 0, others snap within this relative error
ZERO_TOL, SNAP_RTOL, MAX_DENOMINATOR = 5e-3, 1e-3, 12
#: formulas with more operations than this are not simplified (counted as not exact)
MAX_OPS = 400

Width = Sequence[int | Sequence[int]]


@dataclass(frozen=True)
class Budget:
    """What both libraries get: samples, L-BFGS steps per stage, penalty weight."""

    num_train: int = 1000
    num_test: int = 1000
    steps: int = 30
    lamb: float = 1e-3


QUICK = Budget(num_train=200, num_test=200, steps=2)


@dataclass(frozen=True)
class Target:
    """A function with a known formula: how to sample it, its truth, the KAN's widths.

    ``width`` is pykan's: an int per boundary, or ``[sum, mult]`` for a hidden boundary
    with multiplication nodes (lightning_kan: ``widths[l] = sum + mult``,
    ``mult_nodes[l-1] = mult``).
    """

    name: str
    equation: Equation
    truth: str
    width: tuple

    def symbols(self) -> list[sympy.Symbol]:
        """The variables, positive when their range is, real otherwise."""
        return [
            sympy.Symbol(name, positive=True) if low > 0 else sympy.Symbol(name, real=True)
            for name, low, _ in self.equation.variables
        ]

    def truth_expr(self) -> sympy.Expr:
        names = {symbol.name: symbol for symbol in self.symbols()}
        return sympy.sympify(self.truth, locals=names)


def _tutorial(name: str, text: str, variables: str, low: float, high: float, formula) -> Equation:
    names = variables.split()
    return Equation(name, tuple((n, low, high) for n in names), formula, text)


def _targets() -> dict[str, Target]:
    """pykan's tutorial functions and compositions on [-1, 1], then Feynman equations of
    1-3 variables from :data:`lightning_kan.data.EQUATIONS` on their physical ranges."""
    tutorial = [
        ("kan-toy", EQUATIONS["kan-toy"], "exp(sin(pi*x) + y**2)", (2, 5, 1)),
        (
            "xy",
            _tutorial("xy", "x y", "x y", -1.0, 1.0, lambda x, y: x * y),
            "x*y",
            (2, (0, 1), 1),
        ),
        (
            "xy-sum",
            _tutorial("xy-sum", "x y", "x y", -1.0, 1.0, lambda x, y: x * y),
            "x*y",
            (2, 2, 1),
        ),
        (
            "exp-sin-4d",
            _tutorial(
                "exp-sin-4d",
                "exp((sin(pi (x1^2+x2^2)) + sin(pi (x3^2+x4^2)))/2)",
                "x1 x2 x3 x4",
                -1.0,
                1.0,
                lambda a, b, c, d: torch.exp(
                    (torch.sin(math.pi * (a**2 + b**2)) + torch.sin(math.pi * (c**2 + d**2))) / 2
                ),
            ),
            "exp((sin(pi*(x1**2 + x2**2)) + sin(pi*(x3**2 + x4**2)))/2)",
            (4, 2, 1, 1),
        ),
        (
            "hypot",
            _tutorial(
                "hypot", "sqrt(x^2+y^2)", "x y", -1.0, 1.0, lambda x, y: torch.sqrt(x**2 + y**2)
            ),
            "sqrt(x**2 + y**2)",
            (2, 1, 1),
        ),
        (
            "sin-exp",
            _tutorial(
                "sin-exp", "sin(exp(x)+y)", "x y", -1.0, 1.0, lambda x, y: torch.sin(x.exp() + y)
            ),
            "sin(exp(x) + y)",
            (2, 1, 1),
        ),
    ]
    feynman = [
        ("I.6.20a", "exp(-theta**2/2)/sqrt(2*pi)", (1, 1)),
        ("I.6.20", "exp(-(theta/sigma)**2/2)/(sqrt(2*pi)*sigma)", (2, (1, 1), (0, 1), 1)),
        ("I.12.1", "mu*Nn", (2, (0, 1), 1)),
        ("I.14.3", "m*g*z", (3, 1, 1)),
        ("I.25.13", "q/C", (2, (0, 1), 1)),
        ("I.29.4", "omega/c", (2, 1, 1)),
        ("I.39.1", "3*pF*V/2", (2, (0, 1), 1)),
        ("II.3.24", "Pwr/(4*pi*r**2)", (2, (0, 1), 1)),
    ]
    rows = tutorial + [(name, EQUATIONS[name], truth, width) for name, truth, width in feynman]
    return {name: Target(name, equation, truth, width) for name, equation, truth, width in rows}


TARGETS = _targets()


def lightning_kan_widths(width: Width) -> tuple[list[int], list[int]]:
    """pykan's ``width`` as lightning_kan's ``(widths, mult_nodes)``."""
    widths = [w if isinstance(w, int) else sum(w) for w in width]
    mult = [0 if isinstance(w, int) else w[1] for w in width[1:-1]]
    return widths, mult


def sample(target: Target, budget: Budget, seed: int = 0) -> dict[str, torch.Tensor]:
    """pykan's dataset dict: uniform samples of the target's ranges, float64."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor([lo for _, lo, _ in target.equation.variables], dtype=torch.float64)
    high = torch.tensor([hi for _, _, hi in target.equation.variables], dtype=torch.float64)
    data = {}
    for split, count in (("train", budget.num_train), ("test", budget.num_test)):
        x = low + torch.rand(count, len(low), generator=generator, dtype=torch.float64) * (
            high - low
        )
        data[f"{split}_input"] = x
        data[f"{split}_label"] = target.equation.formula(*x.T).reshape(count, 1)
    return data


# ------------------------------------------------------------------ exact recovery


def snap(value: float) -> sympy.Expr:
    """The simplest number a float constant stands for (module docstring), or itself.

    Candidates ``r``, ``r * pi``, ``r / pi`` and their square roots, ``r`` the fraction
    nearest ``c`` (or ``c^2``) with denominator <= 12; among those within ``SNAP_RTOL`` the
    simplest wins (smallest ``|numerator| + denominator``, then no pi, then no root), so
    3.1416 is pi, not 22/7, and 2.0003 is 2.
    """
    if abs(value) < ZERO_TOL:
        return sympy.Integer(0)
    sign = 1 if value > 0 else -1
    best, best_cost = sympy.Float(value), math.inf
    for pi_power, factor in enumerate((sympy.Integer(1), sympy.pi, 1 / sympy.pi)):
        for root in (0, 1):
            target = value**2 / float(factor) if root else value / float(factor)
            fraction = Fraction(target).limit_denominator(MAX_DENOMINATOR)
            if fraction <= 0 and root:
                continue
            number = sympy.Rational(fraction.numerator, fraction.denominator) * factor
            candidate = sign * sympy.sqrt(number) if root else number
            cost = abs(fraction.numerator) + fraction.denominator + 2 * (pi_power > 0) + 3 * root
            if abs(float(candidate) - value) <= SNAP_RTOL * abs(value) and cost < best_cost:
                best, best_cost = candidate, cost
    return best


def _snapped(expression: sympy.Expr) -> sympy.Expr:
    return expression.xreplace({c: snap(float(c)) for c in expression.atoms(sympy.Float)})


def snap_constants(expression: sympy.Expr) -> list[sympy.Expr]:
    """The two readings of ``expression`` with snapped constants (:func:`snap`): expanded
    then snapped (``sympy.expand`` multiplies constants together first: ``c * exp(u + b)``
    becomes ``(c * e^b) * exp(u)``, ``13.8 x * 0.0725 y`` becomes ``1.0005 x y``), and
    snapped, expanded, snapped again (a shift ``b`` inside ``(a x + b)^2`` is dropped
    before it becomes a linear term)."""
    return [_snapped(sympy.expand(expression)), _snapped(sympy.expand(_snapped(expression)))]


def is_exact(
    formula: sympy.Expr, truth: sympy.Expr, symbols: list[sympy.Symbol], points: np.ndarray
) -> bool:
    """The module docstring's rule: a snapped reading of ``formula`` equals ``truth``.

    A reading that differs from ``truth`` at one of the ``points (N, len(symbols))`` (by
    more than 1e-9 relative) is not equal, which spares ``sympy.simplify`` (seconds on a
    large formula) on all but the candidates; ``simplify`` proves the rest.
    """
    for snapped in snap_constants(formula):
        if snapped.free_symbols - set(symbols):
            continue
        difference = sympy.expand(snapped - truth)
        if difference == 0:
            return True
        if not _agree(snapped, truth, symbols, points):
            continue
        if sympy.count_ops(difference) <= MAX_OPS and sympy.simplify(difference) == 0:
            return True
    return False


def _agree(first: sympy.Expr, second: sympy.Expr, symbols, points: np.ndarray) -> bool:
    """``first`` and ``second`` are finite and agree to 1e-9 relative at every point."""
    if any(e.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) for e in (first, second)):
        return False
    with np.errstate(all="ignore"):
        one, two = (
            np.broadcast_to(
                np.asarray(sympy.lambdify(symbols, e, modules="numpy")(*points.T), dtype=float),
                points.shape[:1],
            )
            for e in (first, second)
        )
    return bool(np.isfinite(one).all() and (np.abs(one - two) <= 1e-9 * (1 + np.abs(two))).all())


def test_mse(formula: sympy.Expr, symbols: list[sympy.Symbol], data) -> float:
    """MSE of ``formula`` on the test set, evaluated by ``sympy.lambdify`` (numpy); an
    infinite or undefined formula (``zoo``, ``nan``) has an infinite error."""
    if formula.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return math.inf
    x = data["test_input"].numpy()
    y = data["test_label"].numpy()[:, 0]
    function = sympy.lambdify(symbols, formula, modules="numpy")
    with np.errstate(all="ignore"):
        prediction = np.broadcast_to(np.asarray(function(*x.T), dtype=np.float64), y.shape)
        error = float(np.mean((prediction - y) ** 2))
    return error if math.isfinite(error) else math.inf


def display(formula: sympy.Expr, digits: int = 3) -> str:
    """``formula`` with its constants to ``digits`` significant digits."""
    rounded = formula.xreplace({c: sympy.Float(c, digits) for c in formula.atoms(sympy.Float)})
    return str(rounded)


# ------------------------------------------------------------------ the two libraries


@dataclass
class Row:
    """One library on one function."""

    function: str
    library: str
    widths: str = ""
    formula: str = ""
    exact: bool = False
    mse_formula: float = math.nan
    mse_network: float = math.nan
    mse_spline: float = math.nan
    seconds: float = 0.0
    error: str = ""


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    error = float((prediction - target).square().mean())
    return error if math.isfinite(error) else math.inf


def lbfgs_fit(net: KAN, data, steps: int, lamb: float = 0.0, update_grid: bool = False) -> None:
    """pykan's ``fit(opt="LBFGS")``: full batch, its optimizer settings and grid
    schedule, loss ``MSE + lamb * regularization``. A step that makes the loss non-finite
    is undone and ends the stage (as ``lightning_kan.interpret.workflow.fine_tune`` does)."""
    x, y = data["train_input"], data["train_label"]
    parameters = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(
        parameters,
        lr=1.0,
        max_iter=20,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-32,
        tolerance_change=1e-32,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (net(x) - y).square().mean()
        if lamb > 0:
            loss = loss + lamb * net.regularization(x, l1=1.0, entropy=2.0, max_samples=None)
        loss.backward()
        return loss

    for step in range(steps):
        if update_grid and step % GRID_EVERY == 0 and step < GRID_UNTIL:
            net.update_grid(x)
        state = copy.deepcopy(net.state_dict())
        optimizer.step(closure)
        with torch.no_grad():
            if not math.isfinite(_mse(net(x), y)):
                net.load_state_dict(state)
                return


def run_lightning_kan(target: Target, data, budget: Budget, row: Row) -> sympy.Expr:
    """train (penalty, grid updates), prune, train, auto_symbolic, fine-tune, formula."""
    widths, mult = lightning_kan_widths(target.width)
    net = KAN(
        widths, basis="bspline", basis_kwargs={"grid_size": 5, "spline_order": 3}, mult_nodes=mult
    ).double()
    lbfgs_fit(net, data, budget.steps, lamb=budget.lamb, update_grid=True)
    net = prune(
        net, data["train_input"], edge_threshold=EDGE_THRESHOLD, node_threshold=NODE_THRESHOLD
    )
    lbfgs_fit(net, data, budget.steps)
    row.widths = str(net.widths)
    with torch.no_grad():
        row.mse_spline = _mse(net(data["test_input"]), data["test_label"])
    auto_symbolic(net, data["train_input"], library=list(SYMBOLIC_LIBRARY))
    lbfgs_fit(net, data, budget.steps)
    with torch.no_grad():
        row.mse_network = _mse(net(data["test_input"]), data["test_label"])
    # unrounded and unsimplified, as pykan's symbolic_formula returns it
    formulas = symbolic_formula(net, variables=target.symbols(), simplify=False, digits=None)
    return formulas[0]


def run_pykan(target: Target, data, budget: Budget, row: Row) -> sympy.Expr:
    """pykan's tutorial workflow on the same tensors and budget."""
    from kan import KAN as PyKAN  # a dev-only dependency of this script

    width = [w if isinstance(w, int) else list(w) for w in target.width]
    quiet = io.StringIO()
    with (
        tempfile.TemporaryDirectory() as folder,
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
    ):
        # prune_node rebuilds the model with auto_save=True: give it a folder
        model = PyKAN(width=width, grid=5, k=3, seed=0, auto_save=False, ckpt_path=folder)
        model.fit(data, opt="LBFGS", steps=budget.steps, lamb=budget.lamb)
        model = model.prune(node_th=NODE_THRESHOLD, edge_th=EDGE_THRESHOLD)
        model.fit(data, opt="LBFGS", steps=budget.steps)
        row.widths = str([w[0] + w[1] for w in model.width])
        with torch.no_grad():
            row.mse_spline = _mse(model(data["test_input"]), data["test_label"])
        model.auto_symbolic(lib=list(SYMBOLIC_LIBRARY))
        model.fit(data, opt="LBFGS", steps=budget.steps)
        with torch.no_grad():
            row.mse_network = _mse(model(data["test_input"]), data["test_label"])
        formulas, _ = model.symbolic_formula(var=target.symbols())
    return formulas[0]


RUNNERS: dict[str, Callable[[Target, dict, Budget, Row], sympy.Expr]] = {
    "lightning_kan": run_lightning_kan,
    "pykan": run_pykan,
}


def run_job(library: str, name: str, budget: Budget, threads: int = 1) -> Row:
    """One library's workflow on one function (fixed seeds, float64, ``threads`` torch
    threads; the caller's default dtype and thread count are restored); a failure is a
    row with its error, never an exception (pykan's bugs are part of the comparison)."""
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)  # pykan builds its parameters in the default
    for seed in (random.seed, np.random.seed, torch.manual_seed):
        seed(0)
    target = TARGETS[name]
    data = sample(target, budget)
    row = Row(name, library)
    start = time.perf_counter()
    try:
        formula = RUNNERS[library](target, data, budget, row)
        row.formula = display(formula)
        row.mse_formula = test_mse(formula, target.symbols(), data)
        points = data["test_input"][:64].numpy()
        row.exact = is_exact(formula, target.truth_expr(), target.symbols(), points)
    except Exception as error:  # reported in the table
        row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    finally:
        torch.set_default_dtype(old_dtype)
        torch.set_num_threads(old_threads)
    row.seconds = time.perf_counter() - start
    return row


# ------------------------------------------------------------------ the table


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2e}"


def worse(row: Row, network: str = "mse_network") -> bool:
    """The formula predicts worse (by more than 10%) than the fine-tuned symbolic network
    it was read from (``network="mse_network"``) or the pruned spline network
    (``"mse_spline"``)."""
    return not row.error and row.mse_formula > 1.1 * getattr(row, network) + 1e-12


def table(rows: list[Row], libraries: Sequence[str], budget: Budget, command: str) -> str:
    """The Markdown report: one row per (function, library), then the rates."""
    lines = [
        "# Symbolic regression: lightning_kan vs pykan 0.2.8",
        "",
        f"`{command}`: {budget.num_train} train / {budget.num_test} test samples, "
        f"{budget.steps} L-BFGS steps per stage, lamb = {budget.lamb:g} "
        "(workflow and recovery rule: examples/symbolic_table.py).",
        "",
        "| function | truth | library | widths after pruning | recovered formula | exact "
        "| formula MSE | network MSE | spline MSE | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = TARGETS[row.function]
        formula = f"`{row.formula}`" if row.formula else f"error: {row.error}"
        lines.append(
            f"| {row.function} | `{target.truth}` | {row.library} | {row.widths} | {formula} "
            f"| {'yes' if row.exact else 'no'} | {_number(row.mse_formula)} "
            f"| {_number(row.mse_network)} | {_number(row.mse_spline)} | {row.seconds:.1f} |"
        )
    lines += [
        "",
        "| library | exact recoveries | rate | formula worse than its symbolic network "
        "| formula worse than the spline network | failures | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for library in libraries:
        mine = [row for row in rows if row.library == library]
        exact = sum(row.exact for row in mine)
        worse_symbolic = ", ".join(row.function for row in mine if worse(row)) or "none"
        worse_spline = ", ".join(row.function for row in mine if worse(row, "mse_spline"))
        failed = ", ".join(row.function for row in mine if row.error) or "none"
        rate = 100 * exact / len(mine) if mine else 0.0
        seconds = sum(row.seconds for row in mine)
        lines.append(
            f"| {library} | {exact}/{len(mine)} | {rate:.0f}% | {worse_symbolic} "
            f"| {worse_spline or 'none'} | {failed} | {seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _progress(row: Row) -> Row:
    """Report a finished job on stderr (a long run shows its rows as they come)."""
    outcome = row.error or f"exact={row.exact} formula MSE {_number(row.mse_formula)}"
    print(f"{row.library} {row.function}: {outcome} ({row.seconds:.0f} s)", file=sys.stderr)
    return row


def run_all(names: Sequence[str], libraries: Sequence[str], budget: Budget, jobs: int):
    """Every (function, library) job, in ``jobs`` processes (1: in this process)."""
    work = [(library, name) for name in names for library in libraries]
    if jobs == 1:
        return [_progress(run_job(library, name, budget)) for library, name in work]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(run_job, library, name, budget) for library, name in work]
        for future in as_completed(futures):
            _progress(future.result())
        return [future.result() for future in futures]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown table path")
    parser.add_argument("--quick", action="store_true", help="tiny budget (a smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="L-BFGS steps per stage")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    args = parser.parse_args(argv)
    for name in ("steps", "jobs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    if "pykan" in args.libraries:
        try:
            import kan  # noqa: F401
        except ImportError:
            parser.error(
                "--libraries includes pykan, which is not installed; install the version "
                "this table compares with (pip install --no-deps pykan==0.2.8) or pass "
                "--libraries lightning_kan"
            )
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    budget = QUICK if args.quick else Budget()
    if args.steps is not None:
        budget = replace(budget, steps=args.steps)
    rows = run_all(args.functions, args.libraries, budget, args.jobs)
    command = shlex.join(
        ["python", "examples/symbolic_table.py", *(sys.argv[1:] if argv is None else argv)]
    )
    text = table(rows, args.libraries, budget, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text, end="")
    return rows


if __name__ == "__main__":
    main()
