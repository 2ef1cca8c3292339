"""``KAN``: a stack of ``KANLinear`` layers with grid maintenance and regularisation.

The coefficient family of the layers is a strategy (``coefficients="dense"``,
``"tucker"``, ``"generated"``, an instance, or one per layer); ``SlimKAN`` and
``MetaKAN`` are presets of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any, Literal

import torch
from torch import nn

from lightning_kan.bases import Basis, InputNormBasis, build_basis
from lightning_kan.bases.base import _check_positive_int, basis_options, is_finite_number
from lightning_kan.layers import KANLinear
from lightning_kan.layers.base import check_input_tensor
from lightning_kan.layers.coefficients import Coefficients, build_coefficients
from lightning_kan.layers.jet import Jet
from lightning_kan.utils import count_parameters

__all__ = ["KAN"]

Norm = Literal["layer", "batch", "fastkan"]


class KAN(nn.Module):
    """A Kolmogorov-Arnold network ``widths[0] -> widths[1] -> ... -> widths[-1]``.

    Args:
        widths: layer widths, input first (at least two entries, all positive). When
            ``in_features``/``out_features`` are given, ``widths`` lists only the
            widths they leave out (the hidden ones): ``KAN([5], in_features=2,
            out_features=1)`` is ``KAN([2, 5, 1])``. The CLI links both from the data
            module, so configs list hidden widths only.
        basis: basis family name (or registered custom name) for every layer.
        basis_kwargs: options of that basis, e.g. ``{"grid_size": 5, "spline_order": 3}``.
        base_activation: base branch of every layer (see :class:`KANLinear`).
        bias: biases in every layer.
        norm: ``"layer"`` (LayerNorm) or ``"batch"`` normalisation of every hidden
            layer's input (between layers), ``"fastkan"`` (FastKAN's exact layout: a
            LayerNorm on every layer's spline-branch input, the first included, while the
            base branch sees the raw input; each basis becomes an
            :class:`~lightning_kan.bases.InputNormBasis`), or ``None``.
        spline_init_scale, compiled: see :class:`KANLinear`.
        in_features, out_features: input and output widths, if not in ``widths``.
        coefficients: the layers' coefficient family: a registered name (``dense``,
            ``tucker``, ``generated``, your own), a
            :class:`~lightning_kan.layers.coefficients.Coefficients` instance (used by
            every layer; it holds configuration only) or a list with one per layer.
        coefficients_kwargs: options of a named family, e.g. ``{"ranks": 4}``.
        mult_nodes: multiplication nodes (pykan 0.2's MultKAN, arity 2) of every hidden
            layer (an int) or of each hidden layer (a list of ``len(widths) - 2`` ints).
            ``widths[l]`` counts all nodes of boundary ``l``; with ``m`` of them mult
            nodes, ``layers[l-1]`` has ``widths[l] + m`` outputs ("subnodes"): the first
            ``s = widths[l] - m`` are sum nodes, and mult node ``j`` is the product of
            subnodes ``s + 2j`` and ``s + 2j + 1`` (:meth:`subnodes`,
            :meth:`combine_nodes`).

    Shapes: ``x (..., widths[0]) -> (..., widths[-1])``.
    """

    def __init__(
        self,
        widths: Sequence[int],
        basis: str = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        bias: bool = True,
        norm: Norm | None = None,
        spline_init_scale: float | None = None,
        compiled: bool = False,
        in_features: int | None = None,
        out_features: int | None = None,
        coefficients: str | Coefficients | Sequence[Coefficients] | None = "dense",
        coefficients_kwargs: dict[str, Any] | None = None,
        mult_nodes: int | Sequence[int] = 0,
    ) -> None:
        super().__init__()
        widths = resolve_widths(widths, in_features, out_features)
        #: number of multiplication nodes of each hidden boundary ``1 .. L-1``
        self.mult_nodes = resolve_mult_nodes(mult_nodes, widths)
        families = per_layer_coefficients(coefficients, coefficients_kwargs, len(widths) - 1)
        if isinstance(basis, Basis):
            raise TypeError(
                "KAN builds one basis per layer: pass the basis by name (and basis_kwargs), "
                "or stack KANLinear layers yourself to use ready instances"
            )
        if norm not in (None, "layer", "batch", "fastkan"):
            raise ValueError(
                f"norm must be 'layer', 'batch' or None (between layers), or 'fastkan' (a "
                f"LayerNorm on every layer's spline-branch input), got {norm!r}"
            )
        self.widths = widths
        options = {
            "basis": basis,
            "basis_kwargs": basis_kwargs,
            "base_activation": base_activation,
            "bias": bias,
            "spline_init_scale": spline_init_scale,
            "compiled": compiled,
        }
        mults = [*self.mult_nodes, 0]  # the output boundary has sum nodes only
        outputs = [width + mult for width, mult in zip(widths[1:], mults, strict=True)]
        self.layers = nn.ModuleList(
            KANLinear(fan_in, fan_out, coefficients=family, **_layer_basis(norm, fan_in, options))
            for fan_in, fan_out, family in zip(widths[:-1], outputs, families, strict=True)
        )
        self.norms = nn.ModuleList(_make_norm(norm, width) for width in widths[1:-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also a whole KAN saved before ``mult_nodes`` existed (none)."""
        state.setdefault("mult_nodes", [0] * (len(state["widths"]) - 2))
        super().__setstate__(state)

    def _check_input(self, x: torch.Tensor) -> None:
        """A real floating-point tensor ``(..., widths[0])``, or a clear error."""
        check_input_tensor(x, type(self).__name__)
        if x.dim() == 0 or x.shape[-1] != self.widths[0]:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (..., {self.widths[0]}) "
                f"(widths[0] = {self.widths[0]} features), got {tuple(x.shape)}; pass "
                f"{self.widths[0]} features in the last dimension or build the network "
                f"with widths[0] = {x.shape[-1] if x.dim() else 1}"
            )

    def _check_boundary(self, boundary: object) -> int:
        """``boundary`` if it is a boundary after a layer (``1 .. L``), else an error."""
        last = len(self.layers)
        if (
            isinstance(boundary, bool)
            or not isinstance(boundary, Integral)
            or not (1 <= boundary <= last)
        ):
            raise ValueError(
                f"boundary={boundary!r} is not a node boundary after a layer of this "
                f"{type(self).__name__} (widths {self.widths}); boundary l is the output of "
                f"layers[l-1], so pass an int from 1 to {last} (the hidden boundaries are 1 "
                f"to {last - 1}, {last} is the output)"
            )
        return int(boundary)

    def _num_mult(self, boundary: int) -> int:
        """Mult nodes of boundary ``boundary`` (0 at the output boundary)."""
        return self.mult_nodes[boundary - 1] if boundary < len(self.layers) else 0

    def subnodes(self, boundary: int) -> list[tuple[int, ...]]:
        """For each node of ``boundary`` (``1 .. L``), the outputs of ``layers[boundary-1]``
        it reads: ``(k,)`` for sum node ``k``, ``(s + 2j, s + 2j + 1)`` for mult node ``j``
        (``s`` sum nodes). The output boundary ``L`` has sum nodes only."""
        boundary = self._check_boundary(boundary)
        mult = self._num_mult(boundary)
        sums = self.widths[boundary] - mult
        return [(k,) for k in range(sums)] + [(sums + 2 * j, sums + 2 * j + 1) for j in range(mult)]

    def combine_nodes(self, boundary: int, y: torch.Tensor) -> torch.Tensor:
        """The nodes ``(..., widths[boundary])`` of ``boundary`` from the subnodes ``y (...,
        widths[boundary] + mult_nodes)`` that ``layers[boundary-1]`` computes: sum nodes are
        copied, each mult node is the product of its two subnodes (:meth:`subnodes`)."""
        boundary = self._check_boundary(boundary)
        expected = self.widths[boundary] + self._num_mult(boundary)
        if y.dim() == 0 or y.shape[-1] != expected:
            raise ValueError(
                f"combine_nodes({boundary}, y) needs the {expected} outputs of "
                f"layers[{boundary - 1}] in the last dimension of y, got y of shape "
                f"{tuple(y.shape)}; pass layers[{boundary - 1}](x) for that layer's input x"
            )
        return self._combine(boundary, y)

    def _combine(self, boundary: int, y: torch.Tensor | Jet, cat=torch.cat) -> torch.Tensor | Jet:
        """:meth:`combine_nodes` without the checks (``y`` unchanged without mult nodes);
        ``cat=Jet.cat`` combines a :class:`~lightning_kan.layers.jet.Jet` (product rule)."""
        mult = self._num_mult(boundary)
        if mult == 0:
            return y
        sums = self.widths[boundary] - mult
        return cat([y[..., :sums], y[..., sums::2] * y[..., sums + 1 :: 2]], dim=-1)

    def _layer_inputs(self, x: torch.Tensor):
        """Yield ``(layer, input of that layer)`` in order; the last output is not yielded."""
        self._check_input(x)
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.norms[index - 1](self._combine(index, x))
            yield layer, x
            x = layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.norms[index - 1](self._combine(index, x))
            x = layer(x)
        return x

    #: the submodules :meth:`forward_jet` passes a jet through (``layers.jet.jet_gaps``)
    jet_children = ("layers", "norms")

    def forward_jet(self, jet: Jet, propagate: Callable[[nn.Module, Jet], Jet]) -> Jet:
        """:meth:`forward` on a :class:`~lightning_kan.layers.jet.Jet` (value, input
        gradient, second derivatives): the layers, mult nodes and norms in order."""
        self._check_input(jet.value)
        for index, layer in enumerate(self.layers):
            if index > 0:
                jet = propagate(self.norms[index - 1], self._combine(index, jet, cat=Jet.cat))
            jet = propagate(layer, jet)
        return jet

    def extra_repr(self) -> str:
        """``mult_nodes=[...]`` when there are any (the layers show subnode widths)."""
        return f"mult_nodes={self.mult_nodes}" if any(self.mult_nodes) else ""

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return count_parameters(self, trainable_only)

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, margin: float = 0.0, grid_eps: float = 0.02) -> None:
        """Update every B-spline layer's grid to the activations that ``x`` produces.

        Layers are updated in order, each on the input it sees after the layers before
        it were updated (as pykan does). See :meth:`KANLinear.update_grid`.
        """
        for layer, layer_input in self._layer_inputs(x):
            layer.update_grid(layer_input, margin=margin, grid_eps=grid_eps)

    @torch.no_grad()
    def refine_grid(self, grid_size: int) -> None:
        """Move every B-spline layer to ``grid_size`` intervals (``KANLinear.refine_grid``:
        exact onto a multiple of the current size, otherwise a ``GridRefitWarning``)."""
        for layer in self.layers:
            layer.refine_grid(grid_size)

    def edge_magnitudes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Mean ``|phi_{o,i}(x_i)|`` over the samples, one ``(O, I)`` matrix per layer."""
        return [
            layer.edge_activations(layer_input).abs().mean(0)
            for layer, layer_input in self._layer_inputs(x)
        ]

    def regularization(
        self,
        x: torch.Tensor,
        l1: float = 1.0,
        entropy: float = 2.0,
        max_samples: int | None = 256,
    ) -> torch.Tensor:
        """pykan's sparsity penalty: ``sum_l l1 * |A_l|_1 + entropy * H(A_l / |A_l|_1)``.

        ``A_l (O, I)`` are the edge magnitudes of layer ``l`` on ``x`` (at most
        ``max_samples`` rows, to bound the ``N * O * I`` memory). Add it, times a small
        weight, to the loss to make edges prunable. ``l1`` and ``entropy`` must be finite
        and >= 0 (a negative weight would reward dense, large edges).
        """
        _check_penalty_weight("l1", l1)
        _check_penalty_weight("entropy", entropy)
        if max_samples is not None:
            _check_positive_int("max_samples", max_samples)
            x = x.reshape(-1, x.shape[-1])[:max_samples]
        total = x.new_zeros(())
        for magnitudes in self.edge_magnitudes(x):
            norm_l1 = magnitudes.sum()
            probabilities = magnitudes / (norm_l1 + 1e-12)
            neg_entropy = (probabilities * torch.log(probabilities + 1e-12)).sum()
            total = total + l1 * norm_l1 - entropy * neg_entropy
        return total


def per_layer_coefficients(
    coefficients: str | Coefficients | Sequence[Coefficients] | None,
    kwargs: dict[str, Any] | None,
    num_layers: int,
) -> list[Coefficients]:
    """One strategy per layer: a list is checked for length, anything else is built once
    (:func:`~lightning_kan.layers.coefficients.build_coefficients`) and shared."""
    if isinstance(coefficients, list | tuple):
        if len(coefficients) != num_layers:
            raise ValueError(
                f"coefficients lists {len(coefficients)} entries but the network has "
                f"{num_layers} layers; give one name or instance for all layers, or one "
                "per layer"
            )
        return [build_coefficients(family, kwargs) for family in coefficients]
    return [build_coefficients(coefficients, kwargs)] * num_layers


def _check_penalty_weight(name: str, value: object) -> None:
    if not is_finite_number(value) or value < 0:  # type: ignore[operator]
        raise ValueError(
            f"regularization weight {name} must be a finite number >= 0, got {value!r}; "
            "use 0 to switch that term off"
        )


def check_sizes(name: str, values: object, example: str) -> list[int]:
    """``values`` (layer widths or channels) as a list of positive ints (NumPy integers
    accepted), or an error naming ``name``, the bad entry and its position; ``example``
    shows a valid value."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise TypeError(
            f"{name} must be a list of positive integers such as {example}, got "
            f"{type(values).__name__} {values!r}"
        )
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(
                f"{name}={list(values)!r} holds {value!r} at position {position}; every "
                f"entry is a layer size and must be a positive integer, e.g. {example}"
            )
    return [int(value) for value in values]


