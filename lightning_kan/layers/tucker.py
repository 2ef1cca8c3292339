"""Tucker decomposition helpers shared by Slim KAN and LoTRA.

A Tucker tensor of shape ``(n_0, ..., n_{d-1})`` is a core ``G (r_0, ..., r_{d-1})`` and
one factor ``U_m (n_m, r_m)`` per mode:

    T = G x_0 U_0 x_1 U_1 ... x_{d-1} U_{d-1}

where ``x_m`` is the mode-``m`` product (:func:`mode_product`). For a KAN coefficient
tensor ``(O, I, K)`` the modes are (out, in, basis). All functions work on any number of
modes, on any dtype/device, and are differentiable where noted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

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


def _check_mode(tensor: torch.Tensor, mode: int) -> int:
    if not -tensor.dim() <= mode < tensor.dim():
        raise ValueError(
            f"mode={mode} is out of range for a tensor with {tensor.dim()} modes; "
            f"use 0..{tensor.dim() - 1}"
        )
    return mode % tensor.dim()


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding: ``(n_0, ..., n_{d-1}) -> (n_mode, prod(other n))``.

    The other modes keep their order (row-major), i.e. ``tensor.movedim(mode, 0)``
    flattened. Differentiable.
    """
    mode = _check_mode(tensor, mode)
    return tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)


def fold(matrix: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`unfold`: ``(shape[mode], prod(other)) -> shape``."""
    shape = tuple(shape)
    mode = mode % len(shape)
    moved = (shape[mode], *shape[:mode], *shape[mode + 1 :])
    return matrix.reshape(moved).movedim(0, mode)


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` product ``tensor x_mode matrix``.

    ``tensor (..., n_mode, ...)`` and ``matrix (m, n_mode)`` give ``(..., m, ...)``:
    ``out[.., j, ..] = sum_n matrix[j, n] * tensor[.., n, ..]``. Differentiable.
    """
    mode = _check_mode(tensor, mode)
    if matrix.dim() != 2 or matrix.shape[1] != tensor.shape[mode]:
        raise ValueError(
            f"mode_product: matrix of shape {tuple(matrix.shape)} does not fit mode {mode} "
            f"of a tensor of shape {tuple(tensor.shape)}; expected (m, {tensor.shape[mode]})"
        )
    last = tensor.dim() - 1  # non-negative dims: the legacy ONNX exporter mistranslates -1
    return (tensor.movedim(mode, last) @ matrix.T).movedim(last, mode)


def tucker_to_tensor(core: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Rebuild ``core x_0 factors[0] x_1 factors[1] ...``.

    ``core (r_0, ..., r_{d-1})`` and ``factors[m] (n_m, r_m)`` give ``(n_0, ..., n_{d-1})``.
    Differentiable (use it for adapters whose delta is a Tucker tensor).
    """
    if len(factors) != core.dim():
        raise ValueError(
            f"tucker_to_tensor: got {len(factors)} factors for a core with {core.dim()} "
            "modes; pass one factor (n_m, r_m) per mode"
        )
    out = core
    for mode, factor in enumerate(factors):
        out = mode_product(out, factor, mode)
    return out


def check_ranks(shape: Sequence[int], ranks: Sequence[int] | int) -> tuple[int, ...]:
    """Validate Tucker ranks for a tensor of ``shape``: one rank per mode, ``1 <= r_m <= n_m``.

    An int means the same rank for every mode. Raises ``ValueError`` naming the bad rank.
    """
    shape = tuple(shape)
    if isinstance(ranks, int):
        ranks = (ranks,) * len(shape)
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) != len(shape):
        raise ValueError(
            f"ranks={ranks} has {len(ranks)} entries but the tensor of shape {shape} has "
            f"{len(shape)} modes; give one rank per mode"
        )
    for mode, (rank, size) in enumerate(zip(ranks, shape, strict=True)):
        if not 1 <= rank <= size:
            raise ValueError(
                f"ranks[{mode}]={rank} is invalid for mode {mode} of size {size} "
                f"(tensor shape {shape}); each rank must be in 1..{size}, "
                "lower it or pass energy=... to choose ranks automatically"
            )
    return ranks


def _leading_left_vectors(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of ``matrix (n, m)``: ``(n, rank)``."""
    u, _, _ = torch.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank]


def hosvd(
    tensor: torch.Tensor, ranks: Sequence[int] | int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated higher-order SVD.

    ``U_m`` = the ``r_m`` leading left singular vectors of ``unfold(tensor, m)``
    (``(n_m, r_m)``, orthonormal columns); core ``G = tensor x_0 U_0^T ... (r_0, ...)``.
    With ``ranks == tensor.shape`` the reconstruction is exact (up to round-off).
    Runs without autograd. ``ranks`` may be an int (same for all modes).
    """
    ranks = check_ranks(tensor.shape, ranks)
    with torch.no_grad():
        factors = [_leading_left_vectors(unfold(tensor, m), r) for m, r in enumerate(ranks)]
        core = tensor
        for mode, factor in enumerate(factors):
            core = mode_product(core, factor.T, mode)
    return core, factors


def hooi(
    tensor: torch.Tensor, ranks: Sequence[int] | int, iters: int = 10
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Higher-order orthogonal iteration: HOSVD refined by ``iters`` alternating sweeps.

    Each sweep sets ``U_m`` to the leading left singular vectors of ``unfold(Y, m)``,
    ``Y = tensor`` projected on all other factors; the fit never gets worse than
    HOSVD's. Returns ``(core, factors)`` like :func:`hosvd`.
    """
    if iters < 0:
        raise ValueError(f"iters={iters} must be >= 0 (0 is plain HOSVD)")
    ranks = check_ranks(tensor.shape, ranks)
    core, factors = hosvd(tensor, ranks)
    with torch.no_grad():
        for _ in range(iters):
            for mode in range(tensor.dim()):
                projected = tensor
                for other, factor in enumerate(factors):
                    if other != mode:
                        projected = mode_product(projected, factor.T, other)
                factors[mode] = _leading_left_vectors(unfold(projected, mode), ranks[mode])
        core = tensor
        for mode, factor in enumerate(factors):
            core = mode_product(core, factor.T, mode)
    return core, factors


def ranks_for_energy(tensor: torch.Tensor, energy: float) -> tuple[int, ...]:
    """Smallest per-mode ranks keeping ``energy`` (0 < energy <= 1) of each unfolding.

    For every mode ``m``: the least ``r`` with ``sum_{j<r} s_j^2 >= energy * sum_j s_j^2``
    over the singular values ``s`` of ``unfold(tensor, m)``. A zero tensor gets rank 1.
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy={energy} must be in (0, 1], e.g. 0.99 keeps 99%")
    ranks = []
    with torch.no_grad():
        for mode in range(tensor.dim()):
            s2 = torch.linalg.svdvals(unfold(tensor, mode).double()) ** 2
            total = float(s2.sum())
            if total == 0.0:
                ranks.append(1)
                continue
            cumulative = torch.cumsum(s2, 0) / total
            # tolerance so energy=1.0 is reached despite round-off
            rank = int((cumulative < energy - 1e-12).sum()) + 1
            ranks.append(min(rank, tensor.shape[mode]))
    return tuple(ranks)


def relative_error(tensor: torch.Tensor, approx: torch.Tensor) -> float:
    """``||tensor - approx||_F / ||tensor||_F`` (0 for a zero tensor matched exactly)."""
    with torch.no_grad():
        norm = float(torch.linalg.vector_norm(tensor.double()))
        diff = float(torch.linalg.vector_norm((tensor - approx).double()))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm
