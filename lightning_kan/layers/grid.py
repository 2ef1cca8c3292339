"""B-spline grid maintenance shared by every KAN layer: update to data, set a range,
refine, reload.

A layer mixes in :class:`SplineGridMixin` and says two things:

* ``_grid_samples(x)``: the layer input as rows of per-feature values ``(N, I)``;
* ``_map_coefficients(R)``: apply ``R (I, K_new, K_old)`` along the basis mode (dim 2)
  of its ``weight``, input feature by input feature.

Every grid move (``update_grid``: quantile knots; ``set_grid_range``: uniform knots on a
given range, which keep the basis' fast path; ``refine_grid``) keeps every edge's
function as close as possible (in least squares on samples) while the knots move: for
input ``i`` the new coefficients are ``R_i @ c_old`` with
``R_i = (A_new^T A_new)^-1 A_new^T A_old``, ``A`` the basis matrices of the samples.
``R`` does not depend on the output, so it is computed once per input feature and
applied to all outputs (and kernel taps). Only a refinement onto a nested grid keeps
the function exactly; any other ``refine_grid`` warns (:class:`GridRefitWarning`) with
the change it measured.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_kan.bases import BSplineBasis
from lightning_kan.bases.base import _check_positive_int

__all__ = ["MIN_GRID_SPAN", "GridRefitWarning", "SplineGridMixin", "sample_range"]

#: points per new interval on which a non-nested refinement's change is measured (and
#: spread over a new range by ``set_grid_range`` to keep the functions across it)
_PROBES_PER_INTERVAL = 16
#: the narrowest grid fitted to samples: a feature that is constant on them still gets one
MIN_GRID_SPAN = 1e-3


class GridRefitWarning(UserWarning):
    """``refine_grid`` onto a non-nested grid changed the edge functions (by the amount
    the message states)."""


class SplineGridMixin:
    """``update_grid``/``refine_grid`` for a layer with a ``BSplineBasis`` and a stored
    coefficient ``weight`` whose dim 2 is the basis mode (a ``coefficients`` strategy
    with ``refits_grid``; other families refuse with ``NotImplementedError``)."""

    basis: nn.Module
    weight: nn.Parameter
    in_features: int

    def _grid_samples(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _map_coefficients(self, refit: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _spline_basis(self, action: str) -> BSplineBasis:
        strategy = getattr(self, "coefficients", None)
        if strategy is not None and not strategy.refits_grid:
            raise NotImplementedError(
                f"{type(self).__name__} computes its coefficients from other parameters "
                f"({strategy!r}), so update_grid/refine_grid cannot refit them; move the "
                "grid on the dense KAN before converting it (e.g. SlimKAN.from_dense) or "
                "train without grid updates"
            )
        if parametrize.is_parametrized(self, "weight"):
            raise RuntimeError(
                f"{action} on a layer whose coefficients carry adapters (LoTRA) would refit "
                "the frozen pretrained tensor under them; merge first "
                "(lightning_kan.lotra.merge_adapter(model, keep_unmerge=False)) or drop the "
                "grid update while fine-tuning"
            )
        if not isinstance(self.basis, BSplineBasis):
            raise TypeError(
                f"{action} needs a B-spline basis, but this layer uses "
                f"{type(self.basis).__name__}; only basis='bspline' has a movable grid"
            )
        return self.basis

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, margin: float = 0.0, grid_eps: float = 0.02) -> None:
        """Move the knots to the samples in ``x`` (a layer input) and refit the coefficients.

        New interior knots per feature are ``grid_eps * uniform + (1 - grid_eps) * quantiles``
        of the samples (pykan's rule; uniform spans ``[min - margin, max + margin]``);
        the coefficients are refitted by least squares so every edge's spline changes as
        little as possible on these samples. ``grid_eps`` in ``(0, 1]`` keeps the knots
        strictly increasing even when samples repeat.
        """
        basis = self._spline_basis("update_grid")
        if not 0.0 < grid_eps <= 1.0:
            raise ValueError(f"grid_eps must be in (0, 1], got {grid_eps!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        samples = self._grid_samples(x).detach().double()
        _check_finite_samples(samples)
        interior = _quantile_interior(samples, basis.grid_size, margin, grid_eps)
        self._move_grid(samples, _extend_knots(interior, basis.spline_order), grid_eps == 1.0)

    @torch.no_grad()
    def set_grid_range(self, low: torch.Tensor, high: torch.Tensor, x: torch.Tensor) -> None:
        """Put uniform knots on ``[low_i, high_i]`` (shapes ``(I,)``) and refit the coefficients.

        The grid stays uniform, so the basis keeps its fast path (a quantile grid from
        :meth:`update_grid` evaluates about 2x slower). The coefficients are refitted by
        least squares on the samples in ``x`` (a layer input) together with points spread
        evenly over the new range, so every edge function changes as little as possible
        where the data lie and across the whole new grid (beyond the old grid, the old
        function is its constant extension).
        """
        basis = self._spline_basis("set_grid_range")
        low, high = _check_grid_range(low, high, basis.in_features)
        samples = self._grid_samples(x).detach().double()
        _check_finite_samples(samples)
        positions = torch.linspace(0, 1, _PROBES_PER_INTERVAL * basis.grid_size + 1)
        probes = low + positions.double().unsqueeze(-1) * (high - low)  # (P, I)
        interior = _uniform_interior(low, high, basis.grid_size)
        self._move_grid(
            torch.cat([samples, probes.to(samples.device)]),
            _extend_knots(interior, basis.spline_order),
            uniform=True,
        )

    @torch.no_grad()
    def refine_grid(self, grid_size: int, samples_per_interval: int | None = None) -> None:
        """Change to ``grid_size`` intervals on the same range, refitting the coefficients.

        Each old interval is split proportionally, so a uniform grid stays uniform and an
        adapted one keeps its shape. When ``grid_size`` is a multiple of the old one the
        knots are nested and the old spline is exactly representable: the refit is exact
        (to round-off). The fit uses ``samples_per_interval`` (default
        ``spline_order + 2``) points per new interval.

        Any other ``grid_size`` (fewer intervals, or not a multiple) changes the edge
        functions; it then warns with a :class:`GridRefitWarning` stating the largest
        change of any edge function on points across the grid range.
        """
        basis = self._spline_basis("refine_grid")
        _check_positive_int("grid_size", grid_size)
        order, old_size = basis.spline_order, basis.grid_size
        per_interval = order + 2 if samples_per_interval is None else samples_per_interval
        _check_positive_int("samples_per_interval", per_interval)
        old_interior = basis.grid[:, order : order + old_size + 1].double().cpu()
        new_interior = _interpolate_knots(old_interior, torch.linspace(0, old_size, grid_size + 1))
        positions = torch.linspace(0, grid_size, grid_size * per_interval + 1, dtype=torch.float64)
        samples = _interpolate_knots(new_interior, positions).T  # (N, I)
        nested = grid_size % old_size == 0
        if not nested:
            probe_count = _PROBES_PER_INTERVAL * max(old_size, grid_size) + 1
            probes = _interpolate_knots(
                old_interior, torch.linspace(0, old_size, probe_count, dtype=torch.float64)
            ).T.to(basis.grid.device)
            before = self._edge_values(probes)
        self._move_grid(
            samples.to(basis.grid.device),
            _extend_knots(new_interior, order),
            basis.is_uniform,
            grid_size=grid_size,
        )
        if not nested:
            change = float((self._edge_values(probes) - before).abs().max())
            warnings.warn(
                f"refine_grid(grid_size={grid_size}) on this {type(self).__name__} with "
                f"{old_size} intervals is not a nested refinement ({grid_size} is not a "
                f"multiple of {old_size}), so the splines could not be kept: the edge "
                f"functions changed by up to {change:.3g} (max abs difference on "
                f"{probe_count} points across the grid range). Refine to a multiple of "
                f"{old_size} (e.g. {2 * old_size}) to keep the function exactly.",
                GridRefitWarning,
                stacklevel=3,  # the caller, past torch.no_grad's wrapper
            )

    def _edge_values(self, points: torch.Tensor) -> torch.Tensor:
        """Every edge's spline at ``points (N, I)``: ``(O, I, N, *kernel)`` in float64.

        The basis matrix acts on ``weight``'s basis mode like a refit onto N "functions"
        (point evaluations), so ``_map_coefficients`` evaluates it for any layer layout.
        """
        return self._map_coefficients(self.basis(points).transpose(0, 1))

    def _move_grid(
        self,
        samples: torch.Tensor,
        knots: torch.Tensor,
        uniform: bool,
        grid_size: int | None = None,
    ) -> None:
        """Install ``knots`` (and a new grid size) and refit ``weight`` on ``samples (N, I)``.

        Solves the ``(K, K)`` normal equations per input in float64; a tiny ridge keeps
        knot intervals without samples well-posed.
        """
        old_basis = self._spline_basis("a grid change")
        old_values = old_basis(samples)  # (N, I, K_old)
        new_basis = old_basis
        if grid_size is not None and grid_size != old_basis.grid_size:
            new_basis = BSplineBasis(old_basis.in_features, grid_size, old_basis.spline_order)
            new_basis = new_basis.to(old_basis.grid)
        new_basis.set_knots(knots.to(new_basis.grid), uniform=uniform)
        new_values = new_basis(samples)  # (N, I, K_new)
        gram = torch.einsum("nik,nil->ikl", new_values, new_values)
        cross = torch.einsum("nik,nil->ikl", new_values, old_values)
        ridge = 1e-12 * gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1e-300)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        refit = torch.linalg.solve(gram + ridge[:, None, None] * eye, cross)  # (I, K_new, K_old)
        new_weight = self._map_coefficients(refit).to(self.weight.dtype)
        self.basis = new_basis
        self._set_weight(new_weight)

    def _set_weight(self, new_weight: torch.Tensor) -> None:
        if new_weight.shape == self.weight.shape:
            self.weight.copy_(new_weight)
        else:
            self.weight = nn.Parameter(new_weight, requires_grad=self.weight.requires_grad)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept weights saved after ``refine_grid``: rebuild the grid size first."""
        grid = state_dict.get(prefix + "basis.grid")
        basis = self.basis
        if isinstance(basis, BSplineBasis) and grid is not None:
            grid_size = grid.shape[-1] - 2 * basis.spline_order - 1
            if grid_size != basis.grid_size and grid_size > 0:
                self.basis = BSplineBasis(basis.in_features, grid_size, basis.spline_order)
                self.basis = self.basis.to(basis.grid)
                shape = list(self.weight.shape)
                shape[2] = self.basis.num_functions
                self._set_weight(self.weight.detach().new_empty(shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]


def _check_finite_samples(samples: torch.Tensor) -> None:
    """Refuse fewer than 2 samples ``(N, I)`` or any NaN/inf, naming how many rows are bad."""
    if samples.shape[0] < 2:
        raise ValueError(
            f"update_grid needs at least 2 samples (layer-input rows) to place the knots, "
            f"got {samples.shape[0]}; pass a larger batch"
        )
    bad_rows = int((~torch.isfinite(samples)).any(dim=-1).sum())
    if bad_rows:
        raise ValueError(
            f"update_grid got {bad_rows} of {samples.shape[0]} samples (layer-input rows) "
            "holding NaN or inf; the knots are placed at quantiles of finite samples only. "
            "Drop those rows first, e.g. x = x[torch.isfinite(x).all(dim=-1)]"
        )


def _quantile_interior(
    samples: torch.Tensor, grid_size: int, margin: float, grid_eps: float
) -> torch.Tensor:
    """``(I, G + 1)`` interior knots: quantiles blended with a uniform grid (pykan)."""
    ordered = samples.sort(dim=0).values
    ranks = torch.linspace(0, samples.shape[0] - 1, grid_size + 1).round().long()
    adaptive = ordered[ranks].T
    low, high = sample_range(samples, margin)
    return grid_eps * _uniform_interior(low, high, grid_size) + (1.0 - grid_eps) * adaptive


def sample_range(samples: torch.Tensor, margin: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` per feature of ``samples (N, I)``, widened by ``margin`` on each side
    and to at least ``MIN_GRID_SPAN`` about its centre (a constant feature still gets a grid)."""
    low, high = samples.min(dim=0).values - margin, samples.max(dim=0).values + margin
    span = torch.clamp(high - low, min=MIN_GRID_SPAN)
    centre = (high + low) / 2
    return centre - span / 2, centre + span / 2


def _uniform_interior(low: torch.Tensor, high: torch.Tensor, grid_size: int) -> torch.Tensor:
    """``(I, G + 1)`` equally spaced interior knots from ``low (I,)`` to ``high (I,)``."""
    steps = torch.arange(grid_size + 1, dtype=low.dtype, device=low.device) / grid_size
    return low.unsqueeze(-1) + steps * (high - low).unsqueeze(-1)


def _check_grid_range(
    low: torch.Tensor, high: torch.Tensor, in_features: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``low``, ``high`` as float64 ``(I,)`` tensors, checked finite with ``low < high``."""
    low = torch.as_tensor(low).detach().double().reshape(-1)
    high = torch.as_tensor(high).detach().double().reshape(-1)
    if (
        {low.numel(), high.numel()} - {1, in_features}
        or not bool(torch.isfinite(low).all() & torch.isfinite(high).all())
        or bool((high <= low).any())
    ):
        raise ValueError(
            f"set_grid_range needs finite bounds with low < high, one each or one per input "
            f"feature ({in_features}), got low={low.tolist()} and high={high.tolist()}; pass "
            "(low, high) per feature, e.g. the range of the layer's input samples"
        )
    return low.expand(in_features), high.expand(in_features)


def _extend_knots(interior: torch.Tensor, order: int) -> torch.Tensor:
    """Add ``order`` knots on each side of ``interior (I, G+1)`` at the mean spacing."""
    grid_size = interior.shape[-1] - 1
    spacing = ((interior[:, -1] - interior[:, 0]) / grid_size).unsqueeze(-1)
    steps = torch.arange(1, order + 1, dtype=interior.dtype, device=interior.device)
    before = interior[:, :1] - spacing * steps.flip(0)
    after = interior[:, -1:] + spacing * steps
    return torch.cat([before, interior, after], dim=-1)


def _interpolate_knots(knots: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear map from fractional knot index to position: ``(I, len(positions))``.

    ``knots (I, G+1)``; ``positions`` in ``[0, G]``. Integer positions return the knots
    themselves, so subdividing a grid keeps every old knot.
    """
    positions = positions.to(knots.dtype)
    lower = positions.floor().long().clamp(max=knots.shape[-1] - 2)
    fraction = positions - lower.to(knots.dtype)
    return knots[:, lower] * (1 - fraction) + knots[:, lower + 1] * fraction
