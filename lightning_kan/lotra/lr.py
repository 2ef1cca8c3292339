"""Learning rates per adapter component, and the optimizer parameter groups they give.

Strategies (``lr_strategy``), each a scale rule in :data:`LR_SCALES`:

``"uniform"``
    One rate ``lr`` for the core and every factor: the baseline the LoTRA paper reports
    to train inefficiently.

``"width"`` (the default, unchanged so old configs and checkpoints resume as before)
    ``lr(U2) = lr / I`` for the input factor of a layer with ``I`` inputs, ``lr`` for the
    rest. It assumed that a step on ``G``, ``U1`` or ``U3`` moves the output by
    ``Theta(lr)``; with the adapter's initialisation it does not (see below): ``G``'s step
    shrinks like ``O^-1/2`` and ``U1``'s grows like ``O^1/2``.

``"balanced"`` (ours)
    ``lr(G) = lr sqrt(O / (r1 r2 r3))``, ``lr(U1) = lr / sqrt(O)``,
    ``lr(U2) = lr sqrt(K) / I``, ``lr(U3) = lr / sqrt(K)`` for a layer ``(O, I, K)`` with
    ranks ``(r1, r2, r3)``: each component's first Adam step moves the layer's output by
    about ``lr`` per output, whatever the widths, ranks and basis size. This is our
    derivation for our initialisation. The LoTRA paper derives per-component rates in
    its Theorem 2, whose statement was not available to us: this is not claimed to be
    the paper's rule. (A convolution's kernel mode, ``T`` taps, is treated like the
    basis mode, by analogy and unmeasured: ``lr(U4) = lr / sqrt(T)``, ``K T`` in place
    of ``K`` for ``U2``, and ``r4`` joins the rank product.)

Derivation (Adam-type optimisers). Per sample, the adapter adds to output ``o``

    dy_o = sum_a U1[o, a] z_a,              z_a = sum_{b, c} G[a, b, c] H[b, c],
    H[b, c] = sum_i U2[i, b] psi[i, c],     psi[i, c] = sum_k U3[k, c] phi_k(x_i).

The initialisation (``adapter.py``): ``G = 0``; ``U1 (O, r1)`` and ``U3 (K, r3)`` have
orthonormal columns (entries ``~ 1/sqrt(O)``, ``1/sqrt(K)``); ``U2 ~ N(0, 1/I)``. So
``psi`` and ``H`` are ``Theta(1)``, and ``dy ~ sqrt(r1 / O) |z|``. Adam's first step
moves every entry of a parameter by exactly its rate (``lr g / |g|``), whatever the
gradient's scale, so what matters is how the moved entries add up on an output:

* over a rank mode or the basis mode they add like random signs, ``N`` terms give
  ``Theta(sqrt(N) * step)``: they weight near-orthogonal functions (polynomials, or
  arbitrary orthonormal mixtures of them) with no shared component;
* over the input mode they add coherently, ``Theta(I * |m| * step)``: ``psi[i, c]`` of
  different inputs are independent but share their mean ``m_c = E psi[i, c]`` (``T_0 = 1``
  and the even polynomials have nonzero means), and the step's signs follow it. A unit
  column ``U3[:, c]`` meets the fixed mean feature vector like a random direction, so
  ``|m_c| ~ 1 / sqrt(K)``.

The factors' steps act only once ``G != 0``; we take them where the adapter already
moves the output by ``Theta(1)`` (rms ``dy = 1``, so ``|z| = sqrt(O / r1)``): the state a
balanced ``G`` reaches after ``Theta(1 / lr)`` steps whatever the width. (Keeping ``G``'s
*entries* fixed instead, as issue 16's first table did, makes ``dy`` itself shrink like
``1 / sqrt(O)``, a state no balanced training passes through.) Per unit rate:

* ``G``: ``dz ~ sqrt(r2 r3) lr(G)``, so ``dy = U1 dz ~ sqrt(r1 r2 r3 / O) lr(G)``;
* ``U1``: ``dy_o = sum_a dU1[o, a] z_a ~ sqrt(r1) |z| lr(U1) = sqrt(O) lr(U1)``;
* ``U2``: ``dH ~ I lr(U2) / sqrt(K)``, which ``G`` and ``U1`` carry to ``dy`` with gain
  ``Theta(1)`` (``dy = 1`` at ``H = Theta(1)``);
* ``U3``: ``dpsi ~ sqrt(K) lr(U3)``, carried to ``dy`` with gain ``Theta(1)``.

Setting each to ``lr`` gives the rates above. ``tests/test_lotra_lr_width.py`` measures
the first-step change (one Chebyshev ``KANLinear``, ``K = 6``, ranks 4, batch 512,
``out = in = n``, geometric mean of 6 draws): with ``"balanced"`` every component stays
within 2x over ``n`` = 16 ... 1024 (``"width"``: 8x for ``G`` and ``U1``), over separate
``in`` and ``out``, and over ranks 2 ... 8 and ``K`` = 4 ... 9. The exponents in ``O``
and ``I`` come out exact; over the ranks ``G``'s step still grows like about
``(r2 r3)^0.3``, since how coherently it adds depends on the mean of the output
gradient, i.e. on the data.

``lr_multipliers`` multiplies any component's rate on top of the strategy, e.g.
``{"in": 4.0}`` or ``{"modules_to_save": 0.1}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from lightning_kan.lotra.adapter import COMPONENTS
from lightning_kan.lotra.model import adapted_tensors

__all__ = [
    "LR_SCALES",
    "LR_STRATEGIES",
    "MULTIPLIER_KEYS",
    "check_lr_options",
    "component_lr",
    "lotra_param_groups",
]

MULTIPLIER_KEYS = (*COMPONENTS, "modules_to_save")

#: ``scale(component, mode_sizes, ranks) -> (factor, label)``: the factor on the base rate
#: and the group-name suffix that identifies it (``""`` for factor 1)
Scale = Callable[[str, Sequence[int], Sequence[int]], tuple[float, str]]


def _uniform(component: str, mode_sizes: Sequence[int], ranks: Sequence[int]) -> tuple[float, str]:
    return 1.0, ""


def _width(component: str, mode_sizes: Sequence[int], ranks: Sequence[int]) -> tuple[float, str]:
    if component != "in":
        return 1.0, ""
    return 1.0 / mode_sizes[1], f"/I={mode_sizes[1]}"


def _balanced(component: str, mode_sizes: Sequence[int], ranks: Sequence[int]) -> tuple[float, str]:
    out_features, in_features, *features = mode_sizes  # features: K, or K and T
    if component == "core":
        rank_product = math.prod(ranks)
        return math.sqrt(out_features / rank_product), f"/O={out_features},r={rank_product}"
    if component == "out":
        return 1.0 / math.sqrt(out_features), f"/O={out_features}"
    if component == "in":
        per_input = math.prod(features)
        return math.sqrt(per_input) / in_features, f"/I={in_features},K={per_input}"
    size = mode_sizes[COMPONENTS.index(component) - 1]  # basis: K, kernel: T
    return 1.0 / math.sqrt(size), f"/{'K' if component == 'basis' else 'T'}={size}"


#: the rate rules by name (``lr_strategy``); "width" stays the default
LR_SCALES: dict[str, Scale] = {"uniform": _uniform, "width": _width, "balanced": _balanced}
LR_STRATEGIES = tuple(LR_SCALES)


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
    *,
    mode_sizes: Sequence[int] | None = None,
    ranks: Sequence[int] | None = None,
) -> float:
    """The learning rate of one adapter component of a layer with ``in_features`` inputs.

    ``"balanced"`` also needs the adapter's ``mode_sizes`` ``(O, I, K[, T])`` and
    ``ranks`` (a :class:`~lightning_kan.lotra.TuckerDelta`'s attributes of those names).
    """
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
    if mode_sizes is None and ranks is None and strategy != "balanced":
        mode_sizes, ranks = (1, in_features, 1), (1, 1, 1)  # only I is read
    _check_layer(component, in_features, strategy, mode_sizes, ranks)
    return _rate(lr, component, mode_sizes, ranks, strategy, multipliers)[0]


def _positive_ints(values: object, length: int | None = None) -> bool:
    return (
        isinstance(values, Sequence)
        and len(values) in ((3, 4) if length is None else (length,))
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in values)
    )


def _check_layer(
    component: str,
    in_features: int,
    strategy: str,
    mode_sizes: Sequence[int] | None,
    ranks: Sequence[int] | None,
) -> None:
    """``ValueError`` unless ``mode_sizes`` and ``ranks`` describe one adapter."""
    if not _positive_ints(mode_sizes) or mode_sizes[1] != in_features:
        raise ValueError(
            f"LoTRA component_lr mode_sizes={mode_sizes!r} is not the adapter's modes: "
            f"expected (O, I, K) or (O, I, K, T) as positive ints with I = in_features = "
            f"{in_features} (lr_strategy={strategy!r} scales by them); pass "
            "mode_sizes=delta.mode_sizes and ranks=delta.ranks of the layer's TuckerDelta"
        )
    if not _positive_ints(ranks, len(mode_sizes)):
        raise ValueError(
            f"LoTRA component_lr ranks={ranks!r} must be one positive int per mode of "
            f"mode_sizes={tuple(mode_sizes)!r} (lr_strategy={strategy!r} scales by them); "
            "pass ranks=delta.ranks of the layer's TuckerDelta"
        )
    if component == "kernel" and len(mode_sizes) < 4:
        raise ValueError(
            f"LoTRA component_lr component='kernel' needs a fourth (kernel) mode, but "
            f"mode_sizes={tuple(mode_sizes)!r} has three; the kernel factor exists only "
            "on convolutions"
        )


def _rate(
    lr: float,
    component: str,
    mode_sizes: Sequence[int],
    ranks: Sequence[int],
    strategy: str,
    multipliers: Mapping[str, float],
) -> tuple[float, str]:
    """The rate of ``component`` and its group-name suffix under ``strategy``."""
    factor, label = LR_SCALES[strategy](component, mode_sizes, ranks)
    return lr * multipliers.get(component, 1.0) * factor, label


def lotra_param_groups(
    model: nn.Module,
    lr: float,
    strategy: str = "width",
    multipliers: Mapping[str, float] | None = None,
    modules_to_save: Iterable[nn.Module] = (),
) -> list[dict[str, Any]]:
    """Parameter groups for the active adapters (and fully trained modules) of ``model``.

    One group per component and rate, in the fixed order core, out, in, basis, kernel,
    modules_to_save, and within a group in module order, so the optimizer's state lines
    up again after resuming. Each group has a ``name`` that says what set its rate
    (``"lotra/in/I=64"``; ``"balanced"``: ``"lotra/core/O=16,r=64"``, ``"lotra/out/O=16"``,
    ``"lotra/basis/K=6"``), which Lightning's ``LearningRateMonitor`` uses.
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
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for component in COMPONENTS:
        for delta in active:
            parameter = dict(delta.named_components()).get(component)
            if parameter is None:
                continue
            rate, suffix = _rate(
                lr, component, delta.mode_sizes, delta.ranks, strategy, multipliers
            )
            group = groups.setdefault(
                (component, suffix),
                {"params": [], "lr": rate, "name": f"lotra/{component}{suffix}"},
            )
            group["params"].append(parameter)
    saved = [p for module in modules_to_save for p in module.parameters()]
    if saved:
        rate = lr * multipliers.get("modules_to_save", 1.0)
        groups[("modules_to_save", "")] = {
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
