"""Low-rank evidence: the mode spectra of fine-tuning updates, and ranks they suggest.

The LoTRA paper's Figure 1 argument: after *full* fine-tuning, the update
``C_ft - C_pre`` of every layer has quickly decaying singular values in each mode
unfolding (out, in, basis), so a small Tucker rank captures it. :func:`update_spectra`
measures that on your own models, :func:`suggest_ranks` turns it into ranks, and
:func:`plot_spectra` draws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from lightning_kan.lotra.adapter import COMPONENTS, folded_shape
from lightning_kan.lotra.targets import ModuleSelector, find_target_modules
from lightning_kan.ops import ranks_for_energy, unfold
from lightning_kan.plotting import figure_class

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_spectra", "suggest_ranks", "update_spectra"]


def _updates(
    pretrained: nn.Module,
    finetuned: nn.Module,
    target_modules: ModuleSelector,
    parameter_name: str,
) -> dict[str, torch.Tensor]:
    """``C_ft - C_pre`` per target module, kernel taps folded into a fourth mode."""
    before = find_target_modules(pretrained, target_modules, None, parameter_name)
    after = find_target_modules(finetuned, target_modules, None, parameter_name)
    if before.keys() != after.keys():
        raise ValueError(
            "the pretrained and fine-tuned models have different KAN layers: "
            f"{sorted(before)} vs {sorted(after)}"
        )
    updates = {}
    for name, module in after.items():
        tuned = getattr(module, parameter_name).detach().double()
        base = getattr(before[name], parameter_name).detach().double()
        if tuned.shape != base.shape:
            raise ValueError(f"{name}: shapes differ, {tuple(base.shape)} vs {tuple(tuned.shape)}")
        delta = tuned - base
        updates[name] = delta.reshape(folded_shape(delta.shape))
    return updates


def update_spectra(
    pretrained: nn.Module,
    finetuned: nn.Module,
    target_modules: ModuleSelector = None,
    parameter_name: str = "weight",
) -> dict[str, dict[str, torch.Tensor]]:
    """Singular values of each mode unfolding of every layer's update ``C_ft - C_pre``.

    Returns ``{module_name: {"out": s, "in": s, "basis": s[, "kernel": s]}}``, each ``s``
    a float64 vector in decreasing order (length ``min`` of the unfolding's sides).
    """
    return {
        name: {
            component: torch.linalg.svdvals(unfold(delta, mode))
            for mode, component in enumerate(COMPONENTS[1 : 1 + delta.dim()])
        }
        for name, delta in _updates(pretrained, finetuned, target_modules, parameter_name).items()
    }


def suggest_ranks(
    pretrained: nn.Module,
    finetuned: nn.Module,
    energy: float = 0.9,
    target_modules: ModuleSelector = None,
    parameter_name: str = "weight",
) -> dict[str, tuple[int, ...]]:
    """Per layer, the smallest Tucker ranks keeping ``energy`` of each mode's update.

    Pass the result's largest ranks (or one layer's) to ``LoTRA(ranks=...)``.
    """
    return {
        name: ranks_for_energy(delta, energy)
        for name, delta in _updates(pretrained, finetuned, target_modules, parameter_name).items()
    }


def plot_spectra(spectra: dict[str, dict[str, torch.Tensor]]) -> Figure:
    """One panel per mode: normalised singular values ``s_j / s_0`` of every layer."""
    if not isinstance(spectra, dict) or not spectra:
        raise ValueError(
            f"plot_spectra(spectra={spectra!r}) has nothing to draw: pass what "
            "update_spectra(pretrained, finetuned) returns, {module: {mode: singular values}}"
        )
    components = list(next(iter(spectra.values())).keys())
    figure = figure_class()(figsize=(4 * len(components), 3.2), layout="constrained")
    axes = figure.subplots(1, len(components), squeeze=False)[0]
    for ax, component in zip(axes, components, strict=True):
        for name, modes in spectra.items():
            values = modes[component]
            scale = values[0] if values.numel() and values[0] > 0 else 1.0
            ax.semilogy(range(1, values.numel() + 1), (values / scale).numpy(), "o-", label=name)
        ax.set_title(f"mode {component!r} of C_ft - C_pre")
        ax.set_xlabel("index j")
        ax.set_ylabel("s_j / s_1")
    axes[0].legend(fontsize="small")
    return figure
