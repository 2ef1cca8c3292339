"""Reading an adapter folder and checking it against a model before anything is loaded.

Every problem (a missing or cut-short file, a garbled config, shapes or tensors that do
not fit, another base model) is found here and named with the file, so
:func:`~lightning_kan.lotra.load_adapter` changes the model only when the whole adapter fits.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.lotra.adapter import TuckerAdapters, folded_shape, resolve_ranks
from lightning_kan.lotra.config import FORMAT, AdapterConfig
from lightning_kan.lotra.fingerprint import (
    FINGERPRINT_ALGORITHM,
    base_fingerprint,
    describe_difference,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "FORMAT",
    "check_base",
    "check_fits",
    "folder_path",
    "read_config",
    "read_weights",
    "weights_under",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.pt"
RESAVE = (
    "Save the adapter again with save_adapter (or the LoTRA callback's export_dir); both "
    "files are written atomically, so a new save is complete or absent"
)


def folder_path(directory: Any, function: str) -> Path:
    """``directory`` as a ``Path``; ``ValueError`` naming ``function`` if it is none."""
    if not isinstance(directory, str | os.PathLike) or not str(directory):
        raise ValueError(
            f"{function} directory={directory!r} is not a folder path: pass a str or Path "
            "such as 'runs/my_adapter'"
        )
    return Path(directory)


def weights_under(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``weights`` under ``prefix``, with the prefix taken off."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def _bad_file(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path} is not a usable LoTRA adapter file: {problem}. {RESAVE}")


def read_config(directory: Path) -> tuple[AdapterConfig, dict[str, Any]]:
    """The checked config of ``directory``'s ``adapter_config.json`` and the parsed file
    (its ``tensors``, hashes and fingerprint), any format :class:`AdapterConfig` reads."""
    if not directory.exists():
        raise FileNotFoundError(
            f"no LoTRA adapter at {str(directory)!r}: the folder does not exist; pass the "
            "folder that save_adapter (or the LoTRA callback's export_dir) wrote"
        )
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no LoTRA adapter at {str(directory)!r}: that is a file, but an adapter is the "
            f"folder holding {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}; pass "
            f"{str(directory.parent)!r} if this file is one of them"
        )
    path = directory / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"no LoTRA adapter at {str(directory)!r}: {ADAPTER_CONFIG} is missing; pass the "
            "folder that save_adapter (or the LoTRA callback's export_dir) wrote"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _bad_file(path, f"it is not complete JSON ({error})") from None
    try:
        return AdapterConfig.from_json(data), data
    except ValueError as error:
        raise _bad_file(path, str(error)) from None


def read_weights(directory: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``adapter.pt``, checked against the config's SHA-256 when it has one."""
    path = directory / ADAPTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"the LoTRA adapter at {str(directory)!r} has {ADAPTER_CONFIG} but no "
            f"{ADAPTER_WEIGHTS}: the folder is incomplete. {RESAVE}"
        )
    data = path.read_bytes()
    expected = config.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise _bad_file(
            path,
            f"its SHA-256 is not the {expected[:16]}... that {ADAPTER_CONFIG} records, so "
            "it is cut short, damaged or from another save",
        )
    try:
        weights = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # truncated zip, EOF, refused pickle: all the same to the user
        reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
        raise _bad_file(path, f"it is not a complete tensor file ({reason})") from None
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise _bad_file(path, "it does not hold a dict of tensors")
    return weights


