"""``SlimKANLinear`` / ``SlimKANConv*d``: KAN layers whose coefficients are Tucker factors.

    weight = G x_0 U1 x_1 U2 x_2 U3        G (r1, r2, r3), U1 (O, r1), U2 (I, r2), U3 (K, r3)

The four factors are the layer's only spline parameters (``core``, ``factor_out``,
``factor_in``, ``factor_basis``); the base branch and bias are ``KANLinear``'s. The
forward never builds the ``(O, I, K)`` tensor: the basis expansion ``Phi (..., I, K)``
(the same :func:`~lightning_kan.layers.expand_features` buffer) is contracted with U3
and U2 (in turn, or jointly through ``U2 (x) U3``), then G, then U1: about
``N*(I*K*r3 + I*r3*r2 + r3*r2*r1 + r1*O)`` multiply-adds in turn, ``N*I*K*r2*r3``
jointly, instead of ``N*O*I*K``.

``SlimKANConv{1,2,3}d`` do the same for KAN convolutions: the (out, in, basis) modes
are factored and the kernel modes stay whole in the core ``(r1, r2, r3, *kernel)``.

``weight`` is still readable (rebuilt on demand, for plots, regularisation and
``edge_activations``), so code that only reads the coefficient protocol works unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.bases import Basis
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.kan_conv import _CONV, _KANConvNd
from lightning_kan.layers.kan_linear import KANLinear
from lightning_kan.layers.tucker import (
    check_ranks,
    hooi,
    mode_product,
    ranks_for_energy,
    relative_error,
)

__all__ = ["SlimKANConv1d", "SlimKANConv2d", "SlimKANConv3d", "SlimKANLinear", "resolve_ranks"]

Ranks = int | Sequence[int]
_KRON_COLUMNS = 256  # "auto" contracts with U2 (x) U3 up to this many columns (or 2*O)


def resolve_ranks(shape: Sequence[int], ranks: Ranks) -> tuple[int, ...]:
    """Per-mode ranks for a tensor of ``shape``.

    An int ``r`` means ``min(r, n_m)`` for every mode (so one number fits every layer);
    a sequence must give one rank per mode with ``1 <= r_m <= n_m`` (``ValueError``
    otherwise).
    """
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        if ranks < 1:
            raise ValueError(f"ranks={ranks} must be >= 1 (or one positive rank per mode)")
        return tuple(min(ranks, size) for size in shape)
    return check_ranks(shape, ranks)


class _FixedCoefficientsMixin:
    """Grid moves refit a dense ``weight``; layers whose ``weight`` is computed refuse them."""

    def update_grid(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} computes its coefficients from other parameters, so "
            "update_grid/refine_grid cannot refit them; move the grid on the dense KAN "
            "before converting it (e.g. SlimKAN.from_dense) or train without grid updates"
        )

    refine_grid = update_grid


class _TuckerCoefficientsMixin(_FixedCoefficientsMixin):
    """Tucker factors of the (out, in, basis) modes in place of ``weight``.

    ``core (r1, r2, r3, *kernel)`` keeps any kernel modes whole; ``factor_out (O, r1)``,
    ``factor_in (I, r2)``, ``factor_basis (K, r3)``; ``base_weight`` stays dense.
    """

    coefficient_shape: tuple[int, ...]
    activation: Any
    bias: nn.Parameter | None
    base_weight: nn.Parameter | None

    def _build_coefficients(self) -> None:
        out_features, group_inputs, num_functions, *kernel = self.coefficient_shape
        self.ranks = resolve_ranks(self.coefficient_shape[:3], self._requested_ranks)
        r1, r2, r3 = self.ranks
        self.core = nn.Parameter(torch.empty(r1, r2, r3, *kernel))
        self.factor_out = nn.Parameter(torch.empty(out_features, r1))
        self.factor_in = nn.Parameter(torch.empty(group_inputs, r2))
        self.factor_basis = nn.Parameter(torch.empty(num_functions, r3))
        if self.activation is not None:
            self.base_weight = nn.Parameter(torch.empty(out_features, group_inputs, *kernel))
        else:
            self.register_parameter("base_weight", None)

    def _reset_coefficients(self, bound: float) -> None:
        for factor in self.factors:
            nn.init.orthogonal_(factor)
        # orthonormal factors keep the Frobenius norm: match U(-bound, bound) on every entry
        scale = math.sqrt(math.prod(self.coefficient_shape) / self.core.numel())
        nn.init.uniform_(self.core, -bound * scale, bound * scale)

    @property
    def factors(self) -> list[torch.Tensor]:
        """``[U1 (O, r1), U2 (I, r2), U3 (K, r3)]``."""
        return [self.factor_out, self.factor_in, self.factor_basis]

    @property
    def weight(self) -> torch.Tensor:
        """The rebuilt coefficients ``(O, I, K, *kernel)`` (differentiable; not used by
        the forward)."""
        out = self.core
        for mode, factor in enumerate(self.factors):
            out = mode_product(out, factor, mode)
        return out

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight, self.base_weight

    def num_spline_parameters(self) -> int:
        """``r1*r2*r3*prod(kernel) + O*r1 + I*r2 + K*r3``."""
        return sum(p.numel() for p in (self.core, *self.factors))

    def _copy_dense(self, layer: nn.Module, hooi_iters: int) -> float:
        """Fill the factors from ``layer``'s dense coefficients (HOSVD + ``hooi_iters``
        HOOI sweeps on the first three modes; kernel modes stay in the core), copy its
        base weight and bias; return the coefficients' relative Frobenius error."""
        weight = layer.weight.detach()
        core, factors = _partial_tucker(weight, self.ranks, hooi_iters)
        with torch.no_grad():
            self.core.copy_(core)
            for target, factor in zip(self.factors, factors, strict=True):
                target.copy_(factor)
            if layer.base_weight is not None:
                self.base_weight.copy_(layer.base_weight)
            if layer.bias is not None:
                self.bias.copy_(layer.bias)
        return relative_error(weight, self.weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ranks={self.ranks}"  # type: ignore[misc]


def _partial_tucker(
    tensor: torch.Tensor, ranks: Sequence[int], hooi_iters: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Tucker of the first ``len(ranks)`` modes; the remaining modes stay in the core."""
    full = (*ranks, *tensor.shape[len(ranks) :])
    core, factors = hooi(tensor, full, hooi_iters)
    for mode in range(len(ranks), tensor.dim()):  # fold the square kernel factors back
        core = mode_product(core, factors[mode], mode)
    return core, factors[: len(ranks)]


def _kron(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.kron`` of two matrices ``(m, n) (p, q) -> (m*p, n*q)`` from an outer
    product (the legacy ONNX exporter has no ``aten::kron``)."""
    outer = a[:, None, :, None] * b[None, :, None, :]
    return outer.reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1])


