"""Coefficient families: how a KAN layer stores its ``(O, I, K, *kernel)`` coefficients.

A layer (``KANLinear``, ``KANConv{1,2,3}d``) holds one :class:`Coefficients` strategy
and calls it at four points:

* ``build(layer, shape, base)``: register the family's parameters **on the layer**
  (so state-dict keys are ``weight``, ``core``, ``prompts``, ... and LoTRA adapters,
  which act on a 3+-D parameter by name, find them); ``shape`` is
  ``(O, I_per_group, K, *kernel)``, ``base`` whether there is a base branch;
* ``reset(layer, bound)``: initialise them (``bound``: the ``U(-bound, bound)`` scale of
  a dense layer's coefficients);
* ``tensors(layer) -> (weight (O, I, K, *kernel), base_weight (O, I, *kernel) or None)``:
  the (differentiable) dense tensors, read once per forward;
* optionally ``linear(layer, features)`` / ``convolve(layer, features, options)``:
  contract the expanded features ``(..., I*K [+ I])`` directly (Tucker never builds the
  dense tensor); the defaults here do one GEMM / convolution with ``tensors``;
* optionally ``linear_from_inputs(layer, x)``: a dense layer's whole output from the raw
  inputs (``Dense``: the C expansion and GEMMs as one autograd node, or a uniform
  B-spline's local contraction), or ``None`` (the default) for the expansion and ``linear``.

A strategy holds configuration only (one instance may serve every layer of a net);
per-layer state lives on the layer. Families are registered by name like the bases::

    @register_coefficients("cp")
    class CP(Coefficients): ...

    KAN([2, 5, 1], coefficients="cp", coefficients_kwargs={"rank": 4})
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.layers.native_linear import linear_from_inputs as native_linear_from_inputs
from lightning_kan.layers.split_linear import split_linear, split_linear_applies

__all__ = [
    "Coefficients",
    "Dense",
    "available_coefficients",
    "build_coefficients",
    "register_coefficients",
    "reset_base_weight",
]

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_REGISTRY: dict[str, type[Coefficients]] = {}


def register_coefficients(name: str) -> Callable[[type[Coefficients]], type[Coefficients]]:
    """Class decorator that makes a :class:`Coefficients` family buildable by ``name``."""
    key = name.lower()

    def decorator(family: type[Coefficients]) -> type[Coefficients]:
        if key in _REGISTRY and _REGISTRY[key] is not family:
            raise ValueError(
                f"a coefficient family named {name!r} is already registered "
                f"({_REGISTRY[key].__name__}); choose another name"
            )
        _REGISTRY[key] = family
        return family

    return decorator


def available_coefficients() -> list[str]:
    """Names accepted by :func:`build_coefficients`, sorted."""
    return sorted(_REGISTRY)


def build_coefficients(
    coefficients: str | Coefficients | None, kwargs: dict[str, Any] | None = None
) -> Coefficients:
    """A strategy from a registered name (built with ``kwargs``), an instance, or ``None``
    (:class:`Dense`); errors name the value and the accepted ones."""
    if coefficients is None:
        coefficients = "dense"
    if isinstance(coefficients, Coefficients):
        if kwargs:
            raise ValueError(
                f"coefficients_kwargs {sorted(kwargs)} were given with a ready "
                f"{type(coefficients).__name__} instance; set them when you build it instead"
            )
        return coefficients
    if not isinstance(coefficients, str):
        raise TypeError(
            f"coefficients must be a registered name ({available_coefficients()}) or a "
            f"Coefficients instance such as Tucker(ranks=4), got "
            f"{type(coefficients).__name__} {coefficients!r}"
        )
    family = _REGISTRY.get(coefficients.lower())
    if family is None:
        raise ValueError(
            f"unknown coefficients {coefficients!r}; expected one of "
            f"{available_coefficients()} or a Coefficients instance (register your own "
            "with @register_coefficients(name))"
        )
    try:
        return family(**(kwargs or {}))
    except TypeError as error:
        raise ValueError(
            f"coefficients={coefficients!r} does not take coefficients_kwargs {kwargs!r}: {error}"
        ) from None


def reset_base_weight(layer: nn.Module) -> None:
    """PyTorch's ``nn.Linear``/``nn.Conv`` init (kaiming-uniform) of a dense base weight."""
    if layer.base_weight is not None:
        nn.init.kaiming_uniform_(layer.base_weight, a=math.sqrt(5))