def check_fits(
    model: nn.Module,
    directory: Path,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    name: str,
) -> list[tuple[dict[str, Any], str]]:
    """Check every entry against the model and the weights; ``[(entry, key)]`` to apply.

    Nothing is changed here, so an adapter that does not fit leaves the model as it was.
    """
    where = f"the adapter in {str(directory)!r}"
    modules = dict(model.named_modules())
    plans = []
    for key, entry in config["tensors"].items():
        module = modules.get(entry["module"])
        if module is None:
            raise ValueError(
                f"{where} adapts {entry['module']!r}, which this model does not have: load it "
                "into the network it was trained on"
            )
        parameter_name = entry["parameter"]
        if parametrize.is_parametrized(module, parameter_name):
            adapters = module.parametrizations[parameter_name][0]
            if isinstance(adapters, TuckerAdapters) and name in adapters.adapters:
                raise ValueError(
                    f"{entry['module']!r} already has an adapter named {name!r}, so {where} "
                    "cannot load under that name; pass load_adapter(..., name='other')"
                )
        pretrained = getattr(module, parameter_name, None)
        shape = list(pretrained.shape) if isinstance(pretrained, torch.Tensor) else None
        if shape != entry["shape"]:
            raise ValueError(
                f"the adapter for {key!r} was trained on a tensor of shape {entry['shape']}, "
                f"but this model's is {shape}: load {where} into the same network"
            )
        try:
            delta_ranks = resolve_ranks(entry["ranks"], folded_shape(shape), key)
        except ValueError as error:
            raise _bad_file(directory / ADAPTER_CONFIG, str(error)) from None
        expected = {"core": tuple(delta_ranks)} | {
            f"factors.{i}": (size, rank)
            for i, (size, rank) in enumerate(zip(folded_shape(shape), delta_ranks, strict=True))
        }
        _check_state(directory, f"{key}.", expected, weights)
        plans.append((entry, key))
    for module_name in config["modules_to_save"]:
        module = modules.get(module_name)
        if module is None:
            raise ValueError(
                f"{where} carries the fully trained module {module_name!r}, which this model "
                "does not have: load it into the network it was trained on"
            )
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        _check_state(directory, f"modules_to_save.{module_name}.", expected, weights)
    return plans


def _check_state(
    directory: Path,
    prefix: str,
    expected: dict[str, tuple[int, ...]],
    weights: dict[str, torch.Tensor],
) -> None:
    """``ValueError`` unless ``weights`` holds exactly ``expected`` (key: shape) under prefix."""
    found = {k: tuple(v.shape) for k, v in weights_under(weights, prefix).items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or [
            k for k in expected if found[k] != expected[k]
        ]
        raise _bad_file(
            directory / ADAPTER_WEIGHTS,
            f"its tensors under {prefix!r} do not fit (missing, extra or misshapen: "
            f"{wrong[:5]}; expected {expected})",
        )


def check_base(
    model: nn.Module, directory: Path, config: dict[str, Any], allow_different_base: bool
) -> None:
    """Compare the saved base fingerprint with ``model``'s; error, or warn when told to."""
    saved = config.get("base_fingerprint")
    if not isinstance(saved, dict) or saved.get("algorithm") != FINGERPRINT_ALGORITHM:
        warnings.warn(
            f"LoTRA adapter {str(directory)!r} has no base fingerprint this version reads "
            "(saved by an older lightning_kan), so it cannot be checked against this model's "
            "base; save it again to record one",
            UserWarning,
            stacklevel=3,
        )
        return
    adapted = [entry["module"] for entry in config["tensors"].values()]
    current = base_fingerprint(model, adapted, config["modules_to_save"])
    if current["sha256"] == saved.get("sha256"):
        return
    difference = describe_difference(saved.get("tensors") or {}, current["tensors"])
    message = (
        f"the LoTRA adapter in {str(directory)!r} was trained on a different base model: "
        f"its base fingerprint is {saved.get('sha256')}, this model's is {current['sha256']} "
        f"({difference})."
    )
    if not allow_different_base:
        raise ValueError(
            f"{message} On another base the adapter gives neither the fine-tuned nor the "
            "pretrained model (tensors trained along with the adapter belong in "
            "modules_to_save). Load it into the pretrained network it was fine-tuned from, "
            "or pass load_adapter(..., allow_different_base=True) to transfer it on purpose"
        )
    warnings.warn(f"{message} Loaded anyway (allow_different_base=True)", UserWarning, 3)
