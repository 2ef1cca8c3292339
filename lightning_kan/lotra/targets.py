"""The one module selector of LoTRA: which modules an option names, by pattern or type.

Every LoTRA option that names modules (``target_modules``, ``exclude_modules``,
``modules_to_save``, the keys of a ``ranks`` dict) goes through :func:`matches`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence, Set

from torch import nn

__all__ = [
    "ModuleSelector",
    "check_model",
    "check_parameter_name",
    "check_selector",
    "compile_pattern",
    "exact_selector",
    "find_target_modules",
    "matches",
    "outermost_matches",
]

#: a regex (full match on the qualified name), or a list (or set) of names (exact or
#: dotted suffix, as in PEFT) and module types
ModuleSelector = str | Sequence[str | type] | Set[str | type] | None


def check_model(model: object) -> None:
    """``ValueError`` unless ``model`` is an ``nn.Module`` (the first argument of LoTRA's API)."""
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"LoTRA works on a torch.nn.Module (a KAN, a LightningModule), got a "
            f"{type(model).__name__}; pass the model itself as the first argument"
        )


def compile_pattern(pattern: object, argument: str) -> re.Pattern:
    """``re.compile(pattern)``, or a ``ValueError`` naming ``argument`` and the regex's fault."""
    if not isinstance(pattern, str):
        raise ValueError(
            f"LoTRA {argument} must be a regex string (matched against whole qualified module "
            f"names such as 'net.layers.0'), got {pattern!r} ({type(pattern).__name__})"
        )
    try:
        return _compile(pattern)
    except re.error as error:
        raise ValueError(
            f"LoTRA {argument}: {pattern!r} is not a valid regular expression ({error}). It is "
            "matched against whole qualified module names such as 'net.layers.0'; escape "
            r"special characters (e.g. 'net\.layers\.0', or re.escape(name)) or pass a list "
            "of exact names instead"
        ) from None


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def check_selector(selector: ModuleSelector, argument: str) -> None:
    """``ValueError`` naming ``argument`` unless ``selector`` is None, a valid regex, or a
    list of module names and types."""
    if selector is None:
        return
    if isinstance(selector, str):
        compile_pattern(selector, argument)
        return
    entries = list(selector) if isinstance(selector, Sequence | Set) else None
    bad = (
        [selector]
        if entries is None
        else [e for e in entries if not isinstance(e, str | type) or e == ""]
    )
    if bad:
        raise ValueError(
            f"LoTRA {argument}={selector!r} is not a module selector ({bad[0]!r} is a "
            f"{type(bad[0]).__name__}): expected None, a regex string matched against whole "
            "qualified names (e.g. 'net\\.layers\\.[01]'), or a list of module names, dotted "
            "name suffixes and module classes (e.g. ['layers.0', KANLinear])"
        )


def matches(name: str, module: nn.Module | None, selector: ModuleSelector) -> bool:
    """Whether the module called ``name`` is selected (``None`` selects nothing).

    A string is a regex that must match the whole qualified name; a list (or set) entry
    is a name, its dotted suffix, or a class (``module=None``: no class matches).
    """
    if selector is None:
        return False
    if isinstance(selector, str):
        return compile_pattern(selector, "module pattern").fullmatch(name) is not None
    return any(_entry_matches(name, module, entry) for entry in selector)


def _entry_matches(name: str, module: nn.Module | None, entry: str | type) -> bool:
    if isinstance(entry, type):
        return isinstance(module, entry)
    return name == entry or name.endswith("." + entry)


def exact_selector(names: Sequence[str]) -> str:
    """A regex selecting exactly the qualified ``names`` (no suffix matches)."""
    return "|".join(re.escape(name) for name in names)


def outermost_matches(model: nn.Module, selector: ModuleSelector, argument: str) -> list[str]:
    """Qualified names of the modules ``selector`` picks, outermost only (a match inside
    another is part of it); ``ValueError`` naming ``argument`` when it picks none."""
    if selector is None:
        return []
    names: list[str] = []
    for name, module in model.named_modules():
        if matches(name, module, selector) and not any(
            name.startswith(f"{outer}.") for outer in names
        ):
            names.append(name)
    if not names:
        raise ValueError(
            f"LoTRA {argument}={selector!r} matches no module of {type(model).__name__}"
        )
    return names


def check_parameter_name(parameter_name: object) -> None:
    """``ValueError`` unless ``parameter_name`` can name a coefficient parameter."""
    if not isinstance(parameter_name, str) or not parameter_name:
        raise ValueError(
            f"LoTRA parameter_name must be the coefficient parameter's attribute name, a "
            f"non-empty string such as 'weight', got {parameter_name!r}"
        )


def _check_every_entry_matches(model: nn.Module, selector: ModuleSelector, argument: str) -> None:
    """A list entry (or an exclusion regex) that names no module is a typo, never ignored
    silently. (A target regex that selects nothing is reported with the candidates.)"""
    is_regex = isinstance(selector, str)
    if selector is None or (is_regex and argument == "target_modules"):
        return
    modules = list(model.named_modules())
    for entry in [selector] if is_regex else selector:
        test = matches if is_regex else _entry_matches
        if not any(test(name, module, entry) for name, module in modules):
            names = [name for name, _ in modules if name][:10]
            raise ValueError(
                f"LoTRA {argument} entry {entry!r} matches no module of "
                f"{type(model).__name__}: a regex must match a whole qualified name, a list "
                "entry is a qualified module name or its dotted suffix, a class matches its "
                f"instances. Module names: {names}{' ...' if len(modules) > 11 else ''}. Fix "
                "the entry or remove it"
            )


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
    Explicitly selected modules must hold one. Raises ``ValueError`` for a bad regex or
    selector, when nothing is selected, when a list entry (or an exclusion) names no
    module, or when a selected module has no 3-D ``parameter_name``.
    """
    check_model(model)
    check_selector(target_modules, "target_modules")
    check_selector(exclude_modules, "exclude_modules")
    check_parameter_name(parameter_name)
    _check_every_entry_matches(model, target_modules, "target_modules")
    _check_every_entry_matches(model, exclude_modules, "exclude_modules")
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
