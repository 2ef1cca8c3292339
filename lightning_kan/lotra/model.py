"""Adapters on a whole model: inject, switch, disable, merge, unmerge, count.

Every function takes the model (any ``nn.Module``: a network, a LightningModule) and
works on all its adapted coefficient tensors at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.lotra.adapter import TuckerAdapters, TuckerDelta, folded_shape
from lightning_kan.lotra.config import AdapterConfig, check_adapter_name
from lightning_kan.lotra.ranks import RankSpec, resolve_module_ranks
from lightning_kan.lotra.targets import ModuleSelector, check_model, find_target_modules
from lightning_kan.utils import count_parameters

__all__ = [
    "AdaptedTensor",
    "ParameterReport",
    "adapted_tensors",
    "add_adapter",
    "check_adapter_name",
    "disable_adapters",
    "merge_adapter",
    "parameter_report",
    "set_active_adapter",
    "unmerge_adapter",
]


@dataclass(frozen=True)
class AdaptedTensor:
    """One adapted coefficient tensor: ``module.<parameter_name>`` at ``module_name``."""

    module_name: str
    module: nn.Module
    parameter_name: str

    @property
    def adapters(self) -> TuckerAdapters:
        return self.module.parametrizations[self.parameter_name][0]

    @property
    def original(self) -> nn.Parameter:
        """The frozen pretrained tensor ``C_pre``."""
        return self.module.parametrizations[self.parameter_name].original

    @property
    def key(self) -> str:
        """``"<module_name>.<parameter_name>"``: the name adapter files use."""
        return (
            f"{self.module_name}.{self.parameter_name}" if self.module_name else self.parameter_name
        )


def adapted_tensors(model: nn.Module) -> list[AdaptedTensor]:
    """Every coefficient tensor of ``model`` that carries adapters, in module order."""
    check_model(model)
    found = []
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for parameter_name, parametrizations in module.parametrizations.items():
            if isinstance(parametrizations[0], TuckerAdapters):
                found.append(AdaptedTensor(name, module, parameter_name))
    return found


def _adapters_named(model: nn.Module, name: str) -> list[AdaptedTensor]:
    tensors = [t for t in adapted_tensors(model) if name in t.adapters.adapters]
    if not tensors:
        known = sorted({n for t in adapted_tensors(model) for n in t.adapters.adapters})
        raise KeyError(f"no adapter named {name!r} in this model; it has {known or 'none'}")
    return tensors


def add_adapter(
    model: nn.Module,
    name: str = "default",
    ranks: RankSpec = 4,
    target_modules: ModuleSelector = None,
    exclude_modules: ModuleSelector = None,
    parameter_name: str = "weight",
    activate: bool = True,
    *,
    clip_ranks: bool = False,
    config: AdapterConfig | None = None,
) -> list[AdaptedTensor]:
    """Add a zero-initialised Tucker adapter called ``name`` to every selected module.

    The adapter is described by ``config`` (an :class:`~lightning_kan.lotra.AdapterConfig`,
    whose ``modules_to_save`` this function leaves alone) or by the separate arguments,
    not both. ``ranks``: an int, one rank per mode, or ``{module regex: ranks}`` (first
    match wins); ``clip_ranks`` clips ranks larger than their mode instead of raising.

    The pretrained tensor is frozen (``requires_grad=False``); the adapter's core and
    factors are trainable. Adding a second name to an adapted model stacks it beside the
    first (switch with :func:`set_active_adapter`). The new adapter lives on the
    pretrained tensor's device and dtype. Every rank is checked before the model is
    touched, so an error leaves it unchanged. Returns the adapted tensors.
    """
    separate = (name, ranks, target_modules, exclude_modules, parameter_name, clip_ranks)
    if config is None:
        config = AdapterConfig(
            name=name,
            ranks=ranks,
            target_modules=target_modules,
            exclude_modules=exclude_modules,
            parameter_name=parameter_name,
            clip_ranks=clip_ranks,
        )
    elif not isinstance(config, AdapterConfig) or separate != _ADD_ADAPTER_DEFAULTS:
        raise ValueError(
            f"add_adapter config={config!r} must be an AdapterConfig given alone: pass either "
            "config=AdapterConfig(...) or name, ranks, target_modules, exclude_modules, "
            "parameter_name and clip_ranks, not both"
        )
    parameter_name = config.parameter_name
    targets = find_target_modules(
        model, config.target_modules, config.exclude_modules, parameter_name
    )
    pretrained = {}
    for module_name, module in targets.items():
        is_adapted = parametrize.is_parametrized(module, parameter_name)
        if is_adapted and config.name in module.parametrizations[parameter_name][0].adapters:
            raise ValueError(
                f"{module_name!r} already has an adapter named {config.name!r}; pick another "
                "name (add_adapter's name, load_adapter's name, LoTRA's adapter_name), or "
                "build the model afresh"
            )
        pretrained[module_name] = (
            module.parametrizations[parameter_name].original
            if is_adapted
            else getattr(module, parameter_name)
        )
    shapes = {n: tuple(p.shape) for n, p in pretrained.items()}
    layer_ranks = resolve_module_ranks(
        config.ranks,
        {n: folded_shape(shape) for n, shape in shapes.items()},
        {n: f"{n or 'the model'}.{parameter_name} of shape {s}" for n, s in shapes.items()},
        config.clip_ranks,
    )
    for module_name, module in targets.items():
        if not parametrize.is_parametrized(module, parameter_name):
            parametrize.register_parametrization(module, parameter_name, TuckerAdapters())
        tensor = pretrained[module_name]
        delta = TuckerDelta(tensor.shape, layer_ranks[module_name])
        adapters = module.parametrizations[parameter_name][0]
        adapters.adapters[config.name] = delta.to(device=tensor.device, dtype=tensor.dtype)
        tensor.requires_grad_(False)
    if activate:
        set_active_adapter(model, config.name)
    return _adapters_named(model, config.name)


_ADD_ADAPTER_DEFAULTS = ("default", 4, None, None, "weight", False)


def set_active_adapter(model: nn.Module, name: str | None) -> None:
    """Use adapter ``name`` everywhere (``None``: the pretrained model).

    Only the active adapter's parameters require gradients, so an optimizer built after
    switching trains just that one.
    """
    if name is not None:
        _adapters_named(model, name)  # raises for an unknown name
    for tensor in adapted_tensors(model):
        adapters = tensor.adapters
        adapters.active = name if name in adapters.adapters else None
        for adapter_name, delta in adapters.adapters.items():
            delta.requires_grad_(adapter_name == name)


@contextmanager
def disable_adapters(model: nn.Module) -> Iterator[None]:
    """Run the pretrained model inside the block; the adapters come back after it."""
    active = {id(t.module): (t, t.adapters.active) for t in adapted_tensors(model)}
    for tensor, _ in active.values():
        tensor.adapters.active = None
    try:
        yield
    finally:
        for tensor, name in active.values():
            tensor.adapters.active = name


def merge_adapter(model: nn.Module, keep_unmerge: bool = True) -> None:
    """Fold the active adapters into the coefficient tensors: a plain KAN, no adapter cost.

    The parametrizations are removed, so the merged model is exactly the layers the user
    had, with ``weight = C_pre + delta`` as ordinary parameters (still frozen) and an ordinary
    ``state_dict``. With ``keep_unmerge`` (default) each layer keeps a copy of ``C_pre``
    and its adapters, outside the ``state_dict``, so :func:`unmerge_adapter` restores them
    bit for bit; ``keep_unmerge=False`` frees that memory for good.
    """
    tensors = adapted_tensors(model)
    if not tensors:
        raise ValueError("merge_adapter: the model has no adapters (nothing to merge)")
    for tensor in tensors:
        base = tensor.original.detach().clone()
        adapters = tensor.adapters
        parametrize.remove_parametrizations(tensor.module, tensor.parameter_name)
        if keep_unmerge:
            stash = tensor.module.__dict__.setdefault("_lotra_unmerge", {})
            stash[tensor.parameter_name] = (base, adapters)


def unmerge_adapter(model: nn.Module) -> None:
    """Undo :func:`merge_adapter`: the exact pretrained tensors and their adapters return."""
    restored = 0
    for module in model.modules():
        stash = module.__dict__.pop("_lotra_unmerge", None)
        for parameter_name, (base, adapters) in (stash or {}).items():
            parameter = getattr(module, parameter_name)
            with torch.no_grad():
                parameter.copy_(base)
            parameter.requires_grad_(False)
            parametrize.register_parametrization(module, parameter_name, adapters)
            restored += 1
    if not restored:
        raise ValueError(
            "unmerge_adapter: nothing to unmerge; merge_adapter(model, keep_unmerge=True) "
            "must have been called on this model first"
        )


@dataclass(frozen=True)
class ParameterReport:
    """Trainable vs total parameters (``ratio = trainable / total``)."""

    trainable: int
    total: int

    @property
    def ratio(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
            f"trainable: {100 * self.ratio:.2f}%"
        )


def parameter_report(model: nn.Module) -> ParameterReport:
    """Count trainable and all parameters of ``model`` (inactive adapters count as all)."""
    check_model(model)
    return ParameterReport(
        trainable=count_parameters(model), total=count_parameters(model, trainable_only=False)
    )
