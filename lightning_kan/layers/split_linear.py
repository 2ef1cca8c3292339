"""A dense KAN layer's contraction without packing its weight: two GEMMs into one output.

    y = phi (N, I*K) @ weight.view(O, I*K)^T + b(x) (N, I) @ base_weight^T + bias

The plain way, ``F.linear(features, cat([weight.view(O, I*K), base_weight]))``, copies both
weights into a packed tensor every forward, and its backward slices the packed weight's
gradient into two strided pieces that autograd copies again (a parameter's gradient must
be contiguous like the parameter). Those copies run after the GEMMs have cycled the
caches: at 512 x 64 -> 64, K = 23, one thread, they were about 3% of a training step
(``benchmarks/README.md``). Here the forward accumulates two GEMMs into one output and
the backward writes each weight's gradient straight into its own tensor, and the
features' gradient (a layer inside a network) into the two column blocks of one buffer.

:func:`split_linear_applies` says when it is used: CPU tensors of one dtype (float32, or
float64 as in ``gradcheck``), no autocast, no ``torch.func``/tracing/compiling
transform; a dense ``KANLinear`` whose basis has a C kernel for its float32 inputs does the
same two GEMMs inside :mod:`~lightning_kan.layers.native_linear`'s node instead.
Everywhere else layers keep the packed ``F.linear``. Under ``create_graph``
(a double backward, as physics-informed losses need) the backward is built from
differentiable operations.
"""

from __future__ import annotations

import math

import torch

from lightning_kan.layers.expansion import autocast_enabled, needs_plain_autograd

__all__ = ["split_linear", "split_linear_applies"]

_DTYPES = (torch.float32, torch.float64)


def split_linear_applies(features: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`split_linear` may contract ``features`` with ``weight``."""
    return (
        features.device.type == "cpu"
        and weight.device.type == "cpu"
        and features.dtype == weight.dtype
        and features.dtype in _DTYPES
        and not autocast_enabled("cpu")
        and not needs_plain_autograd()
    )


def _blocks(features: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The value and base column blocks of ``features`` as rows (views of ``(N, I*K + I)``)
    and ``weight`` as ``(O, I*K)``."""
    # shape arithmetic and one split_with_sizes: this runs twice per step of every dense
    # layer, and indexing/slicing tensors costs microseconds each in Python
    num_values = math.prod(weight.shape[1:])
    rows = features if features.dim() == 2 else features.reshape(-1, features.shape[-1])
    values, base = rows.split_with_sizes([num_values, rows.shape[1] - num_values], 1)
    return values, base, weight.flatten(1)


class _SplitLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, base_weight, bias):
        values, base, flat_weight = _blocks(features, weight)
        if bias is None:
            y = values.mm(flat_weight.t())
        else:
            y = torch.addmm(bias, values, flat_weight.t())
        y.addmm_(base, base_weight.t())
        ctx.save_for_backward(features, weight, base_weight)
        ctx.has_bias = bias is not None
        return y.view(*features.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_y):
        features, weight, base_weight = ctx.saved_tensors
        values, base, flat_weight = _blocks(features, weight)
        num_values = values.shape[1]
        grad = grad_y.reshape(-1, weight.shape[0])
        need_features, need_weight, need_base, need_bias = ctx.needs_input_grad
        grad_features = grad_weight = grad_base = grad_bias = None
        if need_weight:
            grad_weight = grad.t().mm(values).view_as(weight)
        if need_base:
            grad_base = grad.t().mm(base)
        if need_bias and ctx.has_bias:
            grad_bias = grad.sum(0)
        if need_features:
            if torch.is_grad_enabled():  # a double backward: differentiable operations
                grad_rows = torch.cat([grad.mm(flat_weight), grad.mm(base_weight)], dim=-1)
            else:  # each GEMM writes its column block (beta = 0: nothing is read first)
                grad_rows = features.new_empty(values.shape[0], features.shape[-1])
                grad_rows[:, :num_values].addmm_(grad, flat_weight, beta=0)
                grad_rows[:, num_values:].addmm_(grad, base_weight, beta=0)
            grad_features = grad_rows.view_as(features)
        return grad_features, grad_weight, grad_base, grad_bias


def split_linear(
    features: torch.Tensor,
    weight: torch.Tensor,
    base_weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``(..., I*K + I) -> (..., O)``: ``features``' values times ``weight (O, I, K)``, its
    base branch times ``base_weight (O, I)``, plus ``bias (O,)``; see the module notes."""
    return _SplitLinear.apply(features, weight, base_weight, bias)
