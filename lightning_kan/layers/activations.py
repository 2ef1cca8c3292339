"""Base activations ``b`` of the KAN base branch, as modules, with their derivatives.

Known names come with closed-form first and second derivatives, so the fused expansion
recomputes the branch's gradient cheaply in the backward instead of storing
intermediates, and forward-mode derivative propagation (``lightning_kan.layers.jet``)
needs no autograd. Any other callable works too: an ``nn.Module`` (e.g. ``nn.PReLU()``)
is registered as a submodule, so its parameters are trained, saved and moved with the
layer; its derivative (and a plain function's) is taken with autograd.

:func:`elementwise_derivatives` gives ``(f, f', f'')`` of the elementwise modules an
``MLP`` uses (``nn.SiLU``, ``nn.Tanh``, ``nn.GELU``, ``nn.ReLU``, ...), closed forms
where known.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.native import BASE_CODES

__all__ = [
    "ELEMENTWISE_MODULES",
    "BaseActivation",
    "elementwise_derivatives",
    "is_elementwise",
    "native_base_code",
    "resolve_activation",
]

Derivative = Callable[[torch.Tensor], torch.Tensor]
#: ``x -> (f(x), f'(x), f''(x))``, each the shape of ``x``
Derivatives = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class BaseActivation(nn.Module):
    """An elementwise function with its derivative: ``self(x)`` and ``vjp(x, grad)``.

    ``fn`` is held as a submodule when it is an ``nn.Module`` (its parameters then
    belong to the layer); ``derivative`` is an optional closed form of ``fn'``.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        derivative: Derivative | None = None,
        derivatives: Derivatives | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        self._derivative = derivative
        self._derivatives = derivatives

    @property
    def elementwise(self) -> bool:
        """Whether ``fn(x)[j]`` depends on ``x[j]`` only: the known names, and the torch
        activation modules in :data:`ELEMENTWISE_MODULES` (derivative propagation needs it)."""
        return self._closed_forms() is not None or is_elementwise(self.fn)

    def _closed_forms(self) -> Derivatives | None:
        # a BaseActivation pickled before closed-form second derivatives has none
        return self.__dict__.get("_derivatives")

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(b(x), b'(x), b''(x))``, each the shape of ``x``: closed forms for the known
        names, else :func:`elementwise_derivatives` (autograd for other callables).
        Differentiable in ``x`` and in the activation's parameters."""
        closed = self._closed_forms()
        return closed(x) if closed is not None else elementwise_derivatives(self.fn, x)

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


def _silu_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x s``, ``s (1 + x (1 - s))``, ``s (1 - s) (2 + x (1 - 2 s))`` with ``s = sigmoid(x)``."""
    s = torch.sigmoid(x)
    one_minus = 1.0 - s
    return x * s, s * (1.0 + x * one_minus), s * one_minus * (2.0 + x * (1.0 - 2.0 * s))


def _gelu_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x Phi(x)``, ``Phi(x) + x phi(x)``, ``(2 - x^2) phi(x)`` (``phi``: the normal density)."""
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    density = torch.exp(-0.5 * x.square()) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * density, (2.0 - x.square()) * density


def _tanh_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``t``, ``1 - t^2``, ``-2 t (1 - t^2)`` with ``t = tanh(x)``."""
    t = torch.tanh(x)
    slope = 1.0 - t.square()
    return t, slope, -2.0 * t * slope


def _identity_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return x, torch.ones_like(x), torch.zeros_like(x)


def _relu_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``max(x, 0)``, the step (0 at 0, as autograd), and 0."""
    return torch.relu(x), (x > 0).to(x.dtype), torch.zeros_like(x)


def _sigmoid_jet(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(x)
    slope = s * (1.0 - s)
    return s, slope, slope * (1.0 - 2.0 * s)


#: torch activation modules that act on each entry on its own; the value maps a module
#: to its closed-form ``(f, f', f'')`` (``None``: derivatives by autograd)
ELEMENTWISE_MODULES: dict[type[nn.Module], Callable[[nn.Module], Derivatives | None]] = {
    nn.SiLU: lambda m: _silu_jet,
    nn.Tanh: lambda m: _tanh_jet,
    nn.GELU: lambda m: _gelu_jet if m.approximate == "none" else None,
    nn.ReLU: lambda m: _relu_jet,
    nn.Sigmoid: lambda m: _sigmoid_jet,
    nn.Identity: lambda m: _identity_jet,
    nn.PReLU: lambda m: None,
    nn.LeakyReLU: lambda m: None,
    nn.ELU: lambda m: None,
    nn.Softplus: lambda m: None,
    nn.Mish: lambda m: None,
}


def is_elementwise(fn: object) -> bool:
    """True for a torch activation module of :data:`ELEMENTWISE_MODULES`."""
    return type(fn) in ELEMENTWISE_MODULES


def elementwise_derivatives(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(f(x), f'(x), f''(x))`` of an elementwise ``fn``, each the shape of ``x``.

    Closed forms for the modules :data:`ELEMENTWISE_MODULES` knows, else two autograd
    passes (exact for an elementwise function: the gradient of ``sum f(x)`` is ``f'(x)``).
    Differentiable in ``x`` and in the function's parameters.
    """
    closed = ELEMENTWISE_MODULES[type(fn)](fn) if type(fn) in ELEMENTWISE_MODULES else None
    if closed is not None:
        return closed(x)
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_()
        value = fn(x_in)
        (slope,) = torch.autograd.grad(value.sum(), x_in, create_graph=True)
        if not slope.requires_grad:  # piecewise linear: f'' = 0
            return value, slope, torch.zeros_like(slope)
        (curvature,) = torch.autograd.grad(
            slope.sum(), x_in, create_graph=True, allow_unused=True, materialize_grads=True
        )
    return value, slope, curvature


# shared, parameter-free instances: a compiled expansion guards on the object, so every
# layer of a net reuses one per name instead of recompiling per layer
_KNOWN: dict[str, BaseActivation] = {
    "silu": BaseActivation("silu", F.silu, _silu_derivative, _silu_jet),
    "gelu": BaseActivation("gelu", F.gelu, _gelu_derivative, _gelu_jet),
    "tanh": BaseActivation("tanh", torch.tanh, lambda x: 1.0 - torch.tanh(x).square(), _tanh_jet),
    "identity": BaseActivation("identity", lambda x: x, torch.ones_like, _identity_jet),
}


def native_base_code(activation: BaseActivation | None) -> int | None:
    """The base branch's code for ``lightning_kan.native``'s kernels: 0 for no branch, a
    :data:`~lightning_kan.native.BASE_CODES` value for a known name still computing its
    own function, ``None`` for anything else (the layer then evaluates it in torch)."""
    if activation is None:
        return 0
    known = _KNOWN.get(activation.name)
    if known is None or activation.fn is not known.fn or activation.name not in BASE_CODES:
        return None
    return BASE_CODES[activation.name]


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
