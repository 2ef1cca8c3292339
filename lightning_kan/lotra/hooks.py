"""The three LightningModule hooks LoTRA takes over, installed and removed in one place.

Lightning asks the *module*, not a callback, for its optimizer (``configure_optimizers``)
and lets only the module rewrite checkpoints in a way that ``load_from_checkpoint`` sees
(``on_save_checkpoint``/``on_load_checkpoint``). To fine-tune any user's LightningModule
without a subclass, :func:`bind_lotra_hooks` binds three methods on the instance (its
``__dict__``; the class is never touched):

* ``configure_optimizers``: LoTRA's, replacing the module's (which is not called);
* ``on_save_checkpoint``: the module's own, then
  :func:`~lightning_kan.lotra.checkpoint_to_plain` (merged tensors under ordinary keys);
* ``on_load_checkpoint``: the module's own, then
  :func:`~lightning_kan.lotra.checkpoint_from_plain` (the adapters back, exactly).

The returned :class:`LoTRAHooks` records what each hook replaced, and
:meth:`LoTRAHooks.uninstall` puts exactly that back. Binding is **idempotent for the
same owner** (a callback's ``setup`` runs for every stage) and **refused for another
owner** while one is bound, naming the fix (uninstall first). The hooks stay bound after
``fit``, so a later ``trainer.save_checkpoint`` still writes the plain form. A module
with manual optimisation is refused: it steps its own optimizers.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L

from lightning_kan.lotra.io import checkpoint_from_plain, checkpoint_to_plain

__all__ = ["HOOK_NAMES", "LoTRAHooks", "bind_lotra_hooks", "bound_lotra_hooks", "check_bindable"]

HOOK_NAMES = ("configure_optimizers", "on_save_checkpoint", "on_load_checkpoint")
_RECORD = "_lotra_hooks"


def check_bindable(module: object, owner: object) -> None:
    """``ValueError`` unless ``owner`` can bind LoTRA's hooks on ``module`` (see
    :func:`bind_lotra_hooks`); a caller checks this before it changes the module."""
    if not isinstance(module, L.LightningModule):
        raise ValueError(
            f"LoTRA hooks bind onto a lightning.LightningModule, got a {type(module).__name__}; "
            "wrap the network in a LightningModule, or use add_adapter and "
            "lotra_param_groups directly"
        )
    if not module.automatic_optimization:
        raise ValueError(
            f"LoTRA builds one optimizer over the adapters, but {type(module).__name__} "
            "uses manual optimisation (e.g. PINNTask with lbfgs_epochs > 0), which expects "
            "its own optimizers; fine-tune with automatic optimisation (lbfgs_epochs=0)"
        )
    bound = bound_lotra_hooks(module)
    if bound is not None and bound.owner is not owner:
        raise ValueError(
            f"{type(module).__name__} already has LoTRA hooks bound by another owner "
            f"({type(bound.owner).__name__} at {id(bound.owner):#x}); one LoTRA callback "
            "drives a module at a time. Call lightning_kan.lotra.bound_lotra_hooks(module)"
            ".uninstall() first, or reuse the same LoTRA callback"
        )


class LoTRAHooks:
    """LoTRA's three hooks on one module instance (see the module docstring).

    Args:
        module: the LightningModule.
        owner: who bound them (the :class:`~lightning_kan.lotra.LoTRA` callback).
        configure_optimizers: ``f(module) -> optimizer config``, bound as the module's.
    """

    def __init__(
        self,
        module: L.LightningModule,
        owner: object,
        configure_optimizers: Callable[[L.LightningModule], Any],
    ) -> None:
        self.module = module
        self.owner = owner
        self._configure_optimizers = configure_optimizers
        self._replaced: dict[str, Any] | None = None

    @property
    def installed(self) -> bool:
        return self._replaced is not None

    @property
    def replaced(self) -> Mapping[str, Any]:
        """Per hook, the instance attribute it replaced (``None``: the class's method)."""
        return types.MappingProxyType(self._replaced or {})

    def install(self) -> None:
        module, own = self.module, vars(self.module)
        self._replaced = {name: own.get(name) for name in HOOK_NAMES}
        new = {
            "configure_optimizers": self._configure_optimizers,
            "on_save_checkpoint": _then(module.on_save_checkpoint, checkpoint_to_plain),
            "on_load_checkpoint": _then(module.on_load_checkpoint, checkpoint_from_plain),
        }
        for name, function in new.items():
            own[name] = types.MethodType(function, module)
        own[_RECORD] = self

    def uninstall(self) -> None:
        """Give the module back exactly the hooks it had before :meth:`install`."""
        if self._replaced is None:
            raise ValueError("these LoTRA hooks are not installed (uninstall called twice?)")
        own = vars(self.module)
        for name, previous in self._replaced.items():
            if previous is None:
                own.pop(name, None)
            else:
                own[name] = previous
        own.pop(_RECORD, None)
        self._replaced = None


def _then(
    own_hook: Callable[[dict[str, Any]], None],
    lotra_hook: Callable[[L.LightningModule, dict[str, Any]], None],
) -> Callable[[L.LightningModule, dict[str, Any]], None]:
    """The module's own checkpoint hook, then LoTRA's."""

    def hook(module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        own_hook(checkpoint)
        lotra_hook(module, checkpoint)

    return hook


def bound_lotra_hooks(module: object) -> LoTRAHooks | None:
    """The :class:`LoTRAHooks` installed on ``module``, or ``None``."""
    return vars(module).get(_RECORD) if hasattr(module, "__dict__") else None


def bind_lotra_hooks(
    module: L.LightningModule,
    owner: object,
    configure_optimizers: Callable[[L.LightningModule], Any],
) -> LoTRAHooks:
    """Install LoTRA's hooks on ``module`` for ``owner`` and return them.

    Again for the same owner: the installed hooks are returned unchanged. For another
    owner while hooks are bound: ``ValueError`` (uninstall those first).
    """
    check_bindable(module, owner)
    bound = bound_lotra_hooks(module)
    if bound is not None:
        return bound
    hooks = LoTRAHooks(module, owner, configure_optimizers)
    hooks.install()
    return hooks
