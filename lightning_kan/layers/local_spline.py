"""A dense B-spline layer's contraction from each input's ``k + 1`` local values.

    y = bias + sum_i sum_{s <= k} phi_{j+s}(x_i) weight[:, i, j+s]    (j: x_i's interval)

A B-spline input has only ``k + 1`` non-zero functions of its ``K = G + k``, so the dense
path's ``(N, I*K)`` feature buffer is mostly zeros and its GEMM mostly multiplies them:
at ``G = 20``, ``k = 3`` only 4 of 23 columns carry values. The C kernel
(``native.spline_linear``) instead adds, for every input of a row, the ``k + 1``
coefficient rows its interval selects, and its backward accumulates the weight gradient
into those rows and the input gradient from them, recomputing the local values from ``x``
each time. No feature buffer is built, so a step's memory is that of an MLP layer's.

:func:`local_spline_kernel` says when it is used: a uniform B-spline grid with a C kernel
(float32 on the CPU, kernels built and on), float32 CPU coefficients, at least
:data:`MIN_FUNCTIONS_PER_LOCAL` functions per non-zero one, no autocast and no
``torch.func``/tracing/compiling transform. Elsewhere the layer keeps the dense
expansion and GEMM. Under ``create_graph`` (a double backward, as physics-informed losses
need) the backward is built from the basis' differentiable operations instead.
"""

from __future__ import annotations

import torch

from lightning_kan import native
from lightning_kan.bases.base import Basis
from lightning_kan.bases.bspline import BSplineBasis
from lightning_kan.layers.activations import BaseActivation, native_base_code
from lightning_kan.layers.expansion import _native_kernel, autocast_enabled, needs_plain_autograd

__all__ = ["MIN_FUNCTIONS_PER_LOCAL", "local_spline_kernel", "local_spline_linear"]

#: the local contraction is used when ``K >= MIN_FUNCTIONS_PER_LOCAL * (k + 1)``, i.e. when
#: at most a third of the dense features are non-zero. At ``K = 23, k = 3`` (a quarter) its
#: training step is ~2x faster than the dense GEMMs alone; at ``K = 8`` (a half) it was
#: slower at ``4096 x 256 -> 256``, where the dense GEMM runs at MKL's full rate
#: (``benchmarks/README.md``).
MIN_FUNCTIONS_PER_LOCAL = 3


def local_spline_kernel(
    basis: Basis, activation: BaseActivation | None, x: torch.Tensor
) -> native.NativeKernel | None:
    """The basis' uniform B-spline C kernel when :func:`local_spline_linear` may evaluate
    a layer with this basis and base ``activation`` on ``x``, else None (the dense path)."""
    # the cheap type and size checks first: every dense layer's forward asks
    if (
        isinstance(basis, BSplineBasis)
        and basis.num_functions >= MIN_FUNCTIONS_PER_LOCAL * (basis.spline_order + 1)
        and basis.is_parameter_free
        and native.usable(x)
        and native_base_code(activation) is not None
        and not autocast_enabled("cpu")
        and not needs_plain_autograd()
    ):
        kernel = _native_kernel(x, basis)
        if kernel is not None and kernel.kind == "bspline":
            return kernel
    return None


def _dense_backward(ctx, rows, weight, base_weight, grad):
    """The gradients from the basis' and activation's differentiable operations (a double
    backward: the result must be differentiable again)."""
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
            grads = _dense_backward(ctx, rows, weight, base_weight, grad_y)
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
    (:func:`local_spline_kernel`)."""
    rows = x.reshape(-1, x.shape[-1])
    y = _LocalSplineLinear.apply(rows, weight, base_weight, bias, basis, activation, kernel)
    return y.view(*x.shape[:-1], weight.shape[0])
