"""pykan's reading workflow in one call: prune, fit symbols, fine-tune, write the formula.

:func:`read_formula` runs it on a trained dense :class:`KAN` and train/test tensors;
:func:`write_formula_report` writes ``formula.txt``, ``formula.tex``,
``symbolic_edges.csv`` and the fine-tuned symbolic network (``symbolic_network.pt``)
atomically into a folder. ``lightning_kan symbolic`` (the CLI) drives both.
"""

from __future__ import annotations

import copy
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightning_kan.atomic import atomic_torch_save, atomic_write_text
from lightning_kan.interpret.prune import check_threshold, prune
from lightning_kan.interpret.scores import check_kan
from lightning_kan.interpret.symbolic import (
    auto_symbolic,
    import_sympy,
    round_constants,
    symbolic_formula,
)
from lightning_kan.nets import KAN

__all__ = ["FormulaReport", "fine_tune", "read_formula", "write_formula_report"]

#: iterations per chunk of :func:`fine_tune` (one L-BFGS step; a NaN guard after each)
_CHUNK = 10
#: Adam's learning rate once L-BFGS has stepped out of a function's domain
_ADAM_LR = 1e-3


@dataclass
class FormulaReport:
    """What :func:`read_formula` found.

    ``formulas`` are in the data's variables (``variables``), rounded; ``input_formulas``
    in the network inputs ``x_1..x_n``, unrounded (exactly what ``network`` computes);
    ``edges`` has one row per edge ``auto_symbolic`` considered (layer, i, o, name, r2, a,
    b, c, d, fixed); the MSEs are on the test set.
    """

    network: KAN
    formulas: list[Any]
    input_formulas: list[Any]
    edges: list[dict[str, Any]]
    widths_before: list[int]
    widths_after: list[int]
    mse_network: float
    mse_symbolic_network: float
    mse_formula: float
    fine_tune_losses: list[float] = field(default_factory=list)


def _check_pairs(name: str, x: object, y: object, width: int) -> None:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(
            f"read_formula: {name} must be a pair of tensors (inputs (N, {width}), targets "
            f"(N, outputs)), got {type(x).__name__} and {type(y).__name__}"
        )
    if x.dim() != 2 or x.shape[1] != width or y.dim() != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"read_formula: {name} must be inputs (N, {width}) and targets (N, outputs), got "
            f"{tuple(x.shape)} and {tuple(y.shape)}; pass the data module's samples"
        )


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return float((prediction - target).square().mean())


