"""``LoTRA``: the Lightning Callback that fine-tunes a pretrained KAN through Tucker adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import nn

from lightning_kan.callbacks.checkpoint import load_checkpoint_file
from lightning_kan.lotra.config import AdapterConfig
from lightning_kan.lotra.hooks import bind_lotra_hooks, check_bindable
from lightning_kan.lotra.io import save_adapter
from lightning_kan.lotra.lr import check_lr_options, lotra_param_groups
from lightning_kan.lotra.model import (
    adapted_tensors,
    add_adapter,
    parameter_report,
    set_active_adapter,
)
from lightning_kan.utils import optimizer_config

__all__ = ["LoTRA"]


class LoTRA(Callback):
    """Freeze a pretrained KAN, add Tucker adapters, train them with rates per component.

    In ``setup`` (every stage, so checkpoints with adapters load for validate/test/predict
    too, and before Lightning restores a checkpoint or wraps the model for DDP) it

    1. optionally loads ``pretrained_checkpoint`` into the module;
    2. freezes every parameter of the LightningModule;
    3. adds adapter ``adapter_name`` (zero update, so step 0 is the pretrained model) to
       every selected coefficient tensor and unfreezes it and ``modules_to_save``;
    4. binds LoTRA's hooks on the module instance with
       :func:`~lightning_kan.lotra.bind_lotra_hooks` (all of the mechanism is in
       :mod:`lightning_kan.lotra.hooks`; ``bound_lotra_hooks(module).uninstall()`` gives
       the module its own methods back): a ``configure_optimizers`` that builds
       ``optimizer`` over the parameter groups of
       :func:`~lightning_kan.lotra.lotra_param_groups` (one per component and rate, in a
       fixed order, so optimizer state resumes), and checkpoint hooks that save the
       merged tensors under the ordinary keys (loadable without LoTRA) and restore the
       adapters exactly on resume (see :mod:`lightning_kan.lotra.io`).

    The module keeps its own ``configure_optimizers`` (Lightning requires one) but it is
    not called while LoTRA is attached; LightningCLI's ``--optimizer`` is likewise unused:
    pass ``optimizer`` here (its own ``lr`` is overridden by the groups' rates).

    The adapter's definition (``ranks`` to ``clip_ranks`` below) is held as one
    :class:`~lightning_kan.lotra.AdapterConfig` in ``self.config``, checked when built.

    Args:
        ranks: Tucker ranks: an int for (out, in, basis), one per mode (3, or 4 with a
            convolution's kernel mode, which is full rank by default), or a dict from
            module-name regexes to either (first match wins), e.g.
            ``{"net.layers.0": [4, 2, 4], "net.layers.2": [1, 4, 4], ".*": 4}``.
        target_modules: regex (full match on qualified names), or list of names / dotted
            suffixes / types; ``None`` adapts every module with a 3+-D ``parameter_name``.
        exclude_modules: same forms; these are never adapted.
        modules_to_save: modules trained fully (e.g. a new head), same forms.
        lr: base learning rate.
        lr_strategy: ``"width"`` (``lr / in_features`` for the input factor, the default),
            ``"uniform"`` or ``"balanced"`` (ours: every component's step moves the output
            alike at any width); see :mod:`lightning_kan.lotra.lr` for the derivation.
        lr_multipliers: extra factor per component (``core``, ``out``, ``in``, ``basis``,
            ``kernel``, ``modules_to_save``).
        optimizer: builds the optimizer from the parameter groups (default Adam).
        lr_scheduler: optional, stepped per epoch (``monitor`` for ReduceLROnPlateau).
        adapter_name: name of this adapter (one model can hold several).
        parameter_name: the coefficient parameter's name (``"weight"`` for lightning_kan's
            layers; e.g. ``"spline_weight"`` for efficient-kan).
        pretrained_checkpoint: a Lightning checkpoint or state-dict file loaded into the
            module before freezing (not needed when the module already holds the weights).
        export_dir: at the end of fit, the adapter is saved there (rank 0) with
            :func:`~lightning_kan.lotra.save_adapter`.
        clip_ranks: clip ranks larger than their mode to its size (one warning) instead
            of raising.
    """

    def __init__(
        self,
        ranks: int | list[int] | dict[str, int | list[int]] = 4,
        target_modules: str | list[str] | None = None,
        exclude_modules: str | list[str] | None = None,
        modules_to_save: str | list[str] | None = None,
        lr: float = 1e-3,
        lr_strategy: str = "width",
        lr_multipliers: dict[str, float] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        monitor: str = "val/loss",
        adapter_name: str = "default",
        parameter_name: str = "weight",
        pretrained_checkpoint: str | None = None,
        export_dir: str | None = None,
        clip_ranks: bool = False,
    ) -> None:
        check_lr_options(lr, lr_strategy, lr_multipliers or {})
        self.config = AdapterConfig(
            name=adapter_name,
            ranks=ranks,
            target_modules=target_modules,
            exclude_modules=exclude_modules,
            modules_to_save=modules_to_save,
            parameter_name=parameter_name,
            clip_ranks=clip_ranks,
            argument_names={"name": "adapter_name"},
        )
        self.lr = lr
        self.lr_strategy = lr_strategy
        self.lr_multipliers = dict(lr_multipliers or {})
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.monitor = monitor
        self.pretrained_checkpoint = pretrained_checkpoint
        self.export_dir = export_dir

    def saved_module_names(self, pl_module: nn.Module) -> list[str]:
        """Qualified names of the ``modules_to_save`` (outermost matches only)."""
        return self.config.saved_module_names(pl_module)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        check_bindable(pl_module, self)  # before the module is touched
        name = self.config.name
        if not any(name in t.adapters.adapters for t in adapted_tensors(pl_module)):
            if self.pretrained_checkpoint is not None:
                _load_pretrained(
                    pl_module, self.pretrained_checkpoint, self.saved_module_names(pl_module)
                )
            pl_module.requires_grad_(False)
            add_adapter(pl_module, config=self.config)
        set_active_adapter(pl_module, name)
        for module_name in self.saved_module_names(pl_module):
            pl_module.get_submodule(module_name).requires_grad_(True)
        bind_lotra_hooks(pl_module, self, self._configure_optimizers)
        rank_zero_info(f"LoTRA adapter {name!r}: {parameter_report(pl_module)}")

    def _configure_optimizers(self, pl_module: L.LightningModule) -> Any:
        """The module's ``configure_optimizers`` while LoTRA drives it."""
        saved = [pl_module.get_submodule(n) for n in self.saved_module_names(pl_module)]
        groups = lotra_param_groups(
            pl_module, self.lr, self.lr_strategy, self.lr_multipliers, saved
        )
        optimizer = self.optimizer(groups)
        scheduler = None if self.lr_scheduler is None else self.lr_scheduler(optimizer)
        return optimizer_config(optimizer, scheduler, self.monitor)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.export_dir is not None:
            name = self.config.name
            path = save_adapter(
                pl_module, self.export_dir, name, self.saved_module_names(pl_module)
            )
            rank_zero_info(f"LoTRA adapter {name!r} saved to {path}")


def _load_pretrained(pl_module: nn.Module, path: str, saved_modules: list[str]) -> None:
    """Load a Lightning checkpoint's ``state_dict`` (or a bare state dict) into the module.

    Strict, except for ``modules_to_save`` whose shapes changed (a new head for a new
    task): those keep their fresh initialisation, and the skipped keys are reported.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"LoTRA pretrained_checkpoint={path!r} does not exist; pass the .ckpt written by "
            "the pretraining run (e.g. runs/<name>/version_0/checkpoints/last.ckpt)"
        )
    checkpoint = load_checkpoint_file(path, map_location="cpu", weights_only=True)
    state_dict = dict(checkpoint.get("state_dict", checkpoint))
    own = pl_module.state_dict()
    prefixes = tuple(f"{name}." for name in saved_modules)
    replaced = [
        key
        for key in state_dict
        if key.startswith(prefixes) and key in own and own[key].shape != state_dict[key].shape
    ]
    for key in replaced:
        state_dict[key] = own[key]
    if replaced:
        rank_zero_info(
            f"LoTRA: new shapes in modules_to_save, kept freshly initialised: {replaced}"
        )
    pl_module.load_state_dict(state_dict, strict=True)
