"""Compatibility address of the Tucker maths, which live in :mod:`lightning_kan.ops.tucker`
(shared by the layers and LoTRA); every name keeps working from here."""

from lightning_kan.ops.tucker import (
    check_ranks,
    fold,
    hooi,
    hosvd,
    mode_product,
    ranks_for_energy,
    relative_error,
    tucker_to_tensor,
    unfold,
)

__all__ = [
    "check_ranks",
    "fold",
    "hooi",
    "hosvd",
    "mode_product",
    "ranks_for_energy",
    "relative_error",
    "tucker_to_tensor",
    "unfold",
]