def fine_tune(net: KAN, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    """Full-batch training on the mean squared error for ``steps`` iterations (pykan's
    retraining of the symbolic network: affine constants, remaining edges, biases).

    L-BFGS runs in chunks of ``_CHUNK`` iterations (one ``LBFGS.step`` each; the curvature
    history carries over). A chunk that ends on a non-finite loss (a line-search step
    that leaves a symbolic function's domain, e.g. ``sqrt`` of a negative number) is
    undone, and the remaining iterations are Adam steps (lr ``_ADAM_LR``), which move
    little enough to stay inside; an Adam chunk that ends non-finite is undone and
    retried with a 10 times smaller rate, down to ``_ADAM_LR / 1000``, where it stops. So
    it never leaves NaN weights behind. Returns the loss after each chunk.
    """
    parameters = [p for p in net.parameters() if p.requires_grad]
    if not parameters:
        return []
    lbfgs = torch.optim.LBFGS(parameters, max_iter=_CHUNK, line_search_fn="strong_wolfe")
    adam: torch.optim.Adam | None = None

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        return loss

    losses: list[float] = []
    done = 0
    while done < steps:
        chunk = min(_CHUNK, steps - done)
        saved = copy.deepcopy(net.state_dict())
        if adam is None:
            lbfgs.param_groups[0]["max_iter"] = chunk
            lbfgs.step(closure)
        else:
            for _ in range(chunk):
                adam.zero_grad()
                (net(x) - y).square().mean().backward()
                adam.step()
        with torch.no_grad():
            loss = float((net(x) - y).square().mean())
        if not math.isfinite(loss):
            net.load_state_dict(saved)
            rate = _ADAM_LR if adam is None else adam.param_groups[0]["lr"] / 10
            if rate < _ADAM_LR * 1e-3:
                break
            adam = torch.optim.Adam(parameters, lr=rate)  # fresh: NaN moments are lost
            continue
        losses.append(loss)
        done += chunk
    return losses


def read_formula(
    net: KAN,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    edge_threshold: float = 1e-2,
    node_threshold: float = 1e-2,
    r2_threshold: float = 0.0,
    library: Sequence[str] | None = None,
    fine_tune_steps: int = 50,
    digits: int = 4,
    simplify: bool = True,
    variables: Sequence[tuple[str, float, float]] | None = None,
) -> FormulaReport:
    """Prune ``net``, replace its edges by fitted functions, fine-tune, write the formula.

    Args:
        net: a trained dense :class:`KAN`; it is not modified (the work is on a copy).
        train, test: ``(inputs (N, I), targets (N, O))``: pruning and symbol fitting use
            the training inputs, fine-tuning the training pairs, the MSEs the test pairs.
        edge_threshold, node_threshold: see :func:`~lightning_kan.interpret.prune`.
        r2_threshold: edges whose best candidate fits worse stay numeric (then no closed
            formula exists and this raises, naming them); 0 fixes every edge (pykan).
        library: candidate function names (``None``: the whole library).
        fine_tune_steps: L-BFGS iterations after the symbols are fixed (0 skips).
        digits: significant digits of the printed constants.
        simplify: simplify each node's expression (``symbolic_formula``; seconds per node).
        variables: each input as ``(name, scale, shift)`` with ``input = scale * name +
            shift`` (``FunctionDataModule.input_variables``); ``None`` names them ``x_1..``.
    """
    check_kan(net, "read_formula")
    train_x, train_y = train
    test_x, test_y = test
    _check_pairs("train", train_x, train_y, net.widths[0])
    _check_pairs("test", test_x, test_y, net.widths[0])
    if isinstance(fine_tune_steps, bool) or not isinstance(fine_tune_steps, int):
        raise TypeError(
            f"read_formula: fine_tune_steps must be an int >= 0, got {fine_tune_steps!r}"
        )
    if fine_tune_steps < 0:
        raise ValueError(
            f"read_formula: fine_tune_steps must be >= 0 (L-BFGS iterations), got {fine_tune_steps}"
        )
    check_threshold("edge_threshold", edge_threshold)
    check_threshold("node_threshold", node_threshold)
    with torch.no_grad():
        mse_network = _mse(net(test_x), test_y)
    widths_before = list(net.widths)
    symbolic = prune(net, train_x, edge_threshold=edge_threshold, node_threshold=node_threshold)
    edges = auto_symbolic(symbolic, train_x, library=library, r2_threshold=r2_threshold)
    losses = fine_tune(symbolic, train_x, train_y, fine_tune_steps)
    with torch.no_grad():
        mse_symbolic = _mse(symbolic(test_x), test_y)
    sympy = import_sympy("read_formula")
    names = [f"x_{i + 1}" for i in range(net.widths[0])]
    input_formulas = symbolic_formula(symbolic, variables=names, simplify=False, digits=None)
    evaluate = sympy.lambdify([sympy.Symbol(n) for n in names], input_formulas, "numpy")
    columns = test_x.double().T.cpu().numpy()
    predicted = torch.stack(
        [
            torch.as_tensor(v, dtype=torch.float64).expand(test_x.shape[0])
            for v in evaluate(*columns)
        ],
        dim=-1,
    )
    mse_formula = _mse(predicted, test_y.double().cpu())
    readable = symbolic_formula(symbolic, variables=names, simplify=simplify, digits=digits)
    formulas = [_in_variables(sympy, formula, names, variables, digits) for formula in readable]
    return FormulaReport(
        network=symbolic,
        formulas=formulas,
        input_formulas=input_formulas,
        edges=[dict(row) for row in edges],
        widths_before=widths_before,
        widths_after=list(symbolic.widths),
        mse_network=mse_network,
        mse_symbolic_network=mse_symbolic,
        mse_formula=mse_formula,
        fine_tune_losses=losses,
    )


def _in_variables(sympy, formula, names, variables, digits):
    """``formula`` (in the inputs ``names``) written in the data's variables, its constants
    rounded to ``digits`` significant digits. No global ``sympy.simplify``: on a composed
    formula of a ``[4, 8, 8, 1]`` net it runs for minutes; ``symbolic_formula`` simplifies
    node by node instead."""
    if variables is not None:
        substitution = {
            sympy.Symbol(name): scale * sympy.Symbol(variable) + shift
            for name, (variable, scale, shift) in zip(names, variables, strict=True)
        }
        formula = formula.subs(substitution)
    return round_constants(sympy, formula, digits)


def write_formula_report(report: FormulaReport, folder: str | Path) -> dict[str, Path]:
    """Write ``formula.txt`` (one line per output, then the test MSEs), ``formula.tex``,
    ``symbolic_edges.csv`` and ``symbolic_network.pt`` (``widths``, ``mult_nodes`` and the
    state dict of the fine-tuned network) into ``folder``; every file atomically."""
    sympy = import_sympy("write_formula_report")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"y_{k + 1} = {formula}" for k, formula in enumerate(report.formulas)]
    lines += [
        "",
        f"test MSE: network {report.mse_network:.6g}, symbolic network "
        f"{report.mse_symbolic_network:.6g}, formula {report.mse_formula:.6g}",
        f"widths: {report.widths_before} -> pruned {report.widths_after}",
    ]
    tex = "\n".join(
        f"y_{{{k + 1}}} = {sympy.latex(formula)}" for k, formula in enumerate(report.formulas)
    )
    table = io.StringIO()
    if report.edges:
        writer = csv.DictWriter(table, fieldnames=list(report.edges[0]))
        writer.writeheader()
        writer.writerows(report.edges)
    paths = {
        "formula.txt": folder / "formula.txt",
        "formula.tex": folder / "formula.tex",
        "symbolic_edges.csv": folder / "symbolic_edges.csv",
        "symbolic_network.pt": folder / "symbolic_network.pt",
    }
    atomic_write_text(paths["formula.txt"], "\n".join(lines) + "\n")
    atomic_write_text(paths["formula.tex"], tex + "\n")
    atomic_write_text(paths["symbolic_edges.csv"], table.getvalue())
    network = report.network
    atomic_torch_save(
        {
            "widths": list(network.widths),
            "mult_nodes": list(network.mult_nodes),
            "state_dict": network.state_dict(),
        },
        paths["symbolic_network.pt"],
    )
    return paths
