"""``AdapterConfig``: what an adapter is, checked once, shared by every entry point.

The :class:`~lightning_kan.lotra.LoTRA` callback builds one from its arguments,
:func:`~lightning_kan.lotra.add_adapter` takes one (or builds one from its arguments),
and ``adapter_config.json`` holds one (:meth:`AdapterConfig.to_json`,
:meth:`AdapterConfig.from_json`), so the rules for names, ranks and module selectors live
here only. An adapter file records the *resolved* config: each adapted module by its
exact name with the ranks it got, so applying it to the base rebuilds the same adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass
from typing import Any, ClassVar

from torch import nn

from lightning_kan.lotra.ranks import RankSpec, check_ranks
from lightning_kan.lotra.targets import (
    ModuleSelector,
    check_parameter_name,
    check_selector,
    exact_selector,
    outermost_matches,
)

__all__ = ["FORMAT", "FORMAT_V1", "AdapterConfig", "check_adapter_name"]

FORMAT_V1 = "lightning_kan.lotra/1"
FORMAT = "lightning_kan.lotra/2"
_SELECTORS = ("target_modules", "exclude_modules", "modules_to_save")


def check_adapter_name(name: object, argument: str) -> None:
    """``ValueError`` unless ``name`` can name an adapter (a submodule key: no dots)."""
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(
            f"LoTRA {argument}={name!r} cannot name an adapter: expected a non-empty string "
            "without dots (it becomes a submodule name), e.g. 'default' or 'task_b'"
        )


@dataclass(frozen=True)
class AdapterConfig:
    """One adapter's definition, validated when built (``ValueError`` naming the field).

    Args:
        name: the adapter's name (no dots); one model can hold several.
        ranks: an int, one rank per mode, or ``{module regex: ranks}`` (first match wins);
            see :mod:`lightning_kan.lotra.ranks`.
        target_modules: regex (full match on qualified names), or list of names / dotted
            suffixes / types; ``None`` adapts every module with a 3+-D ``parameter_name``.
        exclude_modules: same forms; never adapted.
        modules_to_save: modules trained fully (the callback) and saved with the adapter;
            same forms (an adapter file lists exact qualified names).
        parameter_name: the coefficient parameter (``"weight"``; efficient-kan:
            ``"spline_weight"``).
        clip_ranks: clip ranks larger than their mode to its size (one warning) instead
            of raising.
        argument_names: how the caller calls the fields in its error messages, e.g.
            ``{"name": "adapter_name"}`` for the callback (not stored).
    """

    name: str = "default"
    ranks: RankSpec = 4
    target_modules: ModuleSelector = None
    exclude_modules: ModuleSelector = None
    modules_to_save: ModuleSelector = None
    parameter_name: str = "weight"
    clip_ranks: bool = False
    argument_names: InitVar[Mapping[str, str] | None] = None

    format: ClassVar[str] = FORMAT

    def __post_init__(self, argument_names: Mapping[str, str] | None) -> None:
        label = {field.name: field.name for field in dataclasses.fields(self)}
        label.update(argument_names or {})
        check_adapter_name(self.name, label["name"])
        check_ranks(self.ranks)
        for field in _SELECTORS:
            check_selector(getattr(self, field), label[field])
        check_parameter_name(self.parameter_name)
        if not isinstance(self.clip_ranks, bool):
            raise ValueError(
                f"LoTRA {label['clip_ranks']}={self.clip_ranks!r} must be True (clip ranks "
                "larger than their mode, with a warning) or False (raise instead)"
            )

    def saved_module_names(self, model: nn.Module) -> list[str]:
        """Qualified names of the ``modules_to_save`` in ``model`` (outermost matches)."""
        return outermost_matches(model, self.modules_to_save, "modules_to_save")

    @classmethod
    def resolved(
        cls, name: str, tensors: Mapping[str, Mapping[str, Any]], modules_to_save: Sequence[str]
    ) -> AdapterConfig:
        """The config that rebuilds exactly the adapted ``tensors`` of an adapter file,
        ``{key: {"module", "parameter", "ranks", ...}}``: exact names, their own ranks."""
        modules = [entry["module"] for entry in tensors.values()]
        parameters = sorted({entry["parameter"] for entry in tensors.values()})
        if len(parameters) != 1:
            raise ValueError(
                f"LoTRA adapter {name!r} spans the coefficient parameters {parameters}, but one "
                "adapter adapts one parameter name: save them as separate adapters"
            )
        return cls(
            name=name,
            ranks={exact_selector([e["module"]]): list(e["ranks"]) for e in tensors.values()},
            target_modules=exact_selector(modules),
            modules_to_save=list(modules_to_save),
            parameter_name=parameters[0],
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with ``"format"`` first; ``ValueError`` for a selector that
        holds module classes (a file can only name modules: pass names or a regex)."""
        data: dict[str, Any] = {"format": self.format}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _SELECTORS and not isinstance(value, str | None):
                value = list(value)
                if any(isinstance(entry, type) for entry in value):
                    raise ValueError(
                        f"LoTRA {field.name}={value!r} holds a module class, which "
                        f"adapter_config.json cannot hold: use module names or a regex"
                    )
            data[field.name] = dict(value) if isinstance(value, Mapping) else value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AdapterConfig:
        """The config of a parsed ``adapter_config.json`` (format 1 or 2), checked.

        A format-1 file (written before this class existed) has only its ``tensors``,
        ``name`` and ``modules_to_save``: its config is :meth:`resolved` from them. A
        format-2 file must hold that same resolved config. ``ValueError`` otherwise.
        """
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        if found not in (FORMAT_V1, FORMAT):
            raise ValueError(
                f"the config's format is {found!r}, expected {FORMAT!r} (or {FORMAT_V1!r})"
            )
        problems = _schema_problems(data)
        if problems:
            raise ValueError(f"the config lacks or garbles {', '.join(problems)}")
        config = cls.resolved(data["name"], data["tensors"], data["modules_to_save"])
        if found == FORMAT:
            stored = {field.name: data.get(field.name) for field in dataclasses.fields(cls)}
            if cls(**stored) != config:
                raise ValueError(
                    "the config's ranks, target_modules and parameter_name do not describe "
                    "its 'tensors' entries (edited by hand?)"
                )
        return config


def _schema_problems(data: Mapping[str, Any]) -> list[str]:
    """The entries of an adapter file's config that are missing or of the wrong kind."""
    tensors, saved = data.get("tensors"), data.get("modules_to_save")
    problems = []
    if not isinstance(data.get("name"), str):
        problems.append("'name' (a string)")
    if not isinstance(tensors, dict) or not tensors:
        problems.append("'tensors' (a non-empty object)")
    if not isinstance(saved, list) or not all(isinstance(n, str) for n in saved):
        problems.append("'modules_to_save' (a list of module names)")
    for key, entry in tensors.items() if isinstance(tensors, dict) else ():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("module"), str)
            and isinstance(entry.get("parameter"), str)
            and _int_list(entry.get("shape"))
            and _int_list(entry.get("ranks"))
        ):
            problems.append(f"tensors[{key!r}] (module, parameter, shape and ranks)")
    return problems


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value
    )
