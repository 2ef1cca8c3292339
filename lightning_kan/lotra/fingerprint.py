"""A fingerprint of the base model an adapter was trained on, so it never loads into another.

An adapter stores only the update ``delta``; ``C_pre + delta`` is the fine-tuned model only
with the *same* ``C_pre``. :func:`base_fingerprint` hashes the tensors that stay fixed
while the adapter trains and shape the adapted model's output:

* every parameter of the model outside the adapters and the ``modules_to_save`` (the
  frozen ``C_pre`` of each adapted tensor under its plain name, e.g. ``net.layers.0.weight``,
  the base weights and biases, the rest of the network), and
* the persistent buffers of the adapted modules (e.g. a B-spline layer's ``grid``).

Other buffers (e.g. BatchNorm running statistics elsewhere) are left out: they may move
while the base is frozen. Each tensor contributes its name, shape, dtype class and bytes,
taken on the CPU with floating tensors cast to float32 (complex to complex64) in
little-endian order, so the digest does not depend on the device and a model upcast to
float64 from the same float32 weights matches. Bases that agree to float32 precision
therefore count as the same base; a base rounded to float16/bfloat16 (e.g. trained with
``precision="bf16-true"``) is another base: load its adapter into the same rounded model,
or pass ``allow_different_base=True``. SHA-256 over the tensors sorted by name; the per-tensor
digests name which tensors differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lightning_kan.lotra.model import adapted_tensors

__all__ = ["FINGERPRINT_ALGORITHM", "base_fingerprint", "describe_difference"]

#: recorded with the digest, so a later change of the recipe is recognised
FINGERPRINT_ALGORITHM = "sha256/float32-le/v1"


def _canonical(tensor: torch.Tensor) -> torch.Tensor:
    """The CPU, contiguous, little-endian form whose bytes are hashed."""
    tensor = tensor.detach()
    if tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    elif tensor.is_complex():
        tensor = tensor.to(torch.complex64)
    return tensor.cpu().contiguous()


def _tensor_digest(name: str, tensor: torch.Tensor) -> str:
    canonical = _canonical(tensor)
    digest = hashlib.sha256()
    digest.update(f"{name}|{tuple(canonical.shape)}|{canonical.dtype}|".encode())
    digest.update(canonical.numpy().tobytes())  # little-endian on every platform torch runs on
    return digest.hexdigest()


def _base_tensors(
    model: nn.Module, adapted_modules: list[str], modules_to_save: list[str]
) -> dict[str, torch.Tensor]:
    """The fingerprinted tensors by plain name (``C_pre`` under ``<module>.<parameter>``)."""
    tensors = adapted_tensors(model)
    adapter_ids = {id(p) for t in tensors for p in t.adapters.parameters()}
    adapter_ids |= {id(m) for t in tensors for m in t.adapters.modules()}
    originals = {id(t.original): t.key for t in tensors}
    saved = tuple(f"{name}." if name else "" for name in modules_to_save)
    found: dict[str, torch.Tensor] = {}
    for name, parameter in model.named_parameters():
        if id(parameter) not in adapter_ids and not name.startswith(saved):
            found[originals.get(id(parameter), name)] = parameter
    for module_name in adapted_modules:
        module = model.get_submodule(module_name)
        prefix = f"{module_name}." if module_name else ""
        for owner_name, owner in module.named_modules():
            if id(owner) in adapter_ids:
                continue
            for name, buffer in owner.named_buffers(recurse=False):
                qualified = f"{prefix}{owner_name}.{name}" if owner_name else f"{prefix}{name}"
                persistent = name not in owner._non_persistent_buffers_set
                if persistent and not qualified.startswith(saved):
                    found[qualified] = buffer
    return found


def base_fingerprint(
    model: nn.Module, adapted_modules: Iterable[str], modules_to_save: Iterable[str] = ()
) -> dict:
    """``{"algorithm", "sha256", "tensors": {name: sha256}}`` of ``model``'s base tensors.

    ``adapted_modules``: qualified names of the modules the adapter acts on (their buffers
    count); ``modules_to_save``: modules trained fully, left out.
    """
    found = _base_tensors(model, list(adapted_modules), list(modules_to_save))
    per_tensor = {name: _tensor_digest(name, tensor) for name, tensor in sorted(found.items())}
    overall = hashlib.sha256()
    for name, digest in per_tensor.items():
        overall.update(f"{name}={digest};".encode())
    return {
        "algorithm": FINGERPRINT_ALGORITHM,
        "sha256": overall.hexdigest(),
        "tensors": per_tensor,
    }


def describe_difference(saved: Mapping[str, str], current: Mapping[str, str]) -> str:
    """Which tensors differ between two per-tensor digest maps, in one short sentence."""
    parts = []
    for label, names in (
        ("different values", [n for n in saved if n in current and saved[n] != current[n]]),
        ("only in the saved base", [n for n in saved if n not in current]),
        ("only in this model", [n for n in current if n not in saved]),
    ):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{label}: {', '.join(names[:3])}{more}")
    return "; ".join(parts) or "the tensors' digests agree but the overall digest does not"
