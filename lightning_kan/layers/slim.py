"""Slim KAN: the :class:`Tucker` coefficient family and its presets ``SlimKANLinear`` /
``SlimKANConv*d`` (``KANLinear``/``KANConv*d`` with ``coefficients=Tucker(ranks)``).

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
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.bases import Basis
from lightning_kan.layers.activations import BaseActivation
from lightning_kan.layers.coefficients import (
    CONV,
    Coefficients,
    Dense,
    register_coefficients,
    reset_base_weight,
)
from lightning_kan.layers.kan_conv import KANConvNd
from lightning_kan.layers.kan_linear import KANLinear
from lightning_kan.ops import (
    TuckerFactors,
    is_int,
    partial_tucker,
    ranks_for_energy,
    relative_error,
)
from lightning_kan.ops import resolve_ranks as resolve_mode_ranks

__all__ = [
    "SlimKANConv1d",
    "SlimKANConv2d",
    "SlimKANConv3d",
    "SlimKANLinear",
    "Tucker",
    "resolve_ranks",
]

Ranks = int | Sequence[int]
_CONTRACTIONS = ("auto", "kron", "sequential")
_KRON_COLUMNS = 256  # "auto" contracts with U2 (x) U3 up to this many columns (or 2*O)


def resolve_ranks(
    shape: Sequence[int], ranks: Ranks, where: str = "a Slim KAN layer"
) -> tuple[int, ...]:
    """Per-mode ranks for the (out, in, basis) modes ``shape``, by the one resolver
    (:func:`lightning_kan.ops.resolve_ranks`).

    An int ``r`` means ``min(r, n_m)`` for every mode, so one number fits every layer
    (``clip=True``, silently: that is what an int is documented to mean, and almost every
    network has a mode smaller than its rank); a sequence must give one rank per mode with
    ``1 <= r_m <= n_m`` (``ValueError`` otherwise).
    """
    return resolve_mode_ranks(
        ranks,
        shape,
        where,
        clip=is_int(ranks),
        fix="or pass one int, which is clipped to every mode's size",
        clip_option=f"Slim KAN ranks={ranks!r} (one int for every mode)",
        clipped=[],  # the notes are dropped: clipping an int is the documented meaning
    )


@register_coefficients("tucker")
class Tucker(Coefficients):
    """Tucker factors of the (out, in, basis) modes in place of a dense ``weight``.

    Registers ``core (r1, r2, r3, *kernel)`` (kernel modes stay whole),
    ``factor_out (O, r1)``, ``factor_in (I, r2)``, ``factor_basis (K, r3)`` and a dense
    ``base_weight``; the layer gets ``ranks`` (resolved by :func:`resolve_ranks`) and
    ``contraction`` (``"sequential"``, ``"kron"`` or ``"auto"``, see
    :class:`SlimKANLinear`; settable on the layer afterwards). Convolutions need
    ``groups=1``.
    """

    stores = frozenset({"base_weight"})

    def __init__(self, ranks: Ranks = 4, contraction: str = "auto") -> None:
        if contraction not in _CONTRACTIONS:
            raise ValueError(f"contraction must be one of {_CONTRACTIONS}, got {contraction!r}")
        self.ranks = ranks
        self.contraction = contraction

    def build(self, layer: nn.Module, shape: tuple[int, ...], base: bool) -> None:
        groups = getattr(layer, "groups", 1)
        if groups != 1:
            raise ValueError(
                f"groups={groups} is not supported by Slim KAN (Tucker) convolutions; use "
                "groups=1 (or a dense KANConv for grouped convolutions)"
            )
        kernel = shape[3:]
        where = f"{type(layer).__name__} coefficients {tuple(shape)}"
        layer.ranks = resolve_ranks(shape[:3], self.ranks, where)
        layer.contraction = self.contraction
        tucker = TuckerFactors.empty(shape[:3], layer.ranks, whole=kernel)
        layer.core = tucker.core
        layer.factor_out, layer.factor_in, layer.factor_basis = tucker.factors
        Dense.build_base(layer, shape, base)

    def reset(self, layer: nn.Module, bound: float) -> None:
        tucker_factors(layer).init_orthogonal(bound)
        reset_base_weight(layer)

    def tensors(self, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The rebuilt ``(O, I, K, *kernel)`` tensor (differentiable; the forward
        contracts the factors instead) and the dense base weight."""
        return tucker_factors(layer).to_tensor(), layer.base_weight

    def linear(self, layer: nn.Module, features: torch.Tensor) -> torch.Tensor:
        core = layer.core  # read once: a parametrisation (e.g. a LoTRA adapter) runs once
        if features.dtype != core.dtype:
            features = features.to(core.dtype)
        r1, r2, r3 = layer.ranks
        num_values = layer.in_features * layer.num_basis_functions
        values = features[..., :num_values]  # (..., I*K), a strided view of the buffer
        if _use_kron(layer):
            # U2 (x) U3: (I*K, r2*r3), row i*K + k, column b*r3 + c; one GEMM on the view
            hidden = F.linear(values, _kron(layer.factor_in, layer.factor_basis).T)
            hidden = F.linear(hidden, core.reshape(r1, r2 * r3))  # (..., r1)
        else:
            hidden = values.unflatten(-1, (layer.in_features, -1)) @ layer.factor_basis
            hidden = hidden.transpose(-1, -2) @ layer.factor_in  # (..., r3, r2)
            core = core.permute(2, 1, 0).reshape(r3 * r2, r1)  # [c*r2 + b, a] = G[a, b, c]
            hidden = hidden.flatten(-2) @ core  # (..., r1)
        y = F.linear(hidden, layer.factor_out, layer.bias)  # (..., O)
        if layer.base_weight is not None:
            y = y + F.linear(features[..., num_values:], layer.base_weight)
        return y

    def convolve(
        self, layer: nn.Module, features: torch.Tensor, options: dict[str, Any]
    ) -> torch.Tensor:
        conv = CONV[layer.ndim]
        ones = (1,) * layer.ndim
        # reads core once: a parametrisation (e.g. a LoTRA adapter) runs once
        tucker = tucker_factors(layer)
        dtype = features.dtype
        r1 = layer.ranks[0]
        num_values = layer.in_channels * layer.num_basis_functions
        # spatial convolution with G x_1 U2 x_2 U3 (r1, C*K, *kernel): r1/O of the dense
        # tensor, never the dense tensor itself; then a 1x1 convolution with U1
        reduced = tucker.to_tensor(first=1).reshape(r1, num_values, *layer.kernel_size).to(dtype)
        hidden = conv(features[:, :num_values], reduced, **options)
        y = conv(hidden, layer.factor_out.reshape(-1, r1, *ones).to(dtype), layer.bias)
        if layer.base_weight is not None:
            y = y + conv(features[:, num_values:], layer.base_weight.to(dtype), **options)
        return y

    def extra_repr(self, layer: nn.Module) -> str:
        return f"ranks={layer.ranks}"

    def __repr__(self) -> str:
        return f"Tucker(ranks={self.ranks!r}, contraction={self.contraction!r})"


