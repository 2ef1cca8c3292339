"""``KANLinear``: a KAN layer ``x (..., I) -> y (..., O)`` over any basis family.

    y_o = sum_i base_weight[o, i] * b(x_i) + sum_i sum_k weight[o, i, k] * phi_k(x_i) + bias_o

**Coefficient protocol** (what LoTRA, Slim KAN and MetaKAN act on; keep it stable):

* ``weight``: the coefficient tensor, a 3-D parameter ``(out_features, in_features, K)``
  with modes (out, in, basis);
* ``base_weight``: ``(out_features, in_features)``, or ``None`` without a base branch;
* ``bias``: ``(out_features,)`` or ``None``; ``basis``: the :class:`~lightning_kan.bases.Basis`.

The forward reads ``self.weight`` once, so a ``torch.nn.utils.parametrize``
parametrisation of ``weight`` (an adapter) is honoured without changes here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.bases import Basis, BSplineBasis, build_basis
from lightning_kan.bases.base import _check_positive_int
from lightning_kan.layers.activations import resolve_activation
from lightning_kan.layers.expansion import expand_features

__all__ = ["KANLinear"]


class KANLinear(nn.Module):
    """A Kolmogorov-Arnold layer: a learnable univariate function on every edge.

    Args:
        in_features: input width ``I``.
        out_features: output width ``O``.
        basis: a registered basis name (``bspline``, ``chebyshev``, ``rbf``, ``rswaf``,
            ``legendre``, ``gram`` or your own) or a ready :class:`Basis` instance.
        basis_kwargs: options of the named basis, e.g. ``{"grid_size": 5}``.
        base_activation: the base branch ``b`` (``silu``, ``gelu``, ``tanh``,
            ``identity``, a callable) or ``"none"``/``None`` for no base branch.
        bias: add a learnable bias.
        spline_init_scale: scale of the initial coefficients; defaults to 0.1 with a
            base branch (the layer starts near its MLP-like base) and 1.0 without.
        compiled: evaluate the feature expansion with ``torch.compile`` (one fused
            kernel; the fastest forward, see ``benchmarks/``). Needs an inductor backend
            (a C++ compiler on CPU, Triton on GPU); each new input shape compiles once.

    Shapes: ``x (..., I) -> (..., O)``; any number of leading dimensions.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        basis: str | Basis = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        bias: bool = True,
        spline_init_scale: float | None = None,
        compiled: bool = False,
    ) -> None:
        super().__init__()
        _check_positive_int("in_features", in_features)
        _check_positive_int("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.basis = build_basis(basis, in_features, **(basis_kwargs or {}))
        self.activation = resolve_activation(base_activation)
        num_basis = self.basis.num_functions
        self.weight = nn.Parameter(torch.empty(out_features, in_features, num_basis))
        if self.activation is not None:
            self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        else:
            self.register_parameter("base_weight", None)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        if spline_init_scale is None:
            spline_init_scale = 0.1 if self.activation is not None else 1.0
        self.spline_init_scale = float(spline_init_scale)
        self.compiled = compiled
        self.reset_parameters()

    @property
    def num_basis_functions(self) -> int:
        """K, the number of basis functions per input."""
        return self.basis.num_functions

    def reset_parameters(self) -> None:
        """Initialise like an ``nn.Linear`` base branch plus small spline noise.

        The base weight gets ``nn.Linear``'s kaiming-uniform init (bound ``1/sqrt(I)``)
        and the coefficients uniform noise of standard deviation
        ``spline_init_scale / sqrt(I*K)``. With a base branch the layer therefore starts
        as a well-scaled MLP layer whose edge functions then bend away from ``b``
        (efficient-kan's recipe, which trains out of the box); without one the splines
        carry an O(1) signal from the start.
        """
        fan_in = self.in_features * self.num_basis_functions
        bound = self.spline_init_scale * math.sqrt(3.0 / fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.base_weight is not None:
            nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def packed_weight(self) -> torch.Tensor:
        """The GEMM weight ``[weight.view(O, I*K) | base_weight]``: ``(O, I*K + I)``,
        matching the layout of :func:`~lightning_kan.layers.expand_features`."""
        weight = self.weight.reshape(self.out_features, -1)
        if self.base_weight is None:
            return weight
        return torch.cat([weight, self.base_weight], dim=-1)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.in_features}), "
                f"got {tuple(x.shape)}; the last dimension must equal in_features"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        weight = self.packed_weight()
        features = expand_features(x, self.basis, self.activation, self.compiled)
        if features.dtype != weight.dtype:
            features = features.to(weight.dtype)
        return F.linear(features, weight, self.bias)

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Every edge's output ``phi_{o,i}(x_i)`` (base branch included): ``(N, O, I)``.

        Memory is ``N * O * I``; used for regularisation and plots on a few samples.
        """
        self._check_input(x)
        x = x.reshape(-1, self.in_features)
        features = expand_features(x, self.basis, self.activation).to(self.weight.dtype)
        num_values = self.in_features * self.num_basis_functions
        values = features[:, :num_values].unflatten(-1, (self.in_features, -1))
        edges = torch.einsum("nik,oik->noi", values, self.weight)
        if self.base_weight is not None:
            edges = edges + features[:, num_values:].unsqueeze(1) * self.base_weight
        return edges

    # ------------------------------------------------------------ B-spline grids
    def _spline_basis(self, action: str) -> BSplineBasis:
        if not isinstance(self.basis, BSplineBasis):
            raise TypeError(
                f"{action} needs a B-spline basis, but this layer uses "
                f"{type(self.basis).__name__}; only basis='bspline' has a movable grid"
            )
        return self.basis

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, margin: float = 0.0, grid_eps: float = 0.02) -> None:
        """Move the knots to the samples ``x (..., I)`` and refit the coefficients.

        New interior knots per feature are ``grid_eps * uniform + (1 - grid_eps) * quantiles``
        of the samples (pykan's rule; uniform spans ``[min - margin, max + margin]``);
        the coefficients are then refitted by least squares so every edge's spline
        changes as little as possible on these samples. ``grid_eps`` in ``(0, 1]``
        keeps knots strictly increasing even when samples repeat.
        """
        basis = self._spline_basis("update_grid")
        self._check_input(x)
        if not 0.0 < grid_eps <= 1.0:
            raise ValueError(f"grid_eps must be in (0, 1], got {grid_eps!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        samples = x.detach().reshape(-1, self.in_features).double()
        if samples.shape[0] < 2 or not bool(torch.isfinite(samples).all()):
            raise ValueError(
                f"update_grid needs at least 2 finite samples, got {samples.shape[0]} "
                "(check the batch for NaN/inf)"
            )
        grid_size = basis.grid_size
        ordered = samples.sort(dim=0).values
        ranks = torch.linspace(0, samples.shape[0] - 1, grid_size + 1).round().long()
        adaptive = ordered[ranks].T  # (I, G + 1)
        low, high = ordered[0] - margin, ordered[-1] + margin
        span = torch.clamp(high - low, min=1e-3)  # a constant feature still gets a grid
        centre = (high + low) / 2
        low, high = centre - span / 2, centre + span / 2
        steps = torch.arange(grid_size + 1, dtype=torch.float64) / grid_size
        uniform = low.unsqueeze(-1) + steps * (high - low).unsqueeze(-1)
        interior = grid_eps * uniform + (1.0 - grid_eps) * adaptive
        self._refit(samples, _extend_knots(interior, basis.spline_order), grid_eps == 1.0)

    @torch.no_grad()
    def refine_grid(self, grid_size: int, samples_per_interval: int | None = None) -> None:
        """Change to ``grid_size`` intervals on the same range, refitting the coefficients.

        Each old interval is split proportionally, so a uniform grid stays uniform and
        an adapted one keeps its shape. When ``grid_size`` is a multiple of the old one
        the knots are nested and the old spline is exactly representable: the refit is
        exact (to round-off). The fit uses ``samples_per_interval`` (default
        ``spline_order + 2``) points per new interval.
        """
        basis = self._spline_basis("refine_grid")
        _check_positive_int("grid_size", grid_size)
        order = basis.spline_order
        per_interval = samples_per_interval or order + 2
        _check_positive_int("samples_per_interval", per_interval)
        old_interior = basis.grid[:, order : order + basis.grid_size + 1].double().cpu()
        new_interior = _interpolate_knots(
            old_interior, torch.linspace(0, basis.grid_size, grid_size + 1)
        )
        positions = torch.linspace(0, grid_size, grid_size * per_interval + 1, dtype=torch.float64)
        samples = _interpolate_knots(new_interior, positions).T  # (N, I)
        self._refit(
            samples.to(basis.grid.device),
            _extend_knots(new_interior, order),
            basis.is_uniform,
            grid_size=grid_size,
        )

    def _refit(
        self,
        samples: torch.Tensor,
        knots: torch.Tensor,
        uniform: bool,
        grid_size: int | None = None,
    ) -> None:
        """Install ``knots`` (and a new grid size) and refit ``weight`` on ``samples``.

        Per input ``i``: ``min_C ||A_new C - A_old C_old||`` with ``A (N, K)`` basis
        matrices, solved through the ``(K, K)`` normal equations in float64 (a tiny ridge
        keeps knot intervals without samples well-posed). Shapes never form ``(N, O)``
        per input: the right-hand side is ``(A_new^T A_old) C_old``.
        """
        old_basis: BSplineBasis = self.basis  # type: ignore[assignment]
        old_values = old_basis(samples)  # (N, I, K_old), float64
        if grid_size is not None and grid_size != old_basis.grid_size:
            new_basis = BSplineBasis(self.in_features, grid_size, old_basis.spline_order).to(
                old_basis.grid
            )
        else:
            new_basis = old_basis
        new_basis.set_knots(knots.to(new_basis.grid), uniform=uniform)
        new_values = new_basis(samples)  # (N, I, K_new)
        gram = torch.einsum("nik,nil->ikl", new_values, new_values)
        cross = torch.einsum("nik,nil->ikl", new_values, old_values)
        old_coefficients = self.weight.detach().double().permute(1, 2, 0)  # (I, K_old, O)
        rhs = cross @ old_coefficients
        ridge = 1e-12 * gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1e-300)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        solution = torch.linalg.solve(gram + ridge[:, None, None] * eye, rhs)  # (I, K_new, O)
        new_weight = solution.permute(2, 0, 1).to(self.weight.dtype)
        self.basis = new_basis
        if new_weight.shape == self.weight.shape:
            self.weight.copy_(new_weight)
        else:
            self.weight = nn.Parameter(new_weight, requires_grad=self.weight.requires_grad)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        """Accept weights saved after ``refine_grid``: rebuild the grid size first."""
        grid = state_dict.get(prefix + "basis.grid")
        if isinstance(self.basis, BSplineBasis) and grid is not None:
            grid_size = grid.shape[-1] - 2 * self.basis.spline_order - 1
            if grid_size != self.basis.grid_size and grid_size > 0:
                self.basis = BSplineBasis(self.in_features, grid_size, self.basis.spline_order).to(
                    self.basis.grid
                )
                self.weight = nn.Parameter(
                    self.weight.new_empty(
                        self.out_features, self.in_features, self.basis.num_functions
                    ),
                    requires_grad=self.weight.requires_grad,
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"K={self.num_basis_functions}, base_activation={self.activation}, "
            f"bias={self.bias is not None}"
        )


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

    ``knots (I, G+1)``; ``positions`` in ``[0, G]`` (float). Integer positions return
    the knots themselves, so subdividing a grid keeps every old knot.
    """
    positions = positions.to(knots.dtype)
    lower = positions.floor().long().clamp(max=knots.shape[-1] - 2)
    fraction = positions - lower.to(knots.dtype)
    return knots[:, lower] * (1 - fraction) + knots[:, lower + 1] * fraction
