"""Tucker adapters on a coefficient tensor, as a ``torch.nn.utils.parametrize`` parametrization.

A KAN layer's coefficient tensor ``C (O, I, K)`` becomes

    C = C_pre + G x1 U1 x2 U2 x3 U3,     G (r1, r2, r3), U1 (O, r1), U2 (I, r2), U3 (K, r3)

with ``C_pre`` frozen (``layer.parametrizations.weight.original``). KAN convolutions hold
``C (O, I, K, *kernel)``: their kernel taps are flattened into a **fourth mode** of size
``T = prod(kernel)`` with its own factor ``U4 (T, r4)`` (r4 defaults to T, a full-rank
kernel mode), so the update is ``G x1 U1 x2 U2 x3 U3 x4 U4`` reshaped to ``C``'s shape.

Because this is a parametrization of whatever parameter is named, it works on any module
with a coefficient tensor of three or more modes ordered (out, in, basis, ...), including
KAN layers from other libraries (pass ``parameter_name``, e.g. efficient-kan's
``"spline_weight"``). Several named adapters can sit on one tensor; one is active at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lightning_kan.lotra.ranks import (
    COMPONENTS,
    RankSpec,
    check_ranks,
    is_int,
    ranks_for_module,
    resolve_ranks,
)
from lightning_kan.ops import TuckerFactors

__all__ = [
    "COMPONENTS",
    "RankSpec",
    "TuckerAdapters",
    "TuckerDelta",
    "check_ranks",
    "folded_shape",
    "ranks_for_module",
    "resolve_ranks",
]


def folded_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The adapter's modes: ``(O, I, K)``, or ``(O, I, K, T)`` with the kernel taps
    ``T = prod(kernel)`` of a convolution folded into one fourth mode."""
    shape = tuple(int(n) for n in shape)
    return (*shape[:3], math.prod(shape[3:])) if len(shape) > 3 else shape


class TuckerDelta(nn.Module):
    """One adapter: the update ``G x1 U1 x2 U2 x3 U3 (x4 U4)`` of a coefficient tensor.

    Its parameters ``core`` and ``factors.{0..3}`` (the state-dict and adapter-file
    names) are a :class:`~lightning_kan.ops.TuckerFactors` (:attr:`tucker`), initialised
    with ``init_zero_core``: the update is exactly zero (``G = 0``), with well-scaled
    factors so the first steps move it: ``U1``, ``U3``, ``U4`` random orthonormal columns
    and ``U2 ~ N(0, 1/I)`` (it sums over the layer's I inputs, like a linear layer's weight).

    Args:
        shape: the coefficient tensor's shape ``(O, I, K, *kernel)``.
        ranks: one rank per folded mode (see :func:`resolve_ranks`).
    """

    def __init__(self, shape: Sequence[int], ranks: Sequence[int]) -> None:
        super().__init__()
        if len(shape) < 3 or not all(is_int(n) and n >= 1 for n in shape):
            raise ValueError(
                f"TuckerDelta shape={tuple(shape)!r} is not a coefficient tensor's shape: "
                "expected 3 or more positive ints (out, in, basis, *kernel)"
            )
        self.shape = tuple(int(n) for n in shape)
        self.mode_sizes = folded_shape(self.shape)
        self.ranks = resolve_ranks(ranks, self.mode_sizes, f"TuckerDelta(shape={self.shape})")
        tucker = TuckerFactors.empty(self.mode_sizes, self.ranks)
        self.core = tucker.core
        self.factors = nn.ParameterList(tucker.factors)
        self.reset_parameters()

    @property
    def tucker(self) -> TuckerFactors:
        """The update as the one Tucker type (a view of ``core`` and ``factors``)."""
        return TuckerFactors(self.core, tuple(self.factors))

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the factors in mode order: ``("out", "in", "basis"[, "kernel"])``."""
        return COMPONENTS[1 : 1 + len(self.factors)]

    def named_components(self) -> list[tuple[str, nn.Parameter]]:
        """``[("core", G), ("out", U1), ("in", U2), ("basis", U3), ("kernel", U4)]``."""
        return [("core", self.core), *zip(self.components, self.factors, strict=True)]

    def reset_parameters(self) -> None:
        self.tucker.init_zero_core(normal_modes=(self.components.index("in"),))

    def _inner(self, dtype: torch.dtype) -> torch.Tensor:
        """``G x2 U2 x3 U3 (x4 U4)`` unfolded along mode 1: ``(r1, I*K*T)``, small."""
        return self.tucker.to_tensor(first=1).reshape(self.ranks[0], -1).to(dtype)

    def forward(self) -> torch.Tensor:
        """The update, shaped like the coefficient tensor ``(O, I, K, *kernel)``."""
        return (self.factors[0] @ self._inner(self.core.dtype)).view(self.shape)

    def add_to(self, base: torch.Tensor) -> torch.Tensor:
        """``base + update`` in one fused GEMM, ``addmm(base, U1, inner)``.

        The only full-size tensor made is the result itself (written contiguously in the
        layer's layout), and the backward is two thin GEMMs against its gradient: a
        LoTRA step then costs less than a full fine-tuning step, whose optimizer has to
        update every coefficient (``benchmarks/lotra_step.py``).
        """
        out_features = self.shape[0]
        merged = torch.addmm(
            base.reshape(out_features, -1),
            self.factors[0].to(base.dtype),
            self._inner(base.dtype),
        )
        return merged.view(self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, ranks={self.ranks}"


class TuckerAdapters(nn.Module):
    """The parametrization: ``C_pre -> C_pre + delta_active`` (``C_pre`` when none is active).

    Holds every named :class:`TuckerDelta` of one coefficient tensor in ``adapters``;
    ``active`` names the one in use (``None``: the pretrained tensor alone).
    """

    def __init__(self) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.active: str | None = None

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return original
        return self.adapters[self.active].add_to(original)
