"""Base activations ``b`` of the KAN base branch, with their derivatives.

Known names come with a closed-form derivative, so the fused expansion recomputes
the branch's gradient cheaply in the backward instead of storing intermediates. Any
other callable (an ``nn.Module`` or function) works too: its derivative is then taken
with autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["BaseActivation", "resolve_activation"]


class BaseActivation:
    """An elementwise function with its derivative: ``fn(x)`` and ``derivative(x)``."""

    def __init__(
        self,
        name: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        derivative: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self._derivative = derivative

    def vjp(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``grad * fn'(x)``; differentiable when grad mode is on (double backward)."""
        if self._derivative is not None:
            return grad * self._derivative(x)
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (create_graph and x.requires_grad) else x.detach().requires_grad_()
            (grad_x,) = torch.autograd.grad(self.fn(x_in), x_in, grad, create_graph=create_graph)
        return grad_x

    def __repr__(self) -> str:
        return self.name


def _silu_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def _gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf + x * torch.exp(-0.5 * x.square()) / math.sqrt(2.0 * math.pi)


_KNOWN: dict[str, BaseActivation] = {
    "silu": BaseActivation("silu", F.silu, _silu_derivative),
    "gelu": BaseActivation("gelu", F.gelu, _gelu_derivative),
    "tanh": BaseActivation("tanh", torch.tanh, lambda x: 1.0 - torch.tanh(x).square()),
    "identity": BaseActivation("identity", lambda x: x, torch.ones_like),
}


def resolve_activation(
    activation: str | Callable[[torch.Tensor], torch.Tensor] | None,
) -> BaseActivation | None:
    """Turn a name (``silu``, ``gelu``, ``tanh``, ``identity``, ``none``), a callable or
    ``None`` into a :class:`BaseActivation`; ``None``/``"none"`` means no base branch."""
    if activation is None:
        return None
    if isinstance(activation, str):
        key = activation.lower()
        if key == "none":
            return None
        if key not in _KNOWN:
            raise ValueError(
                f"unknown base_activation {activation!r}; expected one of "
                f"{[*sorted(_KNOWN), 'none']} or a callable such as torch.nn.SiLU()"
            )
        return _KNOWN[key]
    if callable(activation):
        return BaseActivation(type(activation).__name__, activation)
    raise TypeError(
        f"base_activation must be a name, a callable or None, got {type(activation).__name__}"
    )
