"""Tensor operations shared by the layers and the adapters: Tucker maths
(:mod:`lightning_kan.ops.tucker`) and the one rank resolver (:mod:`lightning_kan.ops.ranks`).

Imports nothing else from lightning_kan, so ``layers`` and ``lotra`` can both use it.
"""

from lightning_kan.ops.ranks import (
    MODES,
    is_int,
    mode_names,
    rank_entry,
    resolve_ranks,
    warn_clipped,
)
from lightning_kan.ops.tucker import (
    TuckerFactors,
    check_ranks,
    fold,
    hooi,
    hosvd,
    mode_product,
    partial_tucker,
    ranks_for_energy,
    relative_error,
    tucker_to_tensor,
    unfold,
)

__all__ = [
    "MODES",
    "TuckerFactors",
    "check_ranks",
    "fold",
    "hooi",
    "hosvd",
    "is_int",
    "mode_names",
    "mode_product",
    "partial_tucker",
    "rank_entry",
    "ranks_for_energy",
    "relative_error",
    "resolve_ranks",
    "tucker_to_tensor",
    "unfold",
    "warn_clipped",
]
