"""A dense layer's C-kernel expansion and its two GEMMs as one autograd node.

    y = phi(x) (N, I*K) @ weight.view(O, I*K)^T + b(x) (N, I) @ base_weight^T + bias

Where the basis has a C kernel (``lightning_kan.native``) a dense ``KANLinear``'s forward
writes the ``(N, I*K + I)`` feature buffer in one C pass and does two GEMMs into one
output; its backward is the weight GEMMs and, for a layer inside a network, the
features' gradient GEMMs and one C pass of the input gradient. The same work used to be
the expansion's autograd node then :mod:`~lightning_kan.layers.split_linear`'s, each
with its own checks. Inside a training step every Python call runs on caches the GEMMs
have just cycled (3-10 us each, where it takes 0.5-2 us in a loop), so that glue cost
about 0.2 ms a step at ``512 x 64 -> 64``, ``K = 23`` (a 1.6-3 ms step). One node with
the checks inlined takes 60-70 us of it off (``benchmarks/README.md``).

:func:`linear_from_inputs` applies where the basis is parameter-free and has a C kernel
for float32 CPU inputs, the base branch is one the kernel evaluates (SiLU, identity,
tanh) or none, the coefficients are float32 on the CPU, autocast is off, no
``torch.func``/tracing/compiling transform is active and the layer is not
``compiled=True``. A uniform B-spline with enough functions per non-zero one takes the
local contraction (:mod:`~lightning_kan.layers.local_spline`) there instead. Everywhere
else the layer keeps the expansion and :meth:`Coefficients.linear`. Under
``create_graph`` (a double backward, as physics-informed losses need) the backward is
built from the basis' and activation's differentiable operations.
"""

from __future__ import annotations

import torch

from lightning_kan import native
from lightning_kan.layers.activations import native_base_code
from lightning_kan.layers.buffers import feature_buffer
from lightning_kan.layers.expansion import _native_kernel, autocast_enabled, needs_plain_autograd
from lightning_kan.layers.local_spline import (
    differentiable_backward,
    local_spline_applies,
    local_spline_linear,
)
from lightning_kan.layers.split_linear import split_gradients, split_product

__all__ = ["linear_from_inputs"]


def _float32_cpu(tensor: torch.Tensor | None) -> bool:
    return tensor is None or (tensor.dtype is torch.float32 and tensor.is_cpu)


def linear_from_inputs(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """A dense ``KANLinear``'s output ``(..., O)`` from its inputs ``x (..., I)`` by the
    basis' C kernel: the local contraction (:func:`local_spline_applies`) or the expansion
    and GEMMs as one node; ``None`` where neither applies (see the module notes)."""
    # one flat function: inside a training step every Python call runs on caches the
    # GEMMs have just cycled (3-10 us each), so the checks are inlined and cheapest first
    if layer.compiled or not native.usable(x) or autocast_enabled("cpu") or needs_plain_autograd():
        return None
    basis, activation = layer.basis, layer.activation
    base = native_base_code(activation)
    if base is None or not basis.is_parameter_free:
        return None
    kernel = _native_kernel(x, basis)
    if kernel is None:
        return None
    weight, base_weight, bias = layer.weight, layer.base_weight, layer.bias  # read once
    if not (_float32_cpu(weight) and _float32_cpu(base_weight) and _float32_cpu(bias)):
        return None
    if local_spline_applies(basis, kernel):
        return local_spline_linear(x, basis, activation, kernel, weight, base_weight, bias)
    rows = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    y = _NativeLinear.apply(rows, weight, base_weight, bias, basis, activation, kernel, base)
    return y if x.dim() == 2 else y.view(*x.shape[:-1], weight.shape[0])


class _NativeLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, weight, base_weight, bias, basis, activation, kernel, base):
        num_functions = weight.shape[2]
        num_values = rows.shape[1] * num_functions
        width = num_values + (0 if base_weight is None else rows.shape[1])
        features = feature_buffer(basis, (rows.shape[0], width), rows)
        native.expand(kernel, rows, features, num_functions, base)
        values, base_values = features.split_with_sizes([num_values, width - num_values], 1)
        flat_weight = weight.reshape(weight.shape[0], num_values)
        y = split_product(values, base_values, flat_weight, base_weight, bias)
        ctx.save_for_backward(rows, features, weight, base_weight)
        ctx.basis, ctx.activation, ctx.kernel, ctx.base = basis, activation, kernel, base
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        rows, features, weight, base_weight = ctx.saved_tensors
        if torch.is_grad_enabled():
            grads = differentiable_backward(ctx, rows, weight, base_weight, grad_y)
            return (*grads, None, None, None, None)
        num_values = rows.shape[1] * weight.shape[2]
        values, base_values = features.split_with_sizes(
            [num_values, features.shape[1] - num_values], 1
        )
        flat_weight = weight.reshape(weight.shape[0], num_values)
        grad_rows, grad_weight, grad_base, grad_bias = split_gradients(
            grad_y, values, base_values, flat_weight, base_weight, ctx.needs_input_grad,
            ctx.has_bias,
        )  # fmt: skip
        grad_x = None
        if grad_rows is not None:  # the features' gradient, then one C pass
            grad_x = native.input_grad(ctx.kernel, rows, grad_rows, weight.shape[2], ctx.base)
        if grad_weight is not None:
            grad_weight = grad_weight.view_as(weight)
        return grad_x, grad_weight, grad_base, grad_bias, None, None, None, None
