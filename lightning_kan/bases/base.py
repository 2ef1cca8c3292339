"""The basis-family contract and the registry that turns names into bases.

A basis family maps every input value to ``K`` numbers: ``x (..., I) -> (..., I, K)``.
Bases know nothing of layers; a layer contracts their output with its coefficient
tensor ``(O, I, K)``. See ``docs/architecture.md``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lightning_kan.native import NativeKernel

__all__ = ["Basis", "available_bases", "basis_options", "build_basis", "register_basis"]


class Basis(nn.Module):
    """Base class of every basis family.

    Subclasses set ``num_functions`` (K) and implement :meth:`forward`
    ``(..., I) -> (..., I, K)`` with differentiable torch operations. Two hooks let a
    layer evaluate the basis without keeping autograd intermediates (it recomputes
    them in the backward instead):

    * :meth:`expand_into` writes the values into a preallocated ``(..., I, K)`` view;
    * :meth:`input_grad` returns the vector-Jacobian product ``sum_k g_k dphi_k/dx``.

    The defaults derive both from :meth:`forward`, so a user basis only needs
    ``forward``. Bases with trainable parameters are supported: layers then fall back
    to plain autograd so the parameters receive gradients.
    """

    num_functions: int

    def __init__(self, in_features: int | None = None) -> None:
        super().__init__()
        if in_features is not None:
            _check_positive_int("in_features", in_features)
        self.in_features = in_features

    def __setattr__(self, name: str, value: object) -> None:
        """Set an attribute and count the change (:attr:`attribute_version`)."""
        super().__setattr__(name, value)
        self.__dict__["_attribute_version"] = self.__dict__.get("_attribute_version", 0) + 1

    @property
    def attribute_version(self) -> int:
        """How many attributes have been set on this basis: a cheap token that changes with
        any setting (a width, an order, a new grid tensor), for caches of what the basis
        computes from them (``layers.expansion``'s kernel cache)."""
        return self.__dict__.get("_attribute_version", 0)

    def expand_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """Write ``phi(x)`` (shape ``(..., I, K)``) into ``out``, whose contents are
        uninitialised (every element must be written); called under no_grad, on row
        chunks of the layer's input."""
        out.copy_(self(x))

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        """Return ``sum_k grad_values[..., k] * d phi_k(x) / dx`` with shape ``(..., I)``.

        Differentiable when grad mode is on (a double backward through the layer),
        which physics-informed losses need. Without grad mode the layer calls it on row
        chunks, like :meth:`expand_into`: a row's values may depend on the row only.
        """
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (create_graph and x.requires_grad) else x.detach().requires_grad_()
            (grad_x,) = torch.autograd.grad(
                self(x_in), x_in, grad_values, create_graph=create_graph
            )
        return grad_x

    #: whether ``phi_k(x)[..., i]`` depends on ``x[..., i]`` only (forward-mode derivative
    #: propagation and :meth:`derivatives` need it; a per-sample rescaling breaks it)
    elementwise: bool = True

    def derivatives(self, x: torch.Tensor, order: int = 2) -> tuple[torch.Tensor, ...]:
        """``(phi, phi')`` (``order=1``) or ``(phi, phi', phi'')`` (``order=2``) at ``x``.

        Each is ``(..., I, K)``: the basis values and their first / second derivatives in
        the input ``x_i``, for forward-mode derivative propagation (physics-informed
        losses). Checks ``order`` and that the basis is :attr:`elementwise`, then calls
        :meth:`_derivatives`, which families override with closed forms.
        """
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2 (derivatives of phi in x), got {order!r}")
        if not self.elementwise:
            raise ValueError(
                f"{type(self).__name__}({self.extra_repr()}): each phi(x_i) depends on the "
                "sample's other inputs too (a per-sample rescaling or normalisation), so it "
                "has no derivative in x_i alone "
                "(elementwise is False); differentiate the network with autograd, or choose "
                "an elementwise option (e.g. normalization='tanh')"
            )
        return self._derivatives(x, order)

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """:meth:`derivatives` by autograd of :meth:`forward` (``K`` backward passes per
        order), differentiable when grad mode is on; override with closed forms."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (create_graph and x.requires_grad) else x.detach().requires_grad_()
            phi = self(x_in)
            results = [phi]
            current = phi
            for _ in range(order):
                current = _columnwise_grad(current, x_in)
                results.append(current)
        if not create_graph:
            results = [r.detach() for r in results]
        return tuple(results)

    def native_kernel(self) -> NativeKernel | None:
        """This basis as one of ``lightning_kan.native``'s fused C kernels, or ``None`` (the
        default: the layer then calls :meth:`expand_into` and :meth:`input_grad`). A family
        returns one only for the settings its kernel computes exactly."""
        return None

    @property
    def is_parameter_free(self) -> bool:
        """True when no parameter of the basis trains (layers may then fuse it)."""
        if self._modules:
            return not any(p.requires_grad for p in self.parameters())
        # own parameters only: the generic walk cost ~10 us per forward inside a step
        return not any(p is not None and p.requires_grad for p in self._parameters.values())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_functions={self.num_functions}"


def _columnwise_grad(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``d values[..., i, k] / d x[..., i]`` for an elementwise map ``(..., I) -> (..., I, K)``,
    one backward per ``k``; zero where ``values`` does not depend on ``x`` (piecewise
    constant or linear functions have no graph left to differentiate)."""
    if not values.requires_grad:
        return torch.zeros_like(values)
    columns = [
        torch.autograd.grad(
            values[..., k].sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
        )[0]
        for k in range(values.shape[-1])
    ]
    return torch.stack(columns, dim=-1)


