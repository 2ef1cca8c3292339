"""Feature expansion: the basis values and the base branch in one buffer.

``expand_features(x, basis, activation)`` returns ``(..., I*K + I)``: the basis values
of all inputs (``(..., I, K)`` flattened) followed by the base branch ``b(x) (..., I)``.
A layer does **one GEMM** of it with its packed ``[C.view(O, I*K) | base_weight]``
weight ``(O, I*K + I)``. Keeping the K values of an input
contiguous (rather than interleaving ``b(x_i)`` after each) lets the basis write whole
vectors, which is what makes the compiled kernel fast.

For parameter-free bases the expansion is a custom autograd function that keeps only
``x`` for the backward and recomputes the (cheap, local) derivatives there instead of
storing the basis' intermediates; the buffer itself is kept by the GEMM anyway. The
backward is built from differentiable operations, so a double backward works
(physics-informed losses differentiate the network's input gradient again).

The custom function has no vmap rule, no forward-mode derivative and writes into a
buffer in place, which ``torch.func`` transforms, forward-mode AD, ``torch.jit.trace``,
``torch.export``/``torch.compile`` and the ONNX exporters cannot follow. Under any of
them (:func:`needs_plain_autograd`) the expansion is the basis' differentiable
``forward`` instead: same values, plain autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch.autograd import forward_ad

from lightning_kan.bases.base import Basis
from lightning_kan.layers.activations import BaseActivation

__all__ = ["expand_features", "needs_plain_autograd"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def needs_plain_autograd() -> bool:
    """True while a ``torch.func`` transform, a forward-mode AD level, ``torch.jit.trace``
    (legacy ONNX export included) or dynamo/``torch.export`` is active: custom
    ``autograd.Function`` fast paths must then give way to plain differentiable ops."""
    return (
        torch._C._are_functorch_transforms_active()
        or forward_ad._current_level >= 0
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
    )


class _FusedExpansion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, basis, activation, compiled):
        num_values = x.shape[-1] * basis.num_functions
        with torch.autocast(x.device.type, enabled=False):
            if compiled:
                out = _compiled_expansion(type(basis))(x, basis, activation)
            else:
                base = 0 if activation is None else x.shape[-1]
                out = x.new_zeros(*x.shape[:-1], num_values + base)
                basis.expand_into(x, out[..., :num_values].unflatten(-1, (x.shape[-1], -1)))
                if activation is not None:
                    out[..., num_values:] = activation(x)
        ctx.save_for_backward(x)
        ctx.basis, ctx.activation = basis, activation
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (x,) = ctx.saved_tensors
        basis, activation = ctx.basis, ctx.activation
        num_values = x.shape[-1] * basis.num_functions
        grad_values = grad_out[..., :num_values].unflatten(-1, (x.shape[-1], -1))
        grad_x = basis.input_grad(x, grad_values)
        if activation is not None:
            grad_x = grad_x + activation.vjp(x, grad_out[..., num_values:])
        return grad_x, None, None, None


def _plain_expansion(
    x: torch.Tensor, basis: Basis, activation: BaseActivation | None
) -> torch.Tensor:
    values = basis(x).flatten(-2)
    if activation is None:
        return values
    return torch.cat([values, activation(x)], dim=-1)


@cache
def _compiled_expansion(basis_type: type) -> Callable[..., torch.Tensor]:
    """``_plain_expansion`` under ``torch.compile``, one per basis class, built on first use.

    Dynamo guards on the basis' class, so a single shared function would recompile at
    every switch between families and hit its recompile limit in mixed models.
    """
    del basis_type  # the cache key only
    return torch.compile(_plain_expansion)


def expand_features(
    x: torch.Tensor,
    basis: Basis,
    activation: BaseActivation | None,
    compiled: bool = False,
) -> torch.Tensor:
    """Return ``(..., I*K [+ I])``: ``phi(x)`` flattened, then ``b(x)`` if there is a base.

    Inputs in float16/bfloat16 are evaluated in float32 (polynomial recurrences and knot
    arithmetic lose too much in half precision); the GEMM that follows may still run
    in low precision under autocast.

    ``compiled=True`` evaluates the forward with ``torch.compile``: the basis' dense
    formula and the base branch fuse into one kernel that writes every feature once
    (the backward is unchanged). It needs a working inductor backend (a C++ compiler
    on CPU, Triton on GPU) and compiles on the first call of each input shape.
    """
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    if basis.is_parameter_free and not needs_plain_autograd():
        if activation is None or activation.is_parameter_free:
            return _FusedExpansion.apply(x, basis, activation, compiled)
        # a trained activation (nn.PReLU) runs outside the custom function to get gradients
        values = _FusedExpansion.apply(x, basis, None, compiled)
        with torch.autocast(x.device.type, enabled=False):
            return torch.cat([values, activation(x)], dim=-1)
    with torch.autocast(x.device.type, enabled=False):
        return _plain_expansion(x, basis, activation)