class Coefficients:
    """Strategy base class; see the module docstring for the protocol."""

    #: ``update_grid``/``refine_grid`` refit a stored dense ``weight``; other families refuse
    refits_grid: ClassVar[bool] = False
    #: which of ``weight``/``base_weight`` ``build`` registers as parameters; the others
    #: are computed by ``tensors`` when read from the layer
    stores: ClassVar[frozenset[str]] = frozenset()

    def build(self, layer: nn.Module, shape: tuple[int, ...], base: bool) -> None:
        raise NotImplementedError

    def reset(self, layer: nn.Module, bound: float) -> None:
        raise NotImplementedError

    def tensors(self, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def packed_weight(self, layer: nn.Module) -> torch.Tensor:
        """``[weight.view(O, I*K) | base_weight]``: ``(O, I*K [+ I])``, the GEMM weight of
        :func:`~lightning_kan.layers.expand_features`' layout."""
        weight, base_weight = self.tensors(layer)
        weight = weight.reshape(weight.shape[0], -1)
        return weight if base_weight is None else torch.cat([weight, base_weight], dim=-1)

    def linear(self, layer: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """``(..., I*K [+ I]) -> (..., O)`` with the bias: one GEMM with the packed weight."""
        weight = self.packed_weight(layer)
        return F.linear(features.to(weight.dtype), weight, layer.bias)

    def linear_from_inputs(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """``(..., I) -> (..., O)`` without the feature expansion, or ``None`` where this
        family has no such path (the layer then expands and calls :meth:`linear`)."""
        return None

    def convolve(
        self, layer: nn.Module, features: torch.Tensor, options: dict[str, Any]
    ) -> torch.Tensor:
        """Contract ``(N, C*K [+ C], *S)`` (channel ``c*K + k``, then the base branch) with
        the coefficients and add the bias; ``options``: stride, padding, dilation."""
        conv, groups, dtype = CONV[layer.ndim], layer.groups, features.dtype
        num_values = layer.in_channels * layer.num_basis_functions
        weight, base_weight = self.tensors(layer)
        values_weight = weight.flatten(1, 2).to(dtype)  # (O, C_g*K, *kernel), channel c*K + k
        if base_weight is None:
            return conv(features, values_weight, layer.bias, groups=groups, **options)
        if groups == 1:  # one convolution over values and base branch together
            packed = torch.cat([values_weight, base_weight.to(dtype)], dim=1)
            return conv(features, packed, layer.bias, **options)
        # grouped: each group's channels must be contiguous, so two convolutions
        values = conv(features[:, :num_values], values_weight, layer.bias, groups=groups, **options)
        base = conv(features[:, num_values:], base_weight.to(dtype), None, groups=groups, **options)
        return values + base

    def extra_repr(self, layer: nn.Module) -> str:
        """Extra text for the layer's repr (e.g. ``ranks=(2, 2, 2)``)."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@register_coefficients("dense")
class Dense(Coefficients):
    """The full tensor as parameters: ``weight (O, I, K, *kernel)``, ``base_weight``."""

    refits_grid = True
    stores = frozenset({"weight", "base_weight"})

    def build(self, layer: nn.Module, shape: tuple[int, ...], base: bool) -> None:
        layer.weight = nn.Parameter(torch.empty(shape))
        self.build_base(layer, shape, base)

    @staticmethod
    def build_base(layer: nn.Module, shape: tuple[int, ...], base: bool) -> None:
        """Register a dense ``base_weight (O, I, *kernel)`` (``None`` without a base)."""
        out_features, group_inputs, _, *kernel = shape
        if base:
            layer.base_weight = nn.Parameter(torch.empty(out_features, group_inputs, *kernel))
        else:
            layer.register_parameter("base_weight", None)

    def reset(self, layer: nn.Module, bound: float) -> None:
        nn.init.uniform_(layer.weight, -bound, bound)
        reset_base_weight(layer)

    def tensors(self, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        return layer.weight, layer.base_weight

    def linear_from_inputs(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """Where the basis has a C kernel for ``x`` and the coefficients are float32 on
        the CPU: a uniform B-spline's local contraction, or the C expansion and the GEMMs
        as one autograd node (:func:`~lightning_kan.layers.native_linear.linear_from_inputs`;
        not with ``compiled=True``, which asks for the compiled expansion). Else ``None``."""
        return native_linear_from_inputs(layer, x)

    def linear(self, layer: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """Two GEMMs into one output where :func:`split_linear_applies` (no packed copy
        of the weights, contiguous gradients), else the packed GEMM."""
        weight, base_weight = layer.weight, layer.base_weight
        if base_weight is not None and split_linear_applies(features, weight):
            return split_linear(features, weight, base_weight, layer.bias)
        return super().linear(layer, features)
