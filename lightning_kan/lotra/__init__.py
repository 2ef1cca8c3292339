"""LoTRA: low tensor-rank (Tucker) adaptation of pretrained KANs (seed 000).

``C = C_pre (frozen) + G x1 U1 x2 U2 x3 U3`` on every adapted coefficient tensor; train
with the :class:`LoTRA` callback, or use the functions on any ``nn.Module`` directly.

One :class:`AdapterConfig` describes an adapter for the callback, :func:`add_adapter` and
``adapter_config.json``; :mod:`lightning_kan.lotra.hooks` is where the callback takes
over a LightningModule's optimizer and checkpoint hooks; :mod:`lightning_kan.lotra.ranks`
resolves every rank specification.
"""

from lightning_kan.lotra.adapter import COMPONENTS, TuckerAdapters, TuckerDelta, resolve_ranks
from lightning_kan.lotra.callback import LoTRA
from lightning_kan.lotra.config import AdapterConfig
from lightning_kan.lotra.fingerprint import base_fingerprint
from lightning_kan.lotra.hooks import LoTRAHooks, bind_lotra_hooks, bound_lotra_hooks
from lightning_kan.lotra.io import (
    checkpoint_from_plain,
    checkpoint_to_plain,
    load_adapter,
    save_adapter,
)
from lightning_kan.lotra.lr import (
    LR_STRATEGIES,
    check_lr_options,
    component_lr,
    lotra_param_groups,
)
from lightning_kan.lotra.model import (
    AdaptedTensor,
    ParameterReport,
    adapted_tensors,
    add_adapter,
    disable_adapters,
    merge_adapter,
    parameter_report,
    set_active_adapter,
    unmerge_adapter,
)
from lightning_kan.lotra.spectrum import plot_spectra, suggest_ranks, update_spectra
from lightning_kan.lotra.targets import find_target_modules

__all__ = [
    "COMPONENTS",
    "LR_STRATEGIES",
    "AdaptedTensor",
    "AdapterConfig",
    "LoTRA",
    "LoTRAHooks",
    "ParameterReport",
    "TuckerAdapters",
    "TuckerDelta",
    "adapted_tensors",
    "add_adapter",
    "base_fingerprint",
    "bind_lotra_hooks",
    "bound_lotra_hooks",
    "check_lr_options",
    "checkpoint_from_plain",
    "checkpoint_to_plain",
    "component_lr",
    "disable_adapters",
    "find_target_modules",
    "load_adapter",
    "lotra_param_groups",
    "merge_adapter",
    "parameter_report",
    "plot_spectra",
    "resolve_ranks",
    "save_adapter",
    "set_active_adapter",
    "suggest_ranks",
    "unmerge_adapter",
    "update_spectra",
]
