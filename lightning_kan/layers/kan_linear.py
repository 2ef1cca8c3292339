"""``KANLinear``: a KAN layer ``x (..., I) -> y (..., O)`` over any basis family.

    y_o = sum_i base_weight[o, i] * b(x_i) + sum_i sum_k weight[o, i, k] * phi_k(x_i) + bias_o

**Coefficient protocol** (see :mod:`lightning_kan.layers.coefficients`): the layer's
``coefficients`` strategy (``Dense()`` by default, ``Tucker(ranks)`` for Slim KAN,
``Generated(...)`` for MetaKAN) registers the parameters and contracts the features;

* ``weight``: the coefficient tensor ``(out_features, in_features, K)`` with modes (out,
  in, basis); a 3-D parameter with ``Dense``, computed on access otherwise;
* ``base_weight``: ``(out_features, in_features)``, or ``None`` without a base branch;
* ``bias``: ``(out_features,)`` or ``None``; ``basis``: the :class:`~lightning_kan.bases.Basis`.

B-spline layers also get ``update_grid``/``refine_grid`` from
:class:`~lightning_kan.layers.grid.SplineGridMixin`.

The dense forward reads ``self.weight`` once, so a ``torch.nn.utils.parametrize``
parametrisation of ``weight`` (an adapter) is honoured without changes here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lightning_kan.bases import Basis
from lightning_kan.layers.base import KANLayer
from lightning_kan.layers.coefficients import Coefficients
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.masks import restore_edge_masks
from lightning_kan.layers.symbolic import SymbolicEdges, symbolic_edges

__all__ = ["KANLinear"]


class KANLinear(KANLayer):
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
        coefficients: str | Coefficients | None = "dense",
        coefficients_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._build_parameters(
            in_features,
            out_features,
            in_features,
            (),
            basis,
            basis_kwargs,
            base_activation,
            bias,
            spline_init_scale,
            compiled,
            coefficients,
            coefficients_kwargs,
        )
        #: symbolic edges ``c * f(a * x + b) + d`` (:class:`SymbolicEdges`), or ``None``
        self.symbolic: SymbolicEdges | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also a whole layer saved before symbolic edges existed (none)."""
        if "symbolic" not in state.get("_modules", {}):
            state.setdefault("symbolic", None)
        super().__setstate__(state)

    def packed_weight(self) -> torch.Tensor:
        """The GEMM weight ``[weight.view(O, I*K) | base_weight]``: ``(O, I*K + I)``,
        matching the layout of :func:`~lightning_kan.layers.expand_features`."""
        return self.coefficients.packed_weight(self)

    def _check_input(self, x: torch.Tensor) -> None:
        self._check_input_tensor(x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.in_features}), "
                f"got {tuple(map(int, x.shape))}; the last dimension must equal in_features"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        y = self.coefficients.linear_from_inputs(self, x)
        if y is None:
            features = expand_features(x, self.basis, self.activation, self.compiled)
            y = self.coefficients.linear(self, features)
        return y if self.symbolic is None else y + self.symbolic(x).to(y.dtype)

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Every edge's output ``phi_{o,i}(x_i)`` (base branch included): ``(N, O, I)``.

        Memory is ``N * O * I``; used for regularisation and plots on a few samples.
        """
        self._check_input(x)
        x = x.reshape(-1, self.in_features)
        weight, base_weight = self._coefficients()
        features = expand_features(x, self.basis, self.activation).to(weight.dtype)
        num_values = self.in_features * self.num_basis_functions
        values = features[:, :num_values].unflatten(-1, (self.in_features, -1))
        edges = torch.einsum("nik,oik->noi", values, weight)
        if base_weight is not None:
            edges = edges + features[:, num_values:].unsqueeze(1) * base_weight
        if self.symbolic is not None:
            edges = edges + self.symbolic.edge_values(x).to(edges.dtype)
        return edges

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A state dict of a layer with cut edges (``EdgeMask``) or symbolic edges loads
        into a fresh one (the mask and the :class:`SymbolicEdges` are installed first)."""
        restore_edge_masks(self, state_dict, prefix)
        if any(key.startswith(f"{prefix}symbolic.") for key in state_dict):
            symbolic_edges(self)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------- B-spline grids (SplineGridMixin)
    def _grid_samples(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return x.reshape(-1, self.in_features)

    def _map_coefficients(self, refit: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ikl,oil->oik", refit, self.weight.detach().to(refit.dtype))

    def _layout_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"K={self.num_basis_functions}, base_activation={self.activation}, "
            f"bias={self.bias is not None}"
        )
