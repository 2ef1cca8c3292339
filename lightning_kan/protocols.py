"""Capabilities as documented protocols, checked before training starts.

A callback or task that needs something of the module or network it is given names the
protocol here and calls :func:`require` in its ``setup``, so a missing capability is one
paragraph naming the caller, the class, what is missing and the fix, before the first
training step instead of an ``AttributeError`` epochs later.

* :class:`HasNet`: a LightningModule holding its network as ``.net`` (the callbacks);
* :class:`SupportsGridUpdate`: ``update_grid(x)``/``refine_grid(G)`` that can run, i.e.
  every KAN layer has a B-spline basis and a stored, unparametrised ``weight`` to refit
  (``GridUpdate``);
* :class:`SupportsEdgeFunctions`: a layer, or a network whose every ``layers[i]`` is
  one, with ``edge_activations(x (N, I)) -> (N, O, I)`` (``ActivationPlot``);
* :class:`SupportsRegularization`: ``regularization(x) -> ()``, pykan's L1 + entropy
  penalty (the tasks' ``regularization`` weight);
* :class:`SupportsParamGroups`: ``param_groups() -> list[dict]`` optimizer groups
  (MetaKAN's prompt and meta-learner learning rates; the tasks' optimizer).

The protocols are ``runtime_checkable``: ``isinstance(net, SupportsRegularization)``
checks that the members exist. :func:`capability_gaps` adds the checks a signature
cannot express (a Chebyshev KAN has ``update_grid`` but no grid to move).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.bases import Basis, BSplineBasis

__all__ = [
    "CapabilityError",
    "HasNet",
    "SupportsEdgeFunctions",
    "SupportsGridUpdate",
    "SupportsParamGroups",
    "SupportsRegularization",
    "capability_gaps",
    "edge_function_layers",
    "require",
    "require_net",
]


#: gaps listed in one message; a deep network's others are counted
_MAX_GAPS_SHOWN = 3


class CapabilityError(TypeError, ValueError):
    """An object lacks a capability its user needs (a ``TypeError`` and, as the earlier
    setup checks raised, a ``ValueError``)."""


@runtime_checkable
class HasNet(Protocol):
    """A LightningModule whose network is the attribute ``net`` (every lightning_kan task)."""

    net: nn.Module


@runtime_checkable
class SupportsGridUpdate(Protocol):
    """A network or layer whose B-spline knots can move to the data.

    ``update_grid(x)`` places each input's knots at the quantiles of the samples ``x``
    (a network input ``(N, I)``) and refits the coefficients; ``refine_grid(G)`` moves to
    ``G`` intervals. Beyond the two methods, every KAN layer inside must have a
    :class:`~lightning_kan.bases.BSplineBasis` (the only family with a grid), no
    parametrisation on ``weight`` (LoTRA adapters) and coefficients a refit can rewrite
    (its ``coefficients`` strategy has ``refits_grid``: the dense family; Tucker and
    generated coefficients are computed), see :func:`capability_gaps`.
    """

    def update_grid(self, x: torch.Tensor, margin: float = 0.0, grid_eps: float = 0.02) -> None:
        """Move the knots to ``x`` and refit the coefficients."""

    def refine_grid(self, grid_size: int) -> None:
        """Change to ``grid_size`` intervals, refitting the coefficients."""


@runtime_checkable
class SupportsEdgeFunctions(Protocol):
    """A layer that shows its learned edge functions (what ``ActivationPlot`` draws).

    A network qualifies when every entry of its ``layers`` does (see
    :func:`edge_function_layers`).
    """

    in_features: int
    out_features: int

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``phi_{o,i}(x_i)`` for inputs ``x (N, I)``: ``(N, O, I)``."""


@runtime_checkable
class SupportsRegularization(Protocol):
    """A network with pykan's sparsity penalty ``regularization(x) -> ()`` on inputs ``x``."""

    def regularization(self, x: torch.Tensor) -> torch.Tensor:
        """A scalar to add (times a weight) to the loss."""


@runtime_checkable
class SupportsParamGroups(Protocol):
    """A network that splits its parameters into optimizer groups (dicts with ``params``
    and optionally ``lr``/``name``), e.g. MetaKAN's prompts and meta-learners."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups covering (some of) the network's parameters."""


def edge_function_layers(net: nn.Module) -> list[nn.Module]:
    """The layers whose edge functions a network shows: ``net.layers``, or ``net`` itself."""
    return list(getattr(net, "layers", [net]))