def _check_rank_source(ranks: Any, energy: float | None) -> None:
    if (ranks is None) == (energy is None):
        raise ValueError(
            f"give exactly one of ranks and energy, got ranks={ranks!r}, energy={energy!r}"
        )


def _energy_ranks(weight: torch.Tensor, ranks: Any, energy: float | None) -> tuple[int, ...]:
    chosen = ranks_for_energy(weight, energy)[:3] if energy is not None else ranks
    return resolve_ranks(weight.shape[:3], chosen)


class SlimKANLinear(_TuckerCoefficientsMixin, KANLinear):
    """A KAN layer whose ``(O, I, K)`` coefficients are a Tucker tensor of ``ranks``.

    Args:
        in_features, out_features: as :class:`KANLinear`.
        ranks: Tucker ranks ``(r1, r2, r3)`` of the (out, in, basis) modes, or one int
            (clipped to each mode's size).
        basis, basis_kwargs, base_activation, bias, spline_init_scale, compiled: as
            :class:`KANLinear`.

    Parameters: ``core (r1, r2, r3)``, ``factor_out (O, r1)``, ``factor_in (I, r2)``,
    ``factor_basis (K, r3)``, ``base_weight (O, I)`` (with a base branch), ``bias (O,)``:
    ``r1*r2*r3 + O*r1 + I*r2 + K*r3`` spline parameters.

    Forward (``contraction``): ``"sequential"`` contracts ``Phi (N, I, K)`` with U3
    (``(N, I, r3)``), then U2 (``(N, r3, r2)``), then G and U1; ``"kron"`` contracts the
    flat ``Phi (N, I*K)`` with ``U2 (x) U3 (I*K, r2*r3)`` in one GEMM on the expansion
    buffer (no ``(N, I, r3)`` intermediate; faster on CPU, see ``benchmarks/slim_meta.py``),
    then G and U1. ``"auto"`` (default) takes ``"kron"`` while
    ``r2*r3 <= max(2*O, 256)``: ``U2 (x) U3`` is then at most twice the dense tensor or
    ``256*I*K`` numbers (usually far less than the ``(N, I, r3)`` intermediates of the
    sequential path); neither path builds the dense tensor.

    Initialisation: orthonormal factors and a uniform core scaled so the rebuilt tensor
    has the Frobenius norm of a ``KANLinear``'s initial coefficients.

    Shapes: ``x (..., I) -> (..., O)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        ranks: Ranks = 4,
        basis: str | Basis = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        bias: bool = True,
        spline_init_scale: float | None = None,
        compiled: bool = False,
    ) -> None:
        self._requested_ranks = ranks  # read by _build_coefficients during super().__init__
        #: "sequential", "kron" or "auto" (see the class docstring)
        self.contraction = "auto"
        super().__init__(
            in_features,
            out_features,
            basis=basis,
            basis_kwargs=basis_kwargs,
            base_activation=base_activation,
            bias=bias,
            spline_init_scale=spline_init_scale,
            compiled=compiled,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        core = self.core  # read once: a parametrisation (e.g. a LoTRA adapter) runs once
        features = expand_features(x, self.basis, self.activation, self.compiled)
        if features.dtype != core.dtype:
            features = features.to(core.dtype)
        r1, r2, r3 = self.ranks
        num_values = self.in_features * self.num_basis_functions
        values = features[..., :num_values]  # (..., I*K), a strided view of the buffer
        if self._use_kron():
            # U2 (x) U3: (I*K, r2*r3), row i*K + k, column b*r3 + c; one GEMM on the view
            hidden = F.linear(values, _kron(self.factor_in, self.factor_basis).T)
            hidden = F.linear(hidden, core.reshape(r1, r2 * r3))  # (..., r1)
        else:
            hidden = values.unflatten(-1, (self.in_features, -1)) @ self.factor_basis
            hidden = hidden.transpose(-1, -2) @ self.factor_in  # (..., r3, r2)
            core = core.permute(2, 1, 0).reshape(r3 * r2, r1)  # [c*r2 + b, a] = G[a, b, c]
            hidden = hidden.flatten(-2) @ core  # (..., r1)
        y = F.linear(hidden, self.factor_out, self.bias)  # (..., O)
        if self.base_weight is not None:
            y = y + F.linear(features[..., num_values:], self.base_weight)
        return y

    def _use_kron(self) -> bool:
        if self.contraction != "auto":
            return self.contraction == "kron"
        _, r2, r3 = self.ranks
        return r2 * r3 <= max(2 * self.out_features, _KRON_COLUMNS)

    @classmethod
    def from_dense(
        cls,
        layer: KANLinear,
        ranks: Ranks | None = None,
        energy: float | None = None,
        hooi_iters: int = 0,
    ) -> tuple[SlimKANLinear, float]:
        """Compress a ``KANLinear`` by truncated HOSVD (+ ``hooi_iters`` HOOI sweeps).

        Give ``ranks`` (int or ``(r1, r2, r3)``) or ``energy`` (keep that fraction of
        every unfolding's squared singular values, :func:`ranks_for_energy`). The basis
        (including a moved B-spline grid), base branch and bias are copied. Returns
        ``(slim_layer, relative Frobenius error of the coefficients)``.
        """
        _check_rank_source(ranks, energy)
        weight = layer.weight.detach()
        slim = cls(
            layer.in_features,
            layer.out_features,
            ranks=_energy_ranks(weight, ranks, energy),
            basis=copy.deepcopy(layer.basis),
            base_activation=None if layer.activation is None else "identity",
            bias=layer.bias is not None,
            compiled=layer.compiled,
        ).to(device=weight.device, dtype=weight.dtype)
        slim.activation = layer.activation
        return slim, slim._copy_dense(layer, hooi_iters)


class _SlimKANConvNd(_TuckerCoefficientsMixin, _KANConvNd):
    """Shared implementation of ``SlimKANConv{1,2,3}d``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        ranks: Ranks = 4,
        **kan_conv_kwargs: Any,
    ) -> None:
        self._requested_ranks = ranks  # read by _build_coefficients during super().__init__
        if kan_conv_kwargs.get("groups", 1) != 1:
            raise ValueError(
                f"groups={kan_conv_kwargs['groups']} is not supported by Slim KAN "
                "convolutions; use groups=1 (or a dense KANConv for grouped convolutions)"
            )
        super().__init__(in_channels, out_channels, kernel_size, **kan_conv_kwargs)

    def _convolve(self, features: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        conv = _CONV[self.ndim]
        ones = (1,) * self.ndim
        core = self.core  # read once: a parametrisation (e.g. a LoTRA adapter) runs once
        dtype = features.dtype
        r1 = self.ranks[0]
        num_values = self.in_channels * self.num_basis_functions
        # spatial convolution with G x_1 U2 x_2 U3 (r1, C*K, *kernel): r1/O of the dense
        # tensor, never the dense tensor itself; then a 1x1 convolution with U1
        reduced = mode_product(mode_product(core, self.factor_in, 1), self.factor_basis, 2)
        reduced = reduced.reshape(r1, num_values, *self.kernel_size).to(dtype)
        hidden = conv(features[:, :num_values], reduced, **options)
        y = conv(hidden, self.factor_out.reshape(-1, r1, *ones).to(dtype), self.bias)
        if self.base_weight is not None:
            y = y + conv(features[:, num_values:], self.base_weight.to(dtype), **options)
        return y

    @classmethod
    def from_dense(
        cls,
        layer: _KANConvNd,
        ranks: Ranks | None = None,
        energy: float | None = None,
        hooi_iters: int = 0,
    ) -> tuple[_SlimKANConvNd, float]:
        """Compress a ``KANConv{1,2,3}d`` (groups 1) like :meth:`SlimKANLinear.from_dense`;
        the kernel modes stay whole in the core."""
        if layer.ndim != cls.ndim:
            raise ValueError(
                f"{cls.__name__}.from_dense needs a KANConv{cls.ndim}d, got {type(layer).__name__}"
            )
        _check_rank_source(ranks, energy)
        weight = layer.weight.detach()
        slim = cls(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            ranks=_energy_ranks(weight, ranks, energy),
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
            basis=copy.deepcopy(layer.basis),
            base_activation=None if layer.activation is None else "identity",
            compiled=layer.compiled,
        ).to(device=weight.device, dtype=weight.dtype)
        slim.activation = layer.activation
        return slim, slim._copy_dense(layer, hooi_iters)


class SlimKANConv1d(_SlimKANConvNd):
    """Slim KAN 1-D convolution: core ``(r1, r2, r3, k)``; see :class:`SlimKANConv2d`."""

    ndim = 1


class SlimKANConv2d(_SlimKANConvNd):
    """A ``KANConv2d`` whose ``(O, C, K, kh, kw)`` coefficients are a Tucker tensor.

    Args: ``in_channels, out_channels, kernel_size``, ``ranks`` (as
    :class:`SlimKANLinear`, over the (out, in, basis) modes) and ``KANConv2d``'s keyword
    options (``groups`` must be 1).

    Parameters: ``core (r1, r2, r3, kh, kw)`` (the kernel stays whole),
    ``factor_out (O, r1)``, ``factor_in (C, r2)``, ``factor_basis (K, r3)``, dense
    ``base_weight (O, C, kh, kw)`` and ``bias``. Forward: one spatial convolution of the
    expanded input with ``G x_1 U2 x_2 U3`` (``(r1, C*K, kh, kw)``, ``r1/O`` of the dense
    tensor; ``C*K -> r1`` channels), then a 1x1 convolution with U1 (``-> O``); the dense
    ``(O, C, K, kh, kw)`` tensor is never built.

    Shapes: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.
    """

    ndim = 2


class SlimKANConv3d(_SlimKANConvNd):
    """Slim KAN 3-D convolution: core ``(r1, r2, r3, kd, kh, kw)``."""

    ndim = 3
