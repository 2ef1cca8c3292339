"""``SlimKAN`` / ``SlimConvKAN``: presets of KAN / ConvKAN with
:class:`~lightning_kan.layers.slim.Tucker` coefficients."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from lightning_kan.layers.slim import SlimKANLinear, Tucker
from lightning_kan.nets.conv_kan import ConvKAN
from lightning_kan.nets.kan import KAN, resolve_widths

__all__ = ["SlimConvKAN", "SlimKAN"]

LayerRanks = int | Sequence[int]


class SlimKAN(KAN):
    """A KAN whose layers store their ``(O, I, K)`` coefficients as Tucker factors.

    A preset of :class:`KAN` with ``coefficients=Tucker(ranks)``. Its own option:

    Args:
        ranks: Tucker ranks (out, in, basis) of every layer: one int (clipped to each
            mode's size), one ``(r1, r2, r3)`` for all layers, or a list with one entry
            (int or triple) per layer.

    Every other option (``widths``, ``basis``, ``basis_kwargs``, ``base_activation``,
    ``bias``, ``norm``, ``spline_init_scale``, ``compiled``, ``in_features``,
    ``out_features``, ``mult_nodes``) is :class:`KAN`'s, forwarded unchanged; configs and
    ``--print_config`` list them with their types and defaults (jsonargparse follows the
    ``**kwargs`` into ``KAN.__init__``).

    Trainable parameters per layer: ``r1*r2*r3 + O*r1 + I*r2 + K*r3`` spline factors plus
    the base weight ``O*I`` (with a base branch) and bias ``O`` (if ``bias``).

    :meth:`from_dense` compresses a trained :class:`KAN` (HOSVD, optionally HOOI).
    """

    def __init__(
        self,
        widths: Sequence[int],
        ranks: int | Sequence[int] | Sequence[LayerRanks] = 4,
        **kwargs: Any,
    ) -> None:
        if _is_per_layer(ranks):  # checked here, so that the error names ``ranks``
            sizes = resolve_widths(widths, kwargs.get("in_features"), kwargs.get("out_features"))
            num_layers = len(sizes) - 1
            coefficients = [Tucker(_layer_ranks(ranks, i, num_layers)) for i in range(num_layers)]
        else:
            coefficients = Tucker(_layer_ranks(ranks, 0, 1))
        # the preset fixes the family: neither coefficient option is offered to its users
        super().__init__(widths, coefficients=coefficients, coefficients_kwargs=None, **kwargs)
        #: relative Frobenius error of each layer's coefficients after from_dense
        self.compression_errors: list[float] | None = None

    @property
    def ranks(self) -> list[tuple[int, ...]]:
        """Each layer's ``(r1, r2, r3)``."""
        return [layer.ranks for layer in self.layers]

    @classmethod
    def from_dense(
        cls,
        kan: KAN,
        ranks: int | Sequence[int] | Sequence[LayerRanks] | None = None,
        energy: float | None = None,
        hooi_iters: int = 0,
    ) -> SlimKAN:
        """Compress a trained :class:`KAN` layer by layer (truncated HOSVD + HOOI sweeps).

        Give ``ranks`` (as in the constructor) or ``energy`` (per-mode ranks keeping that
        fraction of each unfolding's energy). Bases (moved grids included), base
        weights, biases and norms are copied. The relative Frobenius error of every
        layer's coefficients is stored in ``compression_errors`` of the result; with
        full ranks the network computes the same function as ``kan`` (to round-off).
        """
        if type(kan) is not KAN:
            raise TypeError(
                f"from_dense needs a dense lightning_kan.nets.KAN, got {type(kan).__name__}"
            )
        num_layers = len(kan.layers)
        converted = [
            SlimKANLinear.from_dense(
                layer,
                ranks=None if ranks is None else _layer_ranks(ranks, index, num_layers),
                energy=energy,
                hooi_iters=hooi_iters,
            )
            for index, layer in enumerate(kan.layers)
        ]
        slim = cls(kan.widths, ranks=1, mult_nodes=kan.mult_nodes)  # placeholder layers
        slim.layers = nn.ModuleList(layer for layer, _ in converted)
        slim.norms = copy.deepcopy(kan.norms)
        slim.compression_errors = [error for _, error in converted]
        return slim


def _is_per_layer(ranks: Any) -> bool:
    """Whether ``ranks`` lists one entry per layer (not one int or one triple)."""
    return (
        isinstance(ranks, Sequence)
        and not isinstance(ranks, str | bytes)
        and not (ranks and all(isinstance(r, int) for r in ranks))
    )


def _layer_ranks(ranks: Any, index: int, num_layers: int) -> LayerRanks:
    """Layer ``index``'s entry of a ``ranks`` option (see :class:`SlimKAN`)."""
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        return ranks
    if isinstance(ranks, bool | str | bytes) or not isinstance(ranks, Sequence):
        raise TypeError(
            f"ranks must be a positive int, one (r1, r2, r3) for all layers, or a list with "
            f"one entry per layer, got {type(ranks).__name__} {ranks!r}"
        )
    ranks = list(ranks)
    if ranks and all(isinstance(r, int) for r in ranks):
        return tuple(ranks)  # one triple for every layer
    if len(ranks) != num_layers:
        raise ValueError(
            f"ranks lists {len(ranks)} entries but the network has {num_layers} layers; "
            "give one int, one (r1, r2, r3) for all layers, or one entry per layer"
        )
    entry = ranks[index]
    return entry if isinstance(entry, int) else tuple(entry)


class SlimConvKAN(ConvKAN):
    """A :class:`ConvKAN` of :class:`~lightning_kan.layers.SlimKANConv2d` blocks and a
    :class:`~lightning_kan.layers.SlimKANLinear` KAN head.

    A preset of :class:`ConvKAN` with ``coefficients=Tucker(ranks)``. Its own option:

    Args:
        ranks: Tucker ranks (out, in, basis) of every KAN layer: one int (clipped to each
            mode's size) or one ``(r1, r2, r3)``; the kernel modes stay whole.

    Every other option is :class:`ConvKAN`'s, forwarded unchanged (``in_channels``,
    ``num_classes`` and ``channels`` are named here only to keep their positions before
    ``ranks``); configs and ``--print_config`` list them all with their types and
    defaults.
    """

    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        channels: Sequence[int] = (16, 32),
        ranks: int | Sequence[int] = 8,
        **kwargs: Any,
    ) -> None:
        coefficients = Tucker(_layer_ranks(ranks, 0, 1))
        super().__init__(
            in_channels,
            num_classes,
            channels,
            coefficients=coefficients,
            coefficients_kwargs=None,  # fixed by the preset, as in SlimKAN
            **kwargs,
        )
