"""A dense B-spline layer's contraction from each input's ``k + 1`` local values.

    y = bias + sum_i sum_{s <= k} phi_{j+s}(x_i) weight[:, i, j+s]    (j: x_i's interval)

A B-spline input has only ``k + 1`` non-zero functions of its ``K = G + k``, so the dense
path's ``(N, I*K)`` feature buffer is mostly zeros and its GEMM mostly multiplies them:
at ``G = 20``, ``k = 3`` only 4 of 23 columns carry values. The C kernel
(``native.spline_linear``) instead adds, for every input of a row, the ``k + 1``
coefficient rows its interval selects, and its backward accumulates the weight gradient
into those rows and the input gradient from them, recomputing the local values from ``x``
each time. No feature buffer is built, so a step's memory is that of an MLP layer's.

:func:`local_spline_applies` says when it is used: where a dense layer's C path applies
(:func:`~lightning_kan.layers.native_linear.linear_from_inputs`: float32 CPU inputs and
coefficients, kernels built and on, no autocast and no ``torch.func``/tracing/compiling
transform), on a uniform B-spline grid with at least :data:`MIN_FUNCTIONS_PER_LOCAL`
functions per non-zero one. Other B-spline layers there take the C expansion and GEMMs
as one node (:mod:`~lightning_kan.layers.native_linear`). Under ``create_graph`` (a
double backward, as physics-informed losses need) the backward is built from the basis'
differentiable operations instead.
"""

from __future__ import annotations

import torch

from lightning_kan import native
from lightning_kan.bases.base import Basis
from lightning_kan.bases.bspline import BSplineBasis
from lightning_kan.layers.activations import BaseActivation, native_base_code

__all__ = [
    "MIN_FUNCTIONS_PER_LOCAL",
    "differentiable_backward",
    "local_spline_applies",
    "local_spline_linear",
]

#: the local contraction is used when ``K >= MIN_FUNCTIONS_PER_LOCAL * (k + 1)``, i.e. when
#: at most a third of the dense features are non-zero. At ``K = 23, k = 3`` (a quarter) its
#: training step is ~2x faster than the dense GEMMs alone; at ``K = 8`` (a half) it was
#: slower at ``4096 x 256 -> 256``, where the dense GEMM runs at MKL's full rate
#: (``benchmarks/README.md``).
MIN_FUNCTIONS_PER_LOCAL = 3


def local_spline_applies(basis: Basis, kernel: native.NativeKernel) -> bool:
    """Whether :func:`local_spline_linear` evaluates a layer whose basis and C ``kernel``
    (its ``native_kernel()``) these are: a
    uniform B-spline grid with at least :data:`MIN_FUNCTIONS_PER_LOCAL` functions per
    non-zero one."""
    return (
        kernel.kind == "bspline"
        and isinstance(basis, BSplineBasis)
        and basis.num_functions >= MIN_FUNCTIONS_PER_LOCAL * (basis.spline_order + 1)
    )


def differentiable_backward(ctx, rows, weight, base_weight, grad):
    """A dense layer's gradients ``(x, weight, base_weight, bias)`` from ``grad (N, O)``
    by the basis' and activation's differentiable operations (a double backward: the
    result must be differentiable again); ``ctx`` holds ``basis``, ``activation``,
    ``has_bias`` and ``needs_input_grad``."""
    basis, activation = ctx.basis, ctx.activation
    need_x, need_weight, need_base, need_bias = ctx.needs_input_grad[:4]
    grad_x = grad_weight = grad_base = grad_bias = None
    if need_x:
        grad_values = grad.mm(weight.reshape(len(weight), -1)).unflatten(-1, weight.shape[1:])
        grad_x = basis.input_grad(rows, grad_values)
        if base_weight is not None:
            grad_x = grad_x + activation.vjp(rows, grad.mm(base_weight))
    if need_weight:
        grad_weight = grad.t().mm(basis(rows).flatten(-2)).view_as(weight)
    if need_base and base_weight is not None:
        grad_base = grad.t().mm(activation(rows))
    if need_bias and ctx.has_bias:
        grad_bias = grad.sum(0)
    return grad_x, grad_weight, grad_base, grad_bias


class _LocalSplineLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, weight, base_weight, bias, basis, activation, kernel):
        rows, weight = rows.contiguous(), weight.contiguous()
        if base_weight is not None:
            base_weight = base_weight.contiguous()
        base = native_base_code(activation)
        y = native.spline_linear(kernel, rows, weight, base_weight, bias, base)
        ctx.save_for_backward(rows, weight, base_weight)
        ctx.basis, ctx.activation, ctx.kernel, ctx.base = basis, activation, kernel, base
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        rows, weight, base_weight = ctx.saved_tensors
        if torch.is_grad_enabled():
            grads = differentiable_backward(ctx, rows, weight, base_weight, grad_y)
        else:
            need_x, need_weight, need_base, need_bias = ctx.needs_input_grad[:4]
            grad_weight, grad_base, grad_x = native.spline_linear_backward(
                ctx.kernel, rows, weight, base_weight, ctx.base, grad_y.contiguous(),
                need_weight or need_base, need_x,
            )  # fmt: skip
            grad_bias = grad_y.sum(0) if need_bias and ctx.has_bias else None
            grads = (grad_x, grad_weight if need_weight else None, grad_base, grad_bias)
        return (*grads, None, None, None)


def local_spline_linear(
    x: torch.Tensor,
    basis: Basis,
    activation: BaseActivation | None,
    kernel: native.NativeKernel,
    weight: torch.Tensor,
    base_weight: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``(..., I) -> (..., O)``: a dense layer with ``weight (O, I, K)``, ``base_weight
    (O, I)`` (``None``: no base branch) and ``bias (O,)``, from ``kernel``
    (:func:`local_spline_applies`)."""
    rows = x.reshape(-1, x.shape[-1])
    y = _LocalSplineLinear.apply(rows, weight, base_weight, bias, basis, activation, kernel)
    return y if x.dim() == 2 else y.view(*x.shape[:-1], weight.shape[0])