BasisFactory = Callable[..., Basis]
_REGISTRY: dict[str, BasisFactory] = {}


def register_basis(name: str) -> Callable[[BasisFactory], BasisFactory]:
    """Class decorator that makes a basis buildable by ``name``.

    The factory is called as ``factory(in_features, **kwargs)``::

        @register_basis("fourier")
        class FourierBasis(Basis): ...
    """
    key = name.lower()

    def decorator(factory: BasisFactory) -> BasisFactory:
        if key in _REGISTRY and _REGISTRY[key] is not factory:
            raise ValueError(
                f"a basis named {name!r} is already registered ({_REGISTRY[key].__name__}); "
                "choose another name"
            )
        _REGISTRY[key] = factory
        return factory

    return decorator


def available_bases() -> list[str]:
    """Names accepted by :func:`build_basis`, sorted."""
    return sorted(_REGISTRY)


def build_basis(basis: str | Basis, in_features: int, **kwargs: Any) -> Basis:
    """Return a basis from a registered name (built with ``kwargs``) or an instance.

    Raises ``ValueError`` naming the value for unknown names, for keyword arguments
    the family does not take, and for an instance built for another input width.
    """
    if isinstance(basis, Basis):
        if kwargs:
            raise ValueError(
                f"basis options {sorted(kwargs)} were given with a ready Basis instance "
                f"({type(basis).__name__}); set them when you build the instance instead"
            )
        if basis.in_features is not None and basis.in_features != in_features:
            raise ValueError(
                f"the {type(basis).__name__} was built for in_features={basis.in_features} "
                f"but the layer has in_features={in_features}; build one per layer"
            )
        return basis
    if not isinstance(basis, str):
        raise TypeError(
            f"basis must be a registered name or a Basis instance, got {type(basis).__name__}"
        )
    factory = _REGISTRY.get(basis.lower())
    if factory is None:
        raise ValueError(
            f"unknown basis {basis!r}; expected one of {available_bases()} "
            "(or register your own with lightning_kan.bases.register_basis)"
        )
    accepted = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            options = sorted(set(accepted) - {"self", "in_features"})
            raise ValueError(f"basis {basis!r} does not take {unknown}; its options are {options}")
    return factory(in_features, **kwargs)


def basis_options(basis_kwargs: object) -> dict[str, Any]:
    """``basis_kwargs`` as a dict (``None``: no options); anything but a mapping is refused."""
    if basis_kwargs is None:
        return {}
    if not isinstance(basis_kwargs, Mapping):
        raise TypeError(
            f"basis_kwargs must be a dict of basis options such as {{'grid_size': 5}} (or "
            f"None), got {type(basis_kwargs).__name__} {basis_kwargs!r}"
        )
    return dict(basis_kwargs)


def is_finite_number(value: object) -> bool:
    """True for a finite Python int or float (not a bool): a valid scalar option."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_range(name: str, value: object) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair with ``low < high`` and return it as floats."""
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not low < high:
        raise ValueError(f"{name} must satisfy low < high, got {value!r}")
    return low, high
