"""Adapter files and checkpoints.

**Adapter files**: :func:`save_adapter` writes a folder with ``adapter_config.json``
(format, name, every adapted tensor's module, shape and ranks, the modules trained fully)
and ``adapter.pt`` (the core and factors, plus the fully trained modules' weights), a few
kilobytes to megabytes. :func:`load_adapter` puts them into a freshly built pretrained
model, exactly.

**Checkpoints**: a LoTRA checkpoint stores the *merged* tensor ``C_pre + delta`` under the
ordinary key (``net.layers.0.weight``), so any code loads it as the fine-tuned plain KAN,
with or without LoTRA (``MyModule.load_from_checkpoint(path)``), and keeps the frozen
``C_pre`` and every adapter tensor under ``checkpoint["lotra"]``, from which
:func:`checkpoint_from_plain` restores them exactly when LoTRA resumes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_kan.lotra.model import adapted_tensors, add_adapter, set_active_adapter

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "checkpoint_from_plain",
    "checkpoint_to_plain",
    "load_adapter",
    "save_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.pt"
_FORMAT = "lightning_kan.lotra/1"


def _active_name(model: nn.Module) -> str:
    names = {t.adapters.active for t in adapted_tensors(model)} - {None}
    if len(names) != 1:
        raise ValueError(
            f"save_adapter: pass name=...; the model's active adapters are {sorted(names)}"
        )
    return names.pop()


def save_adapter(
    model: nn.Module,
    directory: str | Path,
    name: str | None = None,
    modules_to_save: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write adapter ``name`` (default: the active one) and ``modules_to_save`` to a folder.

    ``modules_to_save`` are qualified module names (e.g. a new head) whose full weights go
    with the adapter. Returns the folder.
    """
    name = name or _active_name(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
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
        raise KeyError(f"save_adapter: the model has no adapter named {name!r}")
    for module_name in modules_to_save:
        for key, value in model.get_submodule(module_name).state_dict().items():
            weights[f"modules_to_save.{module_name}.{key}"] = value.detach().cpu().clone()
    config = {
        "format": _FORMAT,
        "name": name,
        "tensors": tensors,
        "modules_to_save": list(modules_to_save),
        "trainable_parameters": sum(v.numel() for v in weights.values()),
    }
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    torch.save(weights, directory / ADAPTER_WEIGHTS)
    return directory


def load_adapter(
    model: nn.Module, directory: str | Path, name: str | None = None, activate: bool = True
) -> str:
    """Add the adapter saved in ``directory`` to ``model`` (the same pretrained network).

    ``name`` renames it (default: the saved name). Shapes are checked against the model's
    pretrained tensors. Returns the adapter's name.
    """
    directory = Path(directory)
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(
            f"no LoTRA adapter at {str(directory)!r}: {ADAPTER_CONFIG} is missing; pass the "
            "folder that save_adapter (or the LoTRA callback's export) wrote"
        )
    config = json.loads(config_path.read_text())
    if config.get("format") != _FORMAT:
        raise ValueError(f"{config_path} has format {config.get('format')!r}, expected {_FORMAT!r}")
    weights = torch.load(directory / ADAPTER_WEIGHTS, weights_only=True, map_location="cpu")
    name = name or config["name"]
    modules = dict(model.named_modules())
    for key, entry in config["tensors"].items():
        module = modules.get(entry["module"])
        if module is None:
            raise ValueError(
                f"the adapter in {str(directory)!r} adapts {entry['module']!r}, which this model "
                "does not have: load it into the network it was trained on"
            )
        add_adapter(
            model,
            name,
            entry["ranks"],
            target_modules=re.escape(entry["module"]),
            parameter_name=entry["parameter"],
            activate=False,
        )
        delta = module.parametrizations[entry["parameter"]][0].adapters[name]
        if list(delta.shape) != entry["shape"]:
            raise ValueError(
                f"the adapter for {key!r} was trained on a tensor of shape {entry['shape']}, "
                f"but this model's is {list(delta.shape)}: load it into the same network"
            )
        prefix = f"{key}."
        delta.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
    for module_name in config["modules_to_save"]:
        prefix = f"modules_to_save.{module_name}."
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        model.get_submodule(module_name).load_state_dict(state)
    if activate:
        set_active_adapter(model, name)
    return name


def _adapter_prefix(tensor) -> str:
    module = f"{tensor.module_name}." if tensor.module_name else ""
    return f"{module}parametrizations.{tensor.parameter_name}."


def checkpoint_to_plain(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Rewrite ``checkpoint["state_dict"]`` of ``model`` in place into the plain form.

    The merged tensors go under their ordinary keys; the pretrained and adapter tensors go
    to ``checkpoint["lotra"]["state_dict"]`` (and which adapter was active, for reference,
    to ``checkpoint["lotra"]["active"]``).
    """
    state_dict = checkpoint["state_dict"]
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
    state_dict = checkpoint["state_dict"]
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
