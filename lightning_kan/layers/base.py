"""``KANLayer``: what every KAN layer (linear or convolution) shares.

A layer with ``O`` outputs, ``I`` inputs per group and kernel ``*kernel`` (empty for
``KANLinear``) holds

* ``basis``: the :class:`~lightning_kan.bases.Basis` (``K = basis.num_functions``);
* ``activation``: the base branch ``b`` as a module (:class:`BaseActivation`) or ``None``;
* ``coefficients``: the :class:`~lightning_kan.layers.coefficients.Coefficients`
  strategy that registers and produces the coefficients (``Dense``, ``Tucker``,
  ``Generated`` or your own);
* ``weight``: the coefficient tensor ``(O, I, K, *kernel)``, modes (out, in, basis,
  *kernel): a parameter for ``Dense``, otherwise computed by the strategy on access;
* ``base_weight``: ``(O, I, *kernel)``, or ``None`` without a base branch;
* ``bias``: ``(O,)`` or ``None``.

Plots, regularisation and ``edge_activations`` read ``weight``/``base_weight``; LoTRA
adapts the strategy's 3+-D parameters by name (``weight``, ``core``, ``prompts``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_kan.bases import Basis, build_basis
from lightning_kan.bases.base import _check_positive_int, basis_options, is_finite_number
from lightning_kan.layers.activations import resolve_activation
from lightning_kan.layers.coefficients import Coefficients, build_coefficients
from lightning_kan.layers.grid import SplineGridMixin

__all__ = ["KANLayer", "check_input_tensor"]


def check_input_tensor(x: object, owner: str) -> None:
    """Refuse inputs a KAN cannot expand: anything but a real floating-point tensor.

    ``owner`` names the module in the message. Basis functions are real functions of
    real numbers, so integer and bool tensors must be converted first and complex ones
    split into real features.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{owner} expects its input x to be a torch.Tensor of floats, got a "
            f"{type(x).__name__}; convert it first, e.g. x = torch.as_tensor(x, "
            "dtype=torch.float32)"
        )
    if x.is_complex():
        raise TypeError(
            f"{owner} expects a real floating-point input x, got dtype {x.dtype}; it is a "
            "real-valued model: pass the real and imaginary parts as separate features "
            "(torch.view_as_real(x).flatten(-2)) and double its input width"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{owner} expects a floating-point input x, got dtype {x.dtype}; it computes "
            "with real numbers: convert the input with x.float() (or x.double())"
        )


def _check_init_scale(value: object) -> float:
    """``spline_init_scale`` as a finite float >= 0."""
    if not is_finite_number(value) or value < 0:  # type: ignore[operator]
        raise ValueError(
            f"spline_init_scale must be a finite number >= 0 (the standard deviation scale "
            f"of the initial coefficients; None picks 0.1 with a base branch, 1.0 without), "
            f"got {value!r}"
        )
    return float(value)


class KANLayer(SplineGridMixin, nn.Module):
    """Base class: builds the basis, the base branch and the coefficients (through the
    layer's :class:`~lightning_kan.layers.coefficients.Coefficients` strategy)."""

    coefficients: Coefficients

    def _build_parameters(
        self,
        in_features: int,
        out_features: int,
        group_inputs: int,
        kernel_size: tuple[int, ...],
        basis: str | Basis,
        basis_kwargs: dict[str, Any] | None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None,
        bias: bool,
        spline_init_scale: float | None,
        compiled: bool,
        coefficients: str | Coefficients | None,
        coefficients_kwargs: dict[str, Any] | None,
    ) -> None:
        _check_positive_int("in_features", in_features)
        _check_positive_int("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.compiled = compiled
        self.basis = build_basis(basis, in_features, **basis_options(basis_kwargs))
        self.activation = resolve_activation(base_activation)
        self.coefficient_shape = (
            out_features,
            group_inputs,
            self.basis.num_functions,
            *kernel_size,
        )
        self.coefficients = build_coefficients(coefficients, coefficients_kwargs)
        self.coefficients.build(self, self.coefficient_shape, self.activation is not None)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        if spline_init_scale is None:
            spline_init_scale = 0.1 if self.activation is not None else 1.0
        self.spline_init_scale = _check_init_scale(spline_init_scale)
        self.reset_parameters()

    def _check_input_tensor(self, x: object) -> None:
        """:func:`check_input_tensor` naming this layer; first thing every forward does."""
        check_input_tensor(x, type(self).__name__)

    @property
    def num_basis_functions(self) -> int:
        """K, the number of basis functions per input."""
        return self.basis.num_functions

    def __getattr__(self, name: str) -> Any:
        """``weight``/``base_weight`` of a strategy that does not store them, computed."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            strategy = self.__dict__.get("coefficients")
            if strategy is None or name not in ("weight", "base_weight") or name in strategy.stores:
                raise
        weight, base_weight = strategy.tensors(self)
        return weight if name == "weight" else base_weight

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight (O, I, K, *kernel), base_weight (O, I, *kernel) or None)`` for one
        forward; read once per call so a parametrisation or generator runs once."""
        return self.coefficients.tensors(self)

    def reset_parameters(self) -> None:
        """Initialise like an ``nn.Linear``/``nn.Conv`` base branch plus small spline noise.

        The base weight gets PyTorch's kaiming-uniform init (bound ``1/sqrt(fan_in)``) and
        the coefficients uniform noise of standard deviation
        ``spline_init_scale / sqrt(fan_in * K)``. With a base branch the layer therefore
        starts as a well-scaled MLP/conv layer whose edge functions then bend away from
        ``b`` (efficient-kan's recipe, which trains out of the box); without one the
        splines carry an O(1) signal from the start.
        """
        fan_in = math.prod(self.coefficient_shape[1:])
        bound = self.spline_init_scale * math.sqrt(3.0 / fan_in)
        self.coefficients.reset(self, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        extra = self.coefficients.extra_repr(self)
        return f"{self._layout_repr()}, coefficients={self.coefficients!r}" + (
            f", {extra}" if extra else ""
        )