def factors(layer: nn.Module) -> list[torch.Tensor]:
    """A Tucker layer's ``[U1 (O, r1), U2 (I, r2), U3 (K, r3)]``."""
    return [layer.factor_out, layer.factor_in, layer.factor_basis]


def tucker_factors(layer: nn.Module) -> TuckerFactors:
    """A Tucker layer's coefficients as the one Tucker type (a view of ``core``,
    ``factor_out``, ``factor_in``, ``factor_basis``; the kernel modes whole in the core)."""
    return TuckerFactors(layer.core, tuple(factors(layer)))


def num_spline_parameters(layer: nn.Module) -> int:
    """``r1*r2*r3*prod(kernel) + O*r1 + I*r2 + K*r3``: a Tucker layer's spline parameters."""
    return sum(p.numel() for p in (layer.core, *factors(layer)))


def _use_kron(layer: nn.Module) -> bool:
    if layer.contraction != "auto":
        return layer.contraction == "kron"
    _, r2, r3 = layer.ranks
    return r2 * r3 <= max(2 * layer.out_features, _KRON_COLUMNS)


def _copy_dense(slim: nn.Module, layer: nn.Module, hooi_iters: int) -> float:
    """Fill ``slim``'s factors from ``layer``'s dense coefficients (HOSVD + ``hooi_iters``
    HOOI sweeps on the first three modes; kernel modes stay in the core), copy its base
    weight and bias; return the coefficients' relative Frobenius error."""
    weight = layer.weight.detach()
    dense = partial_tucker(weight, slim.ranks, hooi_iters)
    with torch.no_grad():
        slim.core.copy_(dense.core)
        for target, factor in zip(factors(slim), dense.factors, strict=True):
            target.copy_(factor)
        if layer.base_weight is not None:
            slim.base_weight.copy_(layer.base_weight)
        if layer.bias is not None:
            slim.bias.copy_(layer.bias)
    return relative_error(weight, slim.weight)