def resolve_widths(
    widths: Sequence[int], in_features: int | None = None, out_features: int | None = None
) -> list[int]:
    """``widths`` with ``in_features`` prepended and ``out_features`` appended if given;
    at least two entries, all positive integers (each error names the argument)."""
    hidden = check_sizes(
        "widths", widths, "[2, 5, 1] (or the hidden widths [5] with in_features/out_features)"
    )
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if value is not None:
            _check_positive_int(name, value)
    resolved = [
        *([in_features] if in_features is not None else []),
        *hidden,
        *([out_features] if out_features is not None else []),
    ]
    if len(resolved) < 2:
        raise ValueError(
            f"widths must list at least an input and an output width, got {resolved!r}; "
            "e.g. widths=[2, 5, 1], or widths=[5] with in_features=2 and out_features=1"
        )
    return resolved


def resolve_mult_nodes(mult_nodes: object, widths: Sequence[int]) -> list[int]:
    """``mult_nodes`` (one int for every hidden layer, or one per hidden layer) as a list of
    ``len(widths) - 2`` ints, each from 0 to its boundary's width, or an error."""
    hidden = len(widths) - 2
    usage = (
        f"give one int >= 0 for every hidden layer or a list of {hidden} ints (one per "
        f"hidden layer, each at most that layer's width in widths={list(widths)}), e.g. "
        "mult_nodes=0 for none"
    )
    if isinstance(mult_nodes, Integral) and not isinstance(mult_nodes, bool):
        if mult_nodes != 0 and hidden == 0:
            raise ValueError(
                f"mult_nodes={mult_nodes!r} but widths={list(widths)} has no hidden layer, "
                "and only hidden nodes can multiply; add a hidden layer or use mult_nodes=0"
            )
        counts: list[object] = [mult_nodes] * hidden
    elif isinstance(mult_nodes, Sequence) and not isinstance(mult_nodes, str | bytes):
        counts = list(mult_nodes)
        if len(counts) != hidden:
            raise ValueError(
                f"mult_nodes={counts!r} has {len(counts)} entries but widths="
                f"{list(widths)} has {hidden} hidden layers; {usage}"
            )
    else:
        raise TypeError(
            f"mult_nodes must be an int or a list of ints, got {type(mult_nodes).__name__} "
            f"{mult_nodes!r}; {usage}"
        )
    for position, (count, width) in enumerate(zip(counts, widths[1:-1], strict=True)):
        if isinstance(count, bool) or not isinstance(count, Integral) or not 0 <= count <= width:
            raise ValueError(
                f"mult_nodes={mult_nodes!r} asks for {count!r} multiplication nodes in hidden "
                f"layer {position + 1}, which has widths[{position + 1}] = {width} nodes in "
                f"all (sum and mult nodes); each entry must be an int from 0 to that width: "
                f"{usage}"
            )
    return [int(count) for count in counts]  # type: ignore[call-overload]


def _layer_basis(norm: Norm | None, fan_in: int, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with, for ``norm="fastkan"``, the basis built here and wrapped in an
    :class:`InputNormBasis` (LayerNorm on the spline branch's input only)."""
    if norm != "fastkan":
        return options
    inner = build_basis(options["basis"], fan_in, **basis_options(options["basis_kwargs"]))
    return {**options, "basis": InputNormBasis(inner), "basis_kwargs": None}


def _make_norm(norm: Norm | None, width: int) -> nn.Module:
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "batch":
        return nn.BatchNorm1d(width)
    return nn.Identity()
