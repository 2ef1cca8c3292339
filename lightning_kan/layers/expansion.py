"""Feature expansion: the basis values and the base branch in one buffer.

``expand_features(x, basis, activation)`` returns ``(..., I, K + 1)``: the K basis
values of every input followed by ``b(x)``. A layer flattens it to ``(..., I*(K+1))``
and does **one GEMM** with its packed ``(O, I*(K+1))`` weight (DESIGN.md section 1).

For parameter-free bases the expansion is a custom autograd function that keeps only
``x`` for the backward and recomputes the (cheap, local) derivatives there instead of
storing the basis' intermediates; the buffer itself is kept by the GEMM anyway. The
backward is built from differentiable operations, so a double backward works
(physics-informed losses differentiate the network's input gradient again).
"""

from __future__ import annotations

import torch

from lightning_kan.bases.base import Basis
from lightning_kan.layers.activations import BaseActivation

__all__ = ["expand_features"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _FusedExpansion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, basis, activation):  # noqa: ANN001, ANN205
        num_basis = basis.num_functions
        with torch.autocast(x.device.type, enabled=False):
            out = x.new_zeros(*x.shape, num_basis + (activation is not None))
            basis.expand_into(x, out[..., :num_basis])
            if activation is not None:
                out[..., num_basis] = activation.fn(x)
        ctx.save_for_backward(x)
        ctx.basis, ctx.activation = basis, activation
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (x,) = ctx.saved_tensors
        basis, activation = ctx.basis, ctx.activation
        num_basis = basis.num_functions
        grad_x = basis.input_grad(x, grad_out[..., :num_basis])
        if activation is not None:
            grad_x = grad_x + activation.vjp(x, grad_out[..., num_basis])
        return grad_x, None, None


def expand_features(
    x: torch.Tensor, basis: Basis, activation: BaseActivation | None
) -> torch.Tensor:
    """Return ``(..., I, K [+ 1])``: ``phi(x)`` then ``b(x)`` when there is a base branch.

    Inputs in float16/bfloat16 are evaluated in float32 (polynomial recurrences and knot
    arithmetic lose too much in half precision); the GEMM that follows may still run
    in low precision under autocast.
    """
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    if basis.is_parameter_free:
        return _FusedExpansion.apply(x, basis, activation)
    with torch.autocast(x.device.type, enabled=False):
        values = basis(x)
        if activation is None:
            return values
        return torch.cat([values, activation.fn(x).unsqueeze(-1)], dim=-1)
