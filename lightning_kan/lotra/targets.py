"""Which modules of a model LoTRA adapts, chosen by name pattern or type, with exclusions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

__all__ = ["ModuleSelector", "find_target_modules", "matches"]

#: a regex (full match on the qualified name), or a list of names (exact or dotted
#: suffix, as in PEFT) and module types
ModuleSelector = str | Sequence[str | type] | None


def matches(name: str, module: nn.Module, selector: ModuleSelector) -> bool:
    """Whether the module called ``name`` is selected (``None`` selects nothing)."""
    if selector is None:
        return False
    if isinstance(selector, str):
        return re.fullmatch(selector, name) is not None
    for entry in selector:
        if isinstance(entry, type):
            if isinstance(module, entry):
                return True
        elif name == entry or name.endswith("." + entry):
            return True
    return False


def _holds_coefficients(module: nn.Module, parameter_name: str) -> bool:
    """A module with its own parameter ``parameter_name`` of 3+ dims that is no plain conv.

    ``nn.Conv*`` weights have 3+ dims too but no basis mode; they are never picked by
    default (name them explicitly to adapt them anyway).
    """
    if isinstance(module, nn.modules.conv._ConvNd):
        return False
    parameter = _coefficients(module, parameter_name)
    return parameter is not None and parameter.dim() >= 3


def _coefficients(module: nn.Module, parameter_name: str):
    """The module's own coefficient tensor, looking through an existing parametrization."""
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is not None and parameter_name in parametrizations:
        return parametrizations[parameter_name].original
    return module._parameters.get(parameter_name)


def find_target_modules(
    model: nn.Module,
    target_modules: ModuleSelector = None,
    exclude_modules: ModuleSelector = None,
    parameter_name: str = "weight",
) -> dict[str, nn.Module]:
    """The modules to adapt, by qualified name, in ``model.named_modules()`` order.

    With ``target_modules=None`` every module holding a coefficient tensor (a parameter
    ``parameter_name`` of three or more dims; plain convolutions excepted) is taken.
    Explicitly selected modules must hold one. Raises ``ValueError`` when nothing is
    selected or a selected module has no 3-D ``parameter_name``.
    """
    selected: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if matches(name, module, exclude_modules):
            continue
        if target_modules is None:
            if _holds_coefficients(module, parameter_name):
                selected[name] = module
            continue
        if not matches(name, module, target_modules):
            continue
        parameter = _coefficients(module, parameter_name)
        if parameter is None or parameter.dim() < 3:
            shape = None if parameter is None else tuple(parameter.shape)
            raise ValueError(
                f"LoTRA target {name!r} ({type(module).__name__}) has no coefficient tensor: "
                f"its parameter {parameter_name!r} is {shape}, expected (out, in, basis, ...) "
                "with 3 or more dims. Narrow target_modules, add it to exclude_modules, or "
                "set parameter_name to the module's coefficient parameter"
            )
        selected[name] = module
    if not selected:
        candidates = [
            name
            for name, module in model.named_modules()
            if _holds_coefficients(module, parameter_name)
        ]
        raise ValueError(
            f"LoTRA found no module to adapt with target_modules={target_modules!r}, "
            f"exclude_modules={exclude_modules!r}, parameter_name={parameter_name!r}. "
            f"Modules with a 3-D {parameter_name!r}: {candidates[:10] or 'none'}"
            f"{' ...' if len(candidates) > 10 else ''}. A string is a regex matched against "
            "the whole qualified name; a list holds names (or dotted suffixes) and types"
        )
    return selected
