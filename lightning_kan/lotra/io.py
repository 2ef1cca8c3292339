"""Adapter files and checkpoints.

**Adapter files**: :func:`save_adapter` writes a folder with ``adapter_config.json``
(the resolved :class:`~lightning_kan.lotra.AdapterConfig`: format, name, ranks per
adapted module, ``target_modules``, ``parameter_name``, the modules trained fully; then
every adapted tensor's module, shape and ranks, the SHA-256 of ``adapter.pt`` and the
base model's fingerprint, see :mod:`lightning_kan.lotra.fingerprint`) and ``adapter.pt``
(the core and factors, plus the fully trained modules' weights), a few kilobytes to
megabytes. Each file is written
atomically (:mod:`lightning_kan.atomic`), the weights first, so a kill leaves either the
old pair, or new weights that the old config's SHA-256 rejects. :func:`load_adapter`
checks the whole folder, then puts it into the pretrained model it was trained on,
exactly; another base (a different fingerprint) is refused unless
``allow_different_base=True``.

**Checkpoints**: a LoTRA checkpoint stores the *merged* tensor ``C_pre + delta`` under the
ordinary key (``net.layers.0.weight``), so any code loads it as the fine-tuned plain KAN,
with or without LoTRA (``MyModule.load_from_checkpoint(path)``), and keeps the frozen
``C_pre`` and every adapter tensor under ``checkpoint["lotra"]``, from which
:func:`checkpoint_from_plain` restores them exactly when LoTRA resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_kan.atomic import atomic_write_bytes, atomic_write_text, remove_stale_partials
from lightning_kan.lotra.config import AdapterConfig, check_adapter_name
from lightning_kan.lotra.fingerprint import base_fingerprint
from lightning_kan.lotra.model import adapted_tensors, add_adapter, set_active_adapter
from lightning_kan.lotra.reading import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    check_base,
    check_fits,
    folder_path,
    read_config,
    read_weights,
    weights_under,
)
from lightning_kan.lotra.targets import check_model

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "checkpoint_from_plain",
    "checkpoint_to_plain",
    "load_adapter",
    "save_adapter",
]


def _active_name(model: nn.Module) -> str:
    names = {t.adapters.active for t in adapted_tensors(model)} - {None}
    if len(names) != 1:
        known = sorted({n for t in adapted_tensors(model) for n in t.adapters.adapters})
        raise ValueError(
            f"save_adapter(name=None) saves the active adapter, but the model has "
            f"{'several active: ' + str(sorted(names)) if names else 'none active'} (adapters: "
            f"{known or 'none'}); pass name=... or activate one with set_active_adapter"
        )
    return names.pop()


def _saved_module_names(model: nn.Module, modules_to_save: str | Sequence[str]) -> list[str]:
    """``modules_to_save`` as a list of names of submodules the model has."""
    names = [modules_to_save] if isinstance(modules_to_save, str) else list(modules_to_save)
    for module_name in names:
        try:
            model.get_submodule(module_name)
        except (AttributeError, TypeError):
            raise ValueError(
                f"save_adapter modules_to_save entry {module_name!r} is not a submodule of "
                f"{type(model).__name__}: expected qualified names from model.named_modules(), "
                "e.g. ['head']"
            ) from None
    return names


def save_adapter(
    model: nn.Module,
    directory: str | Path,
    name: str | None = None,
    modules_to_save: str | Sequence[str] = (),
) -> Path:
    """Write adapter ``name`` (default: the active one) and ``modules_to_save`` to a folder.

    ``modules_to_save`` are qualified module names (e.g. a new head) whose full weights go
    with the adapter. The config records the base model's fingerprint
    (:mod:`lightning_kan.lotra.fingerprint`) and the SHA-256 of ``adapter.pt``; both files
    are written atomically, the weights first. Returns the folder.
    """
    directory = folder_path(directory, "save_adapter")
    if name is None:
        name = _active_name(model)
    check_adapter_name(name, "name")
    modules_to_save = _saved_module_names(model, modules_to_save)
    if directory.exists() and not directory.is_dir():
        raise ValueError(
            f"save_adapter directory={str(directory)!r} is a file; an adapter is a folder "
            f"({ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}): pass a folder path"
        )
    tensors: dict[str, Any] = {}
    weights: dict[str, torch.Tensor] = {}
    for tensor in adapted_tensors(model):
        if name not in tensor.adapters.adapters:
            continue
        delta = tensor.adapters.adapters[name]
        tensors[tensor.key] = {
            "module": tensor.module_name,
            "parameter": tensor.parameter_name,
            "shape": list(delta.shape),
            "ranks": list(delta.ranks),
        }
        for key, value in delta.state_dict().items():
            weights[f"{tensor.key}.{key}"] = value.detach().cpu().clone()
    if not tensors:
        known = sorted({n for t in adapted_tensors(model) for n in t.adapters.adapters})
        raise KeyError(
            f"save_adapter: the model has no adapter named {name!r}; it has {known or 'none'} "
            "(a merged adapter is part of the weights now: save it before merge_adapter)"
        )
    for module_name in modules_to_save:
        for key, value in model.get_submodule(module_name).state_dict().items():
            weights[f"modules_to_save.{module_name}.{key}"] = value.detach().cpu().clone()
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    data = buffer.getvalue()
    config = {
        **AdapterConfig.resolved(name, tensors, modules_to_save).to_json(),
        "tensors": tensors,
        "trainable_parameters": sum(v.numel() for v in weights.values()),
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "base_fingerprint": base_fingerprint(
            model, [entry["module"] for entry in tensors.values()], modules_to_save
        ),
    }
    remove_stale_partials(directory)
    atomic_write_bytes(directory / ADAPTER_WEIGHTS, data)
    atomic_write_text(directory / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    return directory


def load_adapter(
    model: nn.Module,
    directory: str | Path,
    name: str | None = None,
    activate: bool = True,
    allow_different_base: bool = False,
) -> str:
    """Add the adapter saved in ``directory`` to ``model`` (the same pretrained network).

    ``name`` renames it (default: the saved name). The file is checked whole before the
    model is touched: its format, the shapes against the model's pretrained tensors, and
    the base fingerprint against the model's base tensors. Another base is an error unless
    ``allow_different_base=True`` (then one warning); a file saved before fingerprints
    existed loads with one warning that the base cannot be checked. Returns the name.
    """
    check_model(model)
    directory = folder_path(directory, "load_adapter")
    adapter_config, config = read_config(directory)
    weights = read_weights(directory, config)
    if name is not None:
        check_adapter_name(name, "name")
        adapter_config = dataclasses.replace(adapter_config, name=name)
    name = adapter_config.name
    plans = check_fits(model, directory, config, weights, name)
    check_base(model, directory, config, allow_different_base)
    add_adapter(model, config=adapter_config, activate=False)
    for entry, key in plans:
        module = model.get_submodule(entry["module"])
        delta = module.parametrizations[entry["parameter"]][0].adapters[name]
        delta.load_state_dict(weights_under(weights, f"{key}."))
    for module_name in adapter_config.modules_to_save:
        state = weights_under(weights, f"modules_to_save.{module_name}.")
        model.get_submodule(module_name).load_state_dict(state)
    if activate:
        set_active_adapter(model, name)
    return name


def _adapter_prefix(tensor) -> str:
    module = f"{tensor.module_name}." if tensor.module_name else ""
    return f"{module}parametrizations.{tensor.parameter_name}."


def _state_dict(checkpoint: Any, function: str) -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{function} expects a Lightning checkpoint dict with a 'state_dict' entry (what "
            f"on_save_checkpoint/on_load_checkpoint receive), got {found}"
        )
    return checkpoint["state_dict"]


def checkpoint_to_plain(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Rewrite ``checkpoint["state_dict"]`` of ``model`` in place into the plain form.

    The merged tensors go under their ordinary keys; the pretrained and adapter tensors go
    to ``checkpoint["lotra"]["state_dict"]`` (and which adapter was active, for reference,
    to ``checkpoint["lotra"]["active"]``).
    """
    state_dict = _state_dict(checkpoint, "checkpoint_to_plain")
    stored: dict[str, torch.Tensor] = {}
    active: dict[str, str | None] = {}
    for tensor in adapted_tensors(model):
        prefix = _adapter_prefix(tensor)
        for key in [k for k in state_dict if k.startswith(prefix)]:
            stored[key] = state_dict.pop(key)
        with torch.no_grad():
            state_dict[tensor.key] = getattr(tensor.module, tensor.parameter_name).detach().clone()
        active[tensor.key] = tensor.adapters.active
    if stored:
        checkpoint["lotra"] = {"state_dict": stored, "active": active}


def checkpoint_from_plain(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Inverse of :func:`checkpoint_to_plain` for an adapted ``model`` (in place).

    Without a ``"lotra"`` entry (a checkpoint written before the adapters existed) the
    ordinary keys are taken as the pretrained tensors and the adapters keep their values.
    """
    state_dict = _state_dict(checkpoint, "checkpoint_from_plain")
    lotra = checkpoint.get("lotra")
    for tensor in adapted_tensors(model):
        merged = state_dict.pop(tensor.key, None)
        if lotra is None:
            if merged is not None:
                state_dict[f"{_adapter_prefix(tensor)}original"] = merged
            for key, value in tensor.adapters.state_dict().items():
                state_dict.setdefault(f"{_adapter_prefix(tensor)}0.{key}", value)
    if lotra is not None:
        state_dict.update(lotra["state_dict"])
