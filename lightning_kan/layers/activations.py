"""Base activations ``b`` of the KAN base branch, as modules, with their derivatives.

Known names come with a closed-form derivative, so the fused expansion recomputes
the branch's gradient cheaply in the backward instead of storing intermediates. Any
other callable works too: an ``nn.Module`` (e.g. ``nn.PReLU()``) is registered as a
submodule, so its parameters are trained, saved and moved with the layer; its
derivative (and a plain function's) is taken with autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BaseActivation", "resolve_activation"]


class BaseActivation(nn.Module):
    """An elementwise function with its derivative: ``self(x)`` and ``vjp(x, grad)``.

    ``fn`` is held as a submodule when it is an ``nn.Module`` (its parameters then
    belong to the layer); ``derivative`` is an optional closed form of ``fn'``.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        derivative: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        self._derivative = derivative

    @property
    def is_parameter_free(self) -> bool:
        """No trainable state: the fused expansion may evaluate it without autograd."""
        return next(self.parameters(), None) is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def vjp(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``grad * fn'(x)``; differentiable when grad mode is on (double backward)."""
        if self._derivative is not None:
            return grad * self._derivative(x)
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (create_graph and x.requires_grad) else x.detach().requires_grad_()
            (grad_x,) = torch.autograd.grad(self.fn(x_in), x_in, grad, create_graph=create_graph)
        return grad_x

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept state dicts from before activations were modules (no ``activation.*``
        keys): the activation keeps its construction-time values, which is what such a
        model ran with, since its parameters were neither trained nor saved then."""
        if not any(key.startswith(prefix) for key in state_dict):
            state_dict.update(self.state_dict(prefix=prefix))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        return self.name


def _silu_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def _gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf + x * torch.exp(-0.5 * x.square()) / math.sqrt(2.0 * math.pi)


# shared, parameter-free instances: a compiled expansion guards on the object, so every
# layer of a net reuses one per name instead of recompiling per layer
_KNOWN: dict[str, BaseActivation] = {
    "silu": BaseActivation("silu", F.silu, _silu_derivative),
    "gelu": BaseActivation("gelu", F.gelu, _gelu_derivative),
    "tanh": BaseActivation("tanh", torch.tanh, lambda x: 1.0 - torch.tanh(x).square()),
    "identity": BaseActivation("identity", lambda x: x, torch.ones_like),
}


def resolve_activation(
    activation: str | Callable[[torch.Tensor], torch.Tensor] | None,
) -> BaseActivation | None:
    """Turn a name (``silu``, ``gelu``, ``tanh``, ``identity``, ``none``), a callable
    (an ``nn.Module`` is held as a submodule) or ``None`` into a :class:`BaseActivation`;
    ``None``/``"none"`` means no base branch."""
    if activation is None:
        return None
    if isinstance(activation, BaseActivation):
        return activation
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
