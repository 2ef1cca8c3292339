"""Reading a trained KAN: edge/node attribution scores and pruning (pykan's workflow).

``edge_scores``, ``node_scores``, ``feature_importance`` (:mod:`.scores`) and ``prune``
(:mod:`.prune`) work on dense :class:`~lightning_kan.nets.KAN` networks of any basis;
``suggest_symbolic``, ``fix_symbolic``, ``auto_symbolic``, ``unfix_symbolic`` and
``symbolic_formula`` (:mod:`.symbolic`) replace edges by fitted functions and write the
network as a formula (sympy, the ``[symbolic]`` extra, for the formula only).
``read_formula`` (:mod:`.workflow`) runs prune, auto_symbolic, fine-tuning and the formula
in one call (``lightning_kan symbolic`` on the command line); the ``Prune`` callback
(:mod:`lightning_kan.callbacks.prune`) cuts edges by masks during fit.
"""

from lightning_kan.interpret.prune import EdgeMask, prune
from lightning_kan.interpret.scores import edge_scores, feature_importance, node_scores
from lightning_kan.interpret.symbolic import (
    SymbolicFit,
    auto_symbolic,
    fix_symbolic,
    suggest_symbolic,
    symbolic_formula,
    unfix_symbolic,
)
from lightning_kan.interpret.workflow import FormulaReport, read_formula

__all__ = [
    "EdgeMask",
    "FormulaReport",
    "SymbolicFit",
    "auto_symbolic",
    "edge_scores",
    "feature_importance",
    "fix_symbolic",
    "node_scores",
    "prune",
    "read_formula",
    "suggest_symbolic",
    "symbolic_formula",
    "unfix_symbolic",
]
