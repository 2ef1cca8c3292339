"""Learning rates per adapter component, and the optimizer parameter groups they give.

Strategies (``lr_strategy``):

``"uniform"``
    One rate ``lr`` for the core and every factor: the baseline the LoTRA paper shows to
    train inefficiently.

``"width"`` (width-aware, the default)
    ``lr(U2) = lr / I`` for the input-mode factor of a layer with ``I`` inputs; the core
    ``G`` and the factors ``U1`` (out), ``U3`` (basis), ``U4`` (kernel) keep ``lr``.

Derivation for Adam-type optimisers (the argument LoRA+ makes for LoRA's two factors).
With ``delta C = G x1 U1 x2 U2 x3 U3`` a layer's output changes by

    dy_o = sum_a U1[o, a] sum_{b, c} G[a, b, c] h[b, c],
    h[b, c] = sum_i U2[i, b] psi[i, c],     psi[i, c] = sum_k U3[k, c] phi_k(x_i).

Adam moves every entry of a parameter by about ``lr`` per step, whatever its gradient's
scale. One step on ``U2`` changes ``h[b, c]`` by ``sum_i dU2[i, b] psi[i, c]``: ``I``
terms of size ``lr * |psi|`` whose signs follow the gradient, which is aligned with
``psi``, so they add up coherently to ``Theta(lr * I)``. A step on ``G``, ``U1`` or ``U3``
sums only over the ranks and the K basis functions, which do not grow with the width:
``Theta(lr)``. For every component to move the function at the same rate as the layer
gets wider, ``lr(U2)`` must scale like ``1 / I``. With one rate for all, either ``U2``
overshoots on wide layers or the other components crawl.

``lr_multipliers`` multiplies any component's rate on top of the strategy, e.g.
``{"in": 4.0}`` or ``{"modules_to_save": 0.1}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from lightning_kan.lotra.adapter import COMPONENTS
from lightning_kan.lotra.model import adapted_tensors

__all__ = [
    "LR_STRATEGIES",
    "MULTIPLIER_KEYS",
    "check_lr_options",
    "component_lr",
    "lotra_param_groups",
]

LR_STRATEGIES = ("uniform", "width")
MULTIPLIER_KEYS = (*COMPONENTS, "modules_to_save")


def _positive_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def check_lr_options(lr: float, strategy: str, multipliers: Mapping[str, float]) -> None:
    """Raise ``ValueError`` naming the bad base rate, strategy or multiplier."""
    if not _positive_finite(lr):
        raise ValueError(
            f"LoTRA lr={lr!r} is not a learning rate: expected a finite number > 0, e.g. "
            "lr=1e-3 (the base rate; lr_strategy and lr_multipliers scale it per component)"
        )
    if strategy not in LR_STRATEGIES:
        raise ValueError(
            f"LoTRA lr_strategy={strategy!r} is unknown; expected one of {LR_STRATEGIES} "
            "(or give lr_multipliers per component)"
        )
    if not isinstance(multipliers, Mapping):
        raise ValueError(
            f"LoTRA lr_multipliers={multipliers!r} must be a dict from components to "
            f"factors, e.g. {{'in': 4.0}}; its keys are some of {MULTIPLIER_KEYS}"
        )
    for key, value in multipliers.items():
        if key not in MULTIPLIER_KEYS:
            raise ValueError(
                f"unknown lr_multipliers key {key!r}; expected some of {MULTIPLIER_KEYS}"
            )
        if not _positive_finite(value):
            raise ValueError(
                f"LoTRA lr_multipliers[{key!r}]={value!r} is not a rate factor: expected a "
                "finite number > 0 (1.0 keeps the strategy's rate, 0.5 halves it); leave "
                "the key out to keep the strategy's rate"
            )


def component_lr(
    lr: float,
    component: str,
    in_features: int,
    strategy: str = "width",
    multipliers: Mapping[str, float] | None = None,
) -> float:
    """The learning rate of one adapter component of a layer with ``in_features`` inputs."""
    multipliers = {} if multipliers is None else multipliers
    check_lr_options(lr, strategy, multipliers)
    if component not in MULTIPLIER_KEYS:
        raise ValueError(
            f"LoTRA component_lr component={component!r} is unknown; expected one of "
            f"{MULTIPLIER_KEYS}"
        )
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(
            f"LoTRA component_lr in_features={in_features!r} must be the layer's input "
            "count, an int >= 1 (the 'width' strategy divides the 'in' rate by it)"
        )
    return _rate(lr, component, in_features, strategy, multipliers)


def _rate(
    lr: float, component: str, in_features: int, strategy: str, multipliers: Mapping[str, float]
) -> float:
    rate = lr * multipliers.get(component, 1.0)
    if strategy == "width" and component == "in":
        rate /= in_features
    return rate


def lotra_param_groups(
    model: nn.Module,
    lr: float,
    strategy: str = "width",
    multipliers: Mapping[str, float] | None = None,
    modules_to_save: Iterable[nn.Module] = (),
) -> list[dict[str, Any]]:
    """Parameter groups for the active adapters (and fully trained modules) of ``model``.

    One group per (component, rate), in the fixed order core, out, in, basis, kernel,
    modules_to_save, and within a group in module order, so the optimizer's state lines
    up again after resuming. Each group has a ``name`` (``"lotra/in/I=64"``), which
    Lightning's ``LearningRateMonitor`` uses.
    """
    multipliers = {} if multipliers is None else multipliers
    check_lr_options(lr, strategy, multipliers)
    if isinstance(modules_to_save, nn.Module):
        modules_to_save = [modules_to_save]
    active = [
        t.adapters.adapters[t.adapters.active]
        for t in adapted_tensors(model)
        if t.adapters.active is not None
    ]
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for component in COMPONENTS:
        for delta in active:
            parameter = dict(delta.named_components()).get(component)
            if parameter is None:
                continue
            in_features = delta.shape[1]
            rate = _rate(lr, component, in_features, strategy, multipliers)
            suffix = f"/I={in_features}" if strategy == "width" and component == "in" else ""
            group = groups.setdefault(
                (component, rate), {"params": [], "lr": rate, "name": f"lotra/{component}{suffix}"}
            )
            group["params"].append(parameter)
    saved = [p for module in modules_to_save for p in module.parameters()]
    if saved:
        rate = lr * multipliers.get("modules_to_save", 1.0)
        groups[("modules_to_save", rate)] = {
            "params": saved,
            "lr": rate,
            "name": "lotra/modules_to_save",
        }
    if not groups:
        raise ValueError(
            "LoTRA has no parameters to train: the model has no active adapter and no "
            "modules_to_save"
        )
    return list(groups.values())
