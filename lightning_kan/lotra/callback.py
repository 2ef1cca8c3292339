"""``LoTRA``: the Lightning Callback that fine-tunes a pretrained KAN through Tucker adapters."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import nn

from lightning_kan.callbacks.checkpoint import load_checkpoint_file
from lightning_kan.lotra.adapter import check_ranks
from lightning_kan.lotra.io import checkpoint_from_plain, checkpoint_to_plain, save_adapter
from lightning_kan.lotra.lr import check_lr_options, lotra_param_groups
from lightning_kan.lotra.model import (
    adapted_tensors,
    add_adapter,
    check_adapter_name,
    parameter_report,
    set_active_adapter,
)
from lightning_kan.lotra.targets import check_selector, matches
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
    4. binds a ``configure_optimizers`` to the module that builds ``optimizer`` over the
       parameter groups of :func:`~lightning_kan.lotra.lotra_param_groups` (one per
       component and rate, in a fixed order, so optimizer state resumes), and checkpoint
       hooks that save the merged tensors under the ordinary keys (loadable without
       LoTRA) and restore the adapters exactly on resume (see :mod:`lightning_kan.lotra.io`).

    The module keeps its own ``configure_optimizers`` (Lightning requires one) but it is
    not called while LoTRA is attached; LightningCLI's ``--optimizer`` is likewise unused:
    pass ``optimizer`` here (its own ``lr`` is overridden by the groups' rates).

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
        lr_strategy: ``"width"`` (``lr / in_features`` for the input factor, the default)
            or ``"uniform"``; see :mod:`lightning_kan.lotra.lr` for the derivation.
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
    ) -> None:
        check_lr_options(lr, lr_strategy, lr_multipliers or {})
        check_ranks(ranks)
        check_adapter_name(adapter_name, "adapter_name")
        for argument, selector in (
            ("target_modules", target_modules),
            ("exclude_modules", exclude_modules),
            ("modules_to_save", modules_to_save),
        ):
            check_selector(selector, argument)
        self.ranks = ranks
        self.target_modules = target_modules
        self.exclude_modules = exclude_modules
        self.modules_to_save = modules_to_save
        self.lr = lr
        self.lr_strategy = lr_strategy
        self.lr_multipliers = dict(lr_multipliers or {})
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.monitor = monitor
        self.adapter_name = adapter_name
        self.parameter_name = parameter_name
        self.pretrained_checkpoint = pretrained_checkpoint
        self.export_dir = export_dir

    def saved_module_names(self, pl_module: nn.Module) -> list[str]:
        """Qualified names of the ``modules_to_save`` (outermost matches only)."""
        if self.modules_to_save is None:
            return []
        names: list[str] = []
        for name, module in pl_module.named_modules():
            if matches(name, module, self.modules_to_save) and not any(
                name.startswith(f"{outer}.") for outer in names
            ):
                names.append(name)
        if not names:
            raise ValueError(
                f"LoTRA modules_to_save={self.modules_to_save!r} matches no module of "
                f"{type(pl_module).__name__}"
            )
        return names

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not pl_module.automatic_optimization:
            raise ValueError(
                f"LoTRA builds one optimizer over the adapters, but {type(pl_module).__name__} "
                "uses manual optimisation (e.g. PINNTask with lbfgs_epochs > 0), which expects "
                "its own optimizers; fine-tune with automatic optimisation (lbfgs_epochs=0)"
            )
        already = any(self.adapter_name in t.adapters.adapters for t in adapted_tensors(pl_module))
        if not already:
            if self.pretrained_checkpoint is not None:
                _load_pretrained(
                    pl_module, self.pretrained_checkpoint, self.saved_module_names(pl_module)
                )
            pl_module.requires_grad_(False)
            add_adapter(
                pl_module,
                self.adapter_name,
                self.ranks,
                self.target_modules,
                self.exclude_modules,
                self.parameter_name,
            )
        set_active_adapter(pl_module, self.adapter_name)
        for name in self.saved_module_names(pl_module):
            pl_module.get_submodule(name).requires_grad_(True)
        self._bind_hooks(pl_module)
        rank_zero_info(f"LoTRA adapter {self.adapter_name!r}: {parameter_report(pl_module)}")

    def _bind_hooks(self, pl_module: L.LightningModule) -> None:
        """Replace the module's optimizer and checkpoint hooks (once) with LoTRA's."""
        callback = self

        def configure_optimizers(module: L.LightningModule) -> Any:
            saved = [module.get_submodule(n) for n in callback.saved_module_names(module)]
            groups = lotra_param_groups(
                module, callback.lr, callback.lr_strategy, callback.lr_multipliers, saved
            )
            optimizer = callback.optimizer(groups)
            scheduler = None if callback.lr_scheduler is None else callback.lr_scheduler(optimizer)
            return optimizer_config(optimizer, scheduler, callback.monitor)

        pl_module.configure_optimizers = types.MethodType(configure_optimizers, pl_module)
        if not getattr(pl_module, "_lotra_checkpoint_hooks", False):
            _chain(pl_module, "on_save_checkpoint", checkpoint_to_plain)
            _chain(pl_module, "on_load_checkpoint", checkpoint_from_plain)
            pl_module._lotra_checkpoint_hooks = True

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.export_dir is not None:
            path = save_adapter(
                pl_module,
                self.export_dir,
                self.adapter_name,
                self.saved_module_names(pl_module),
            )
            rank_zero_info(f"LoTRA adapter {self.adapter_name!r} saved to {path}")


def _chain(
    pl_module: L.LightningModule,
    hook_name: str,
    then: Callable[[nn.Module, dict[str, Any]], None],
) -> None:
    """Bind ``hook_name`` on the instance: the module's own hook, then ``then``."""
    own_hook = getattr(pl_module, hook_name)

    def hook(module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        own_hook(checkpoint)
        then(module, checkpoint)

    setattr(pl_module, hook_name, types.MethodType(hook, pl_module))


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
