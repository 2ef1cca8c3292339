"""Tucker maths shared by Slim KAN and LoTRA, and the one Tucker tensor type.

A Tucker tensor of shape ``(n_0, ..., n_{d-1})`` is a core ``G (r_0, ..., r_{d-1})`` and
one factor ``U_m (n_m, r_m)`` per mode:

    T = G x_0 U_0 x_1 U_1 ... x_{d-1} U_{d-1}

where ``x_m`` is the mode-``m`` product (:func:`mode_product`). For a KAN coefficient
tensor ``(O, I, K)`` the modes are (out, in, basis). All functions work on any number of
modes, on any dtype/device, and are differentiable where noted.

:class:`TuckerFactors` is the one Tucker parameter container: Slim KAN's coefficients
(orthogonal init, kernel modes whole in the core) and LoTRA's updates (zero core, the
kernel folded into a fourth mode) are both views of it over the parameters they register
under their own state-dict names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lightning_kan.ops.ranks import is_int, resolve_ranks

__all__ = [
    "TuckerFactors",
    "check_ranks",
    "fold",
    "hooi",
    "hosvd",
    "mode_product",
    "partial_tucker",
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
    """Tucker ranks for a tensor of ``shape``: one rank per mode, ``1 <= r_m <= n_m``.

    An int means the same rank for every mode. :func:`~lightning_kan.ops.resolve_ranks`
    without clipping: ``ValueError`` naming the bad rank.
    """
    shape = tuple(int(n) for n in shape)
    if is_int(ranks):
        ranks = (ranks,) * len(shape)
    return resolve_ranks(
        ranks, shape, f"a tensor of shape {shape}", fix="or choose ranks with ranks_for_energy"
    )


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


def partial_tucker(tensor: torch.Tensor, ranks: Sequence[int], iters: int = 0) -> TuckerFactors:
    """HOSVD + ``iters`` HOOI sweeps of the first ``len(ranks)`` modes of ``tensor``; the
    remaining (kernel) modes stay whole in the core. Runs without autograd."""
    full = (*ranks, *tensor.shape[len(ranks) :])
    core, factors = hooi(tensor, full, iters)
    for mode in range(len(ranks), tensor.dim()):  # fold the square kernel factors back
        core = mode_product(core, factors[mode], mode)
    return TuckerFactors(core, tuple(factors[: len(ranks)]))


@dataclass(frozen=True)
class TuckerFactors:
    """A Tucker tensor ``core x_0 U_0 ... x_{d-1} U_{d-1}`` (the one Tucker type).

    ``core (r_0, ..., r_{d-1}, *whole)`` and ``factors[m] (n_m, r_m)`` for the leading
    ``d = len(factors)`` modes; trailing core modes without a factor (Slim's kernel
    taps) stay whole. The tensors are whatever the owner registered (parameters of a
    layer or an adapter), so the state-dict names stay the owner's; build one per use
    (it is a view, reading each tensor once).
    """

    core: torch.Tensor
    factors: tuple[torch.Tensor, ...]

    @classmethod
    def empty(
        cls, mode_sizes: Sequence[int], ranks: Sequence[int], whole: Sequence[int] = ()
    ) -> TuckerFactors:
        """Uninitialised parameters: ``core (*ranks, *whole)``, ``factors[m] (n_m, r_m)``."""
        return cls(
            nn.Parameter(torch.empty(*ranks, *whole)),
            tuple(nn.Parameter(torch.empty(n, r)) for n, r in zip(mode_sizes, ranks, strict=True)),
        )

    @property
    def mode_ranks(self) -> tuple[int, ...]:
        """``(r_0, ..., r_{d-1})``, one per factor."""
        return tuple(factor.shape[1] for factor in self.factors)

    @property
    def shape(self) -> tuple[int, ...]:
        """The full tensor's shape ``(n_0, ..., n_{d-1}, *whole)``."""
        whole = self.core.shape[len(self.factors) :]
        return (*(factor.shape[0] for factor in self.factors), *whole)

    def to_tensor(self, first: int = 0) -> torch.Tensor:
        """``core x_first U_first ... x_{d-1} U_{d-1}``, differentiable.

        ``first=0`` (default) is the full tensor ``shape``; ``first=1`` leaves mode 0 at
        rank ``r_0``, the small inner tensor that a GEMM with ``U_0`` then expands (LoTRA's
        fused update, Slim's convolution weight ``G x_1 U2 x_2 U3``).
        """
        out = self.core
        for mode in range(first, len(self.factors)):
            out = mode_product(out, self.factors[mode], mode)
        return out

    @torch.no_grad()
    def init_orthogonal(self, bound: float) -> None:
        """Slim KAN's init: orthonormal factors, a uniform core scaled so the full tensor
        has the Frobenius norm of ``U(-bound, bound)`` entries (orthonormal factors keep
        the norm)."""
        for factor in self.factors:
            nn.init.orthogonal_(factor)
        scale = math.sqrt(math.prod(self.shape) / self.core.numel())
        nn.init.uniform_(self.core, -bound * scale, bound * scale)

    @torch.no_grad()
    def init_zero_core(self, normal_modes: Sequence[int] = (1,)) -> None:
        """LoTRA's init: ``core = 0`` (the tensor is exactly zero), factors that let the
        first steps move it: ``U_m ~ N(0, 1/n_m)`` for ``normal_modes`` (the in mode sums
        over the layer's inputs, like a linear layer's weight), orthonormal otherwise."""
        nn.init.zeros_(self.core)
        for mode, factor in enumerate(self.factors):
            if mode in normal_modes:
                nn.init.normal_(factor, std=1.0 / math.sqrt(factor.shape[0]))
            else:
                nn.init.orthogonal_(factor)