def _kron(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.kron`` of two matrices ``(m, n) (p, q) -> (m*p, n*q)`` from an outer
    product (the legacy ONNX exporter has no ``aten::kron``)."""
    outer = a[:, None, :, None] * b[None, :, None, :]
    return outer.reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1])


def _converted_activation(activation: BaseActivation | None) -> BaseActivation | None:
    """The dense layer's base branch for its Slim copy: shared when stateless (the named
    ones, so one compiled expansion serves both), copied when it has parameters (PReLU),
    so the two layers train independently."""
    if activation is None or activation.is_parameter_free:
        return activation
    return copy.deepcopy(activation)


def _check_rank_source(ranks: Any, energy: float | None) -> None:
    if (ranks is None) == (energy is None):
        raise ValueError(
            f"give exactly one of ranks and energy, got ranks={ranks!r}, energy={energy!r}"
        )


def _energy_ranks(weight: torch.Tensor, ranks: Any, energy: float | None) -> tuple[int, ...]:
    chosen = ranks_for_energy(weight, energy)[:3] if energy is not None else ranks
    where = f"from_dense of coefficients {tuple(weight.shape)}"
    return resolve_ranks(weight.shape[:3], chosen, where)


class SlimKANLinear(KANLinear):
    """A KAN layer whose ``(O, I, K)`` coefficients are a Tucker tensor of ``ranks``.

    Args:
        in_features, out_features: as :class:`KANLinear`.
        ranks: Tucker ranks ``(r1, r2, r3)`` of the (out, in, basis) modes, or one int
            (clipped to each mode's size, with one warning naming the clipped modes).
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
        super().__init__(
            in_features,
            out_features,
            basis=basis,
            basis_kwargs=basis_kwargs,
            base_activation=base_activation,
            bias=bias,
            spline_init_scale=spline_init_scale,
            compiled=compiled,
            coefficients=Tucker(ranks),
        )

    factors = property(factors, doc="``[U1 (O, r1), U2 (I, r2), U3 (K, r3)]``.")
    num_spline_parameters = num_spline_parameters

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
            base_activation=_converted_activation(layer.activation),
            bias=layer.bias is not None,
            compiled=layer.compiled,
        ).to(device=weight.device, dtype=weight.dtype)
        return slim, _copy_dense(slim, layer, hooi_iters)


class _SlimKANConvNd(KANConvNd):
    """Shared implementation of ``SlimKANConv{1,2,3}d``: a ``KANConvNd`` preset with
    :class:`Tucker` coefficients."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        ranks: Ranks = 4,
        **kan_conv_kwargs: Any,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, coefficients=Tucker(ranks), **kan_conv_kwargs
        )

    factors = property(factors, doc="``[U1 (O, r1), U2 (C, r2), U3 (K, r3)]``.")
    num_spline_parameters = num_spline_parameters

    @classmethod
    def from_dense(
        cls,
        layer: KANConvNd,
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
            base_activation=_converted_activation(layer.activation),
            compiled=layer.compiled,
        ).to(device=weight.device, dtype=weight.dtype)
        return slim, _copy_dense(slim, layer, hooi_iters)


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
