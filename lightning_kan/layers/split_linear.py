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

__all__ = ["split_gradients", "split_linear", "split_linear_applies", "split_product"]

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


def split_product(
    values: torch.Tensor,
    base: torch.Tensor,
    flat_weight: torch.Tensor,
    base_weight: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``(N, O)``: ``values (N, I*K) @ flat_weight^T + base (N, I) @ base_weight^T + bias``
    as two GEMMs into one output (no base term when ``base_weight`` is None)."""
    transposed = flat_weight.t()
    y = values.mm(transposed) if bias is None else torch.addmm(bias, values, transposed)
    if base_weight is not None:
        y.addmm_(base, base_weight.t())
    return y


def split_gradients(
    grad: torch.Tensor,
    values: torch.Tensor,
    base: torch.Tensor,
    flat_weight: torch.Tensor,
    base_weight: torch.Tensor | None,
    needs: tuple[bool, ...],
    has_bias: bool,
    differentiable: bool = False,
) -> tuple[torch.Tensor | None, ...]:
    """:func:`split_product`'s gradients from ``grad (N, O)``, each where ``needs`` (rows,
    weight, base weight, bias) asks: ``(grad_rows (N, I*K [+ I]), grad_flat_weight
    (O, I*K), grad_base_weight (O, I), grad_bias (O,))``. The rows' gradient is one buffer
    whose column blocks the two GEMMs write (beta = 0: nothing is read first), or, when
    ``differentiable`` (a double backward), a concatenation autograd can follow."""
    need_rows, need_weight, need_base, need_bias = needs[:4]
    grad_rows = grad_weight = grad_base = grad_bias = None
    if need_weight:
        grad_weight = grad.t().mm(values)
    if need_base and base_weight is not None:
        grad_base = grad.t().mm(base)
    if need_bias and has_bias:
        grad_bias = grad.sum(0)
    if need_rows:
        num_values = values.shape[1]
        if differentiable:
            blocks = [grad.mm(flat_weight)]
            if base_weight is not None:
                blocks.append(grad.mm(base_weight))
            grad_rows = torch.cat(blocks, dim=-1)
        else:
            width = num_values + (0 if base_weight is None else base_weight.shape[1])
            grad_rows = grad.new_empty(grad.shape[0], width)
            grad_rows[:, :num_values].addmm_(grad, flat_weight, beta=0)
            if base_weight is not None:
                grad_rows[:, num_values:].addmm_(grad, base_weight, beta=0)
    return grad_rows, grad_weight, grad_base, grad_bias


class _SplitLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, base_weight, bias):
        values, base, flat_weight = _blocks(features, weight)
        y = split_product(values, base, flat_weight, base_weight, bias)
        ctx.save_for_backward(features, weight, base_weight)
        ctx.has_bias = bias is not None
        return y.view(*features.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_y):
        features, weight, base_weight = ctx.saved_tensors
        values, base, flat_weight = _blocks(features, weight)
        grad = grad_y.reshape(-1, weight.shape[0])
        grad_rows, grad_weight, grad_base, grad_bias = split_gradients(
            grad, values, base, flat_weight, base_weight, ctx.needs_input_grad, ctx.has_bias,
            differentiable=torch.is_grad_enabled(),
        )  # fmt: skip
        grad_features = None if grad_rows is None else grad_rows.view_as(features)
        if grad_weight is not None:
            grad_weight = grad_weight.view_as(weight)
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
