"""B-spline grids that follow the data: fitted when training starts (:func:`fit_initial_grids`,
which every ``KANTask`` runs by default) and moved during training (``GridUpdate``), as
pykan's fit does."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.bases import BSplineBasis
from lightning_kan.callbacks.inputs import require_datamodule, training_inputs
from lightning_kan.layers.grid import (
    SplineGridMixin,
    _check_finite_samples,
    _extend_knots,
    _quantile_interior,
    sample_range,
)
from lightning_kan.protocols import SupportsGridUpdate, _refits_coefficients, require, require_net

__all__ = [
    "HIDDEN_MARGIN",
    "INITIAL_GRIDS",
    "INITIAL_GRID_SAMPLES",
    "GridUpdate",
    "fit_grids",
    "fit_initial_grids",
    "spline_layers",
]


class GridUpdate(Callback):
    """Every ``every_n_epochs`` epochs (not at epoch 0), until ``until_epoch``, call
    ``module.net.update_grid(x)`` on ``num_samples`` training inputs.

    All processes use rank 0's samples, so the grids stay identical under DDP. The
    coefficients are refitted in place (same shapes), so optimizer state carries on.

    Args:
        every_n_epochs: update period in epochs.
        until_epoch: last epoch that may update (None: no limit). pykan stops updating
            before the end so the final epochs train on a fixed grid.
        num_samples: training inputs used to place the knots.
        margin, grid_eps: passed to ``update_grid``.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        until_epoch: int | None = None,
        num_samples: int = 1024,
        margin: float = 0.0,
        grid_eps: float = 0.02,
    ) -> None:
        if (
            isinstance(every_n_epochs, bool)
            or not isinstance(every_n_epochs, int)
            or every_n_epochs < 1
        ):
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
        if until_epoch is not None and (
            isinstance(until_epoch, bool) or not isinstance(until_epoch, int) or until_epoch < 0
        ):
            raise ValueError(
                f"until_epoch must be None (no limit) or an integer >= 0, got {until_epoch!r}"
            )
        # update_grid checks these too, but only at the first update, epochs into training
        if not 0.0 < grid_eps <= 1.0:
            raise ValueError(f"grid_eps must be in (0, 1], got {grid_eps!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.every_n_epochs = every_n_epochs
        self.until_epoch = until_epoch
        self.num_samples = num_samples
        self.margin = margin
        self.grid_eps = grid_eps

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail before training unless the network's grids can move (SupportsGridUpdate)."""
        if stage != "fit":
            return
        require_datamodule(trainer, "GridUpdate")
        require(
            require_net(pl_module, "GridUpdate"),
            SupportsGridUpdate,
            caller="GridUpdate",
            needs="the module's network to move its B-spline grids",
            where=f"`{type(pl_module).__name__}.net`",
            fix="Use a dense B-spline KAN (KAN(widths, basis='bspline')); for Slim KAN move "
            "the grid on the dense KAN before converting it (SlimKAN.from_dense); or remove "
            "GridUpdate from the trainer's callbacks.",
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch == 0 or epoch % self.every_n_epochs:
            return
        if self.until_epoch is not None and epoch > self.until_epoch:
            return
        samples = training_inputs(trainer, self.num_samples, "GridUpdate")
        pl_module.net.update_grid(
            samples.to(pl_module.device), margin=self.margin, grid_eps=self.grid_eps
        )


#: training inputs the initial grid fit reads (as many as GridUpdate's default)
INITIAL_GRID_SAMPLES = 1024

#: the values of ``KANTask(initial_grid=...)``: how the grids are fitted when a fit starts
#: (:func:`fit_grids`; ``None`` keeps them as built)
INITIAL_GRIDS = ("cover", "inputs", "all", None)

#: how far past the activations it saw a hidden layer's ``"cover"`` grid reaches on each
#: side, in units of their span: activations widen as a network trains (a B-spline PINN's
#: last hidden layer's spanned 0.56 at the start and 2.66 after 12 epochs), and a grid
#: they outgrow pins them at its edge, where the splines turn constant. With 2 the grid
#: spans 5x the activations' range, the growth measured there. On the 12-epoch elliptic
#: PINN on the built [-1, 1] grids (examples/grid_fit_table.py) rel. L2 was 0.050 with a
#: margin of 0.1, 0.021 with 2 and 0.013 with 3 (one seed each; 0.11 as built); every bit
#: wider costs the hidden layers resolution
HIDDEN_MARGIN = 2.0

#: pykan's blend of uniform and quantile knots (``grid_eps``) in ``"inputs"`` and ``"all"``
PYKAN_GRID_EPS = 0.02


def spline_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every layer of ``net`` with a movable B-spline grid."""
    return [
        (name, module)
        for name, module in net.named_modules()
        if isinstance(module, SplineGridMixin) and isinstance(module.basis, BSplineBasis)
    ]


def fit_initial_grids(
    trainer: L.Trainer, net: nn.Module, caller: str, which: str = "cover"
) -> None:
    """Fit the B-spline grids of ``net`` to the first training inputs by the rule ``which``
    (a value of :data:`INITIAL_GRIDS` other than ``None``; see :func:`fit_grids`).

    Reads :data:`INITIAL_GRID_SAMPLES` inputs with :func:`training_inputs` (rank 0's,
    broadcast, so every process fits the same grids) under a forked torch RNG, so the
    training that follows draws the same shuffles and samples as without the fit. A net
    without B-spline layers is left alone without reading any data. Layers left alone
    for a reason are named in one rank-zero warning.
    """
    if not spline_layers(net):
        return
    if trainer.datamodule is None:
        rank_zero_warn(
            f"{caller}(initial_grid={which!r}) fits the B-spline grids to the first training "
            "inputs of the trainer's datamodule, and this fit got dataloaders instead, so the "
            "grids keep their constructed range; pass a LightningDataModule "
            "(trainer.fit(model, datamodule=...)) or set initial_grid=None to silence this",
            category=UserWarning,
        )
        return
    with torch.random.fork_rng(devices=[]):
        samples = training_inputs(trainer, INITIAL_GRID_SAMPLES, caller)
    device = next(net.parameters(), samples).device
    skipped = fit_grids(net, samples.to(device), which)
    if skipped:
        rank_zero_warn(
            f"{caller}(initial_grid={which!r}) fitted the B-spline grids to the training inputs "
            f"except in {len(skipped)} layer(s) that keep their grid: {'; '.join(skipped)}. "
            "Their coefficients pass through a parametrisation (LoTRA adapters, edge masks "
            "from pruning), and a refit would rewrite the tensor under it; merge the adapters "
            "first (lightning_kan.lotra.merge_adapter) or set initial_grid=None to keep "
            "every grid as it is without this warning.",
            category=UserWarning,
        )


@torch.no_grad()
def fit_grids(net: nn.Module, x: torch.Tensor, which: str = "cover") -> list[str]:
    """Fit the B-spline grids of ``net`` to what each layer sees in ``net(x)``.

    ``which`` (``x``: network inputs ``(N, ...)``):

    * ``"cover"``: every layer, uniform knots (the basis keeps its fast path). The first
      B-spline layer the forward reaches reads the data: its grid spans the range of its
      inputs (per feature). A later (hidden) layer's grid spans the union of its current
      range and the range of its inputs widened by :data:`HIDDEN_MARGIN` of their span
      on each side: it grows to cover the activations and never shrinks, because an
      untrained network's activations are narrower than a trained one's (grids fitted
      to them stalled a PINN, see the README). A grid that already covers that range
      is left as it is, so fitting twice changes nothing.
    * ``"inputs"``: the first B-spline layer only, at the input quantiles blended with
      a uniform grid (pykan's rule, ``grid_eps=0.02``); hidden grids keep their range.
    * ``"all"``: every layer by pykan's quantile rule (pykan's initialisation).

    One forward pass in eval mode (dropout off, batch-norm statistics untouched); each
    layer's grid is fitted to its input just before it computes, so a layer sees the
    outputs of the layers before it on their new grids (pykan's order). Per layer:

    * a grid that is not uniform was fitted already (``update_grid``, a checkpoint of a
      quantile fit, ``SlimKAN.from_dense`` of a fitted KAN) and is kept;
    * stored coefficients (dense): ``set_grid_range`` (``"cover"``) or ``update_grid``
      refit them so the edge functions change as little as possible;
    * computed coefficients (Slim's Tucker factors, MetaKAN's meta-learners): the knots
      move the same way and the coefficients keep their values, as if the layer had been
      built on that grid (right for a network that has not trained yet);
    * a layer with a parametrisation (LoTRA adapters, edge masks) is kept and named in
      the returned list, one phrase per layer.
    """
    if which not in INITIAL_GRIDS or which is None:
        rules = ", ".join(repr(rule) for rule in INITIAL_GRIDS if rule is not None)
        raise ValueError(
            f"fit_grids: which must be one of {rules}, got {which!r}; 'cover' fits every "
            "B-spline layer's grid to its inputs with uniform knots, 'inputs' only the "
            "first layer's and 'all' every layer's at the input quantiles (pykan's)"
        )
    skipped: list[str] = []
    done: set[int] = set()

    def fit(name: str, layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        first = not done
        if id(layer) in done or (which == "inputs" and not first):
            return
        done.add(id(layer))
        if not layer.basis.is_uniform:
            return
        if parametrize.is_parametrized(layer):
            kind = parametrize.type_before_parametrizations(layer).__name__
            names = ", ".join(sorted(layer.parametrizations.keys()))
            skipped.append(f"`{name}` ({kind}, parametrised: {names})")
        elif which == "cover":
            _cover(layer, args[0], hidden=not first)
        elif _refits_coefficients(layer):
            layer.update_grid(args[0], margin=0.0, grid_eps=PYKAN_GRID_EPS)
        else:
            samples = layer._grid_samples(args[0]).detach().double()
            _check_finite_samples(samples)
            basis = layer.basis
            interior = _quantile_interior(samples, basis.grid_size, 0.0, PYKAN_GRID_EPS)
            basis.set_knots(_extend_knots(interior, basis.spline_order).to(basis.grid))

    modes = {module: module.training for module in net.modules()}
    handles = [
        layer.register_forward_pre_hook(lambda layer, args, name=name: fit(name, layer, args))
        for name, layer in spline_layers(net)
    ]
    try:
        net.eval()
        net(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    return skipped


def _cover(layer: nn.Module, x: torch.Tensor, hidden: bool) -> None:
    """``"cover"`` for one layer with a uniform grid: uniform knots on the range of its
    input ``x`` (a hidden layer: widened by the margin and united with its current range).
    A grid whose bounds are that range already (in the grid's dtype) is not touched."""
    samples = layer._grid_samples(x).detach().double()
    _check_finite_samples(samples)
    low, high = sample_range(samples)
    basis = layer.basis
    current_low, current_high = basis.grid_bounds
    if hidden:
        margin = HIDDEN_MARGIN * (high - low)
        low = torch.minimum(low - margin, current_low.to(low))
        high = torch.maximum(high + margin, current_high.to(high))
    if torch.equal(low.to(current_low), current_low) and torch.equal(
        high.to(current_high), current_high
    ):
        return
    if _refits_coefficients(layer):
        layer.set_grid_range(low, high, x)
    else:
        basis.set_uniform_grid(low, high)