def capability_gaps(obj: object, protocol: type) -> list[str]:
    """Why ``obj`` lacks ``protocol``, one phrase per gap; ``[]`` when it has it."""
    if protocol is SupportsEdgeFunctions:
        return _edge_function_gaps(obj)
    gaps = _missing_members(obj, protocol)
    if protocol is SupportsGridUpdate and not gaps and isinstance(obj, nn.Module):
        gaps = _grid_gaps(obj)
    return gaps


def require(obj: object, protocol: type, *, caller: str, needs: str, where: str, fix: str) -> None:
    """Raise :class:`CapabilityError` unless ``obj`` has ``protocol``.

    The message reads ``"{caller} needs {needs} ({protocol}); in {where} ({class})
    {gaps}. {fix}"``: ``needs`` says what for, ``where`` where the object was found
    (e.g. ``"RegressionTask.net"``), ``fix`` what to change.
    """
    gaps = capability_gaps(obj, protocol)
    if gaps:
        shown = "; ".join(gaps[:_MAX_GAPS_SHOWN])
        if len(gaps) > _MAX_GAPS_SHOWN:
            shown += f" (and {len(gaps) - _MAX_GAPS_SHOWN} more alike)"
        raise CapabilityError(
            f"{caller} needs {needs} ({protocol.__name__}); in {where} "
            f"({type(obj).__name__}) {shown}. {fix}"
        )


def require_net(pl_module: object, caller: str) -> nn.Module:
    """``pl_module.net``, or a :class:`CapabilityError` naming ``caller`` (:class:`HasNet`)."""
    require(
        pl_module,
        HasNet,
        caller=caller,
        needs="the module's network as the attribute `net`, as every lightning_kan task has",
        where="the LightningModule",
        fix=f"Store the network as self.net in the module, or remove {caller} from the "
        "trainer's callbacks.",
    )
    return pl_module.net  # type: ignore[attr-defined]


def _missing_members(obj: object, protocol: type) -> list[str]:
    """One phrase naming the protocol members ``obj`` lacks (methods must be callable)."""
    missing = []
    for name in sorted(_protocol_members(protocol)):
        value = getattr(obj, name, None)
        is_method = callable(getattr(protocol, name, None))
        if value is None or (is_method and not callable(value)):
            missing.append(f"`{name}()`" if is_method else f"`{name}`")
    if not missing:
        return []
    return [f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"]


def _protocol_members(protocol: type) -> set[str]:
    """The names a protocol class declares (methods and annotated attributes)."""
    names = set(vars(protocol).get("__annotations__", {}))
    names |= {name for name, value in vars(protocol).items() if callable(value) and name[0] != "_"}
    return names


def _grid_gaps(net: nn.Module) -> list[str]:
    """The KAN layers of ``net`` whose grid cannot move, each with its reason."""
    gaps = []
    for name, module in net.named_modules():
        basis = getattr(module, "basis", None)
        if not isinstance(basis, Basis):
            continue
        label = f"`{name or 'the network'}` ({type(module).__name__})"
        if not callable(getattr(module, "update_grid", None)):
            gaps.append(f"{label} has no update_grid method")
        elif not isinstance(basis, BSplineBasis):
            gaps.append(
                f"{label} uses {type(basis).__name__}, which has no grid to move (only "
                "basis='bspline' has one)"
            )
        elif parametrize.is_parametrized(module, "weight"):
            gaps.append(
                f"{label} carries a parametrisation of weight (LoTRA adapters), so a refit "
                "would change the frozen tensor under it; merge first with "
                "lightning_kan.lotra.merge_adapter(model, keep_unmerge=False)"
            )
        elif not _refits_coefficients(module):
            gaps.append(
                f"{label} computes its coefficients from other parameters (Tucker "
                "factors, a meta-learner), so a grid move cannot refit them"
            )
    return gaps


def _refits_coefficients(layer: nn.Module) -> bool:
    """Whether a grid move can refit ``layer``'s coefficients: its ``coefficients``
    strategy says so (``refits_grid``, the flag the layer's grid code obeys), or, for a
    layer without one, its ``weight`` is a stored parameter rather than computed."""
    strategy = getattr(layer, "coefficients", None)
    if strategy is not None:
        return bool(getattr(strategy, "refits_grid", False))
    with torch.no_grad():
        return isinstance(layer.weight, nn.Parameter)


def _edge_function_gaps(net: object) -> list[str]:
    """The layers of ``net`` that cannot show edge functions."""
    if not isinstance(net, nn.Module):
        return ["it is not a torch.nn.Module"]
    return [
        f"`layers[{index}]` ({type(layer).__name__}) has no edge_activations"
        if layer is not net
        else "neither it nor a `layers` list has edge_activations"
        for index, layer in enumerate(edge_function_layers(net))
        if not isinstance(layer, SupportsEdgeFunctions)
    ]
