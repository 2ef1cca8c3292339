"""``ConvKAN``: an image classifier built from KAN convolutions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from lightning_kan.bases.base import _check_positive_int, is_finite_number
from lightning_kan.layers import KANConv2d, KANLinear
from lightning_kan.layers.coefficients import Coefficients
from lightning_kan.nets.kan import check_sizes, per_layer_coefficients
from lightning_kan.utils import count_parameters

__all__ = ["CONV_KAN_LAYOUTS", "ConvKAN"]

#: Channel widths (and pooling period) of the ConvKANs in the MetaKAN paper.
CONV_KAN_LAYOUTS: dict[str, dict[str, Any]] = {
    "metakan-4": {"channels": (32, 64, 128, 256), "pool_every": 1},
    "metakan-8": {"channels": (16, 32, 64, 128, 256, 256, 512, 512), "pool_every": 2},
}

ConvNorm = Literal["batch", "instance", "group"]


class ConvKAN(nn.Module):
    """KAN convolution blocks, global average pooling and a KAN (or linear) head.

    Each block is ``KANConv2d(kernel_size, padding="same") -> norm``; a 2x2 pooling
    follows every ``pool_every``-th block while the feature map is at least 2 wide.

    Args:
        in_channels: image channels (1 for digits/MNIST, 3 for CIFAR-10).
        num_classes: outputs of the head.
        channels: output channels of the blocks, e.g. ``(16, 32)`` for 8x8 digits or a
            layout from :data:`CONV_KAN_LAYOUTS` via :meth:`from_layout`.
        kernel_size: convolution kernel size.
        basis, basis_kwargs, base_activation, compiled: as in ``KANConv2d``.
        norm: ``"batch"``, ``"instance"``, ``"group"`` (8 groups or fewer) or ``None``.
        pool: ``"max"``, ``"avg"`` or ``None``; ``pool_every``: pooling period in blocks.
        head: ``"kan"`` (a ``KANLinear``) or ``"linear"``.
        dropout: dropout before the head.
        coefficients, coefficients_kwargs: the coefficient family of the convolutions
            and the KAN head (as :class:`~lightning_kan.nets.KAN`; a list has one entry
            per block, then one for a KAN head). Tucker convolutions need ``groups=1``.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        basis: str = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        norm: ConvNorm | None = "batch",
        pool: Literal["max", "avg"] | None = "max",
        pool_every: int = 1,
        head: Literal["kan", "linear"] = "kan",
        dropout: float = 0.0,
        compiled: bool = False,
        coefficients: str | Coefficients | Sequence[Coefficients] | None = "dense",
        coefficients_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if in_channels is None or num_classes is None:
            raise ValueError(
                f"ConvKAN needs in_channels and num_classes, got {in_channels!r} and "
                f"{num_classes!r} (the CLI fills both in from the data module)"
            )
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("num_classes", num_classes)
        channels = check_sizes("channels", channels, "(16, 32)")
        if not channels:
            raise ValueError("channels must list at least one block width, e.g. (16, 32), got []")
        if norm not in (None, "batch", "instance", "group"):
            raise ValueError(f"norm must be 'batch', 'instance', 'group' or None, got {norm!r}")
        if pool not in (None, "max", "avg"):
            raise ValueError(f"pool must be 'max', 'avg' or None, got {pool!r}")
        if head not in ("kan", "linear"):
            raise ValueError(f"head must be 'kan' or 'linear', got {head!r}")
        if not isinstance(pool_every, int) or pool_every < 1:
            raise ValueError(f"pool_every must be a positive integer, got {pool_every!r}")
        if not is_finite_number(dropout) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        families = per_layer_coefficients(
            coefficients, coefficients_kwargs, len(channels) + (head == "kan")
        )
        self.pool = pool
        self.pool_every = pool_every
        self.blocks = nn.ModuleList()
        options = {
            "basis": basis,
            "basis_kwargs": basis_kwargs,
            "base_activation": base_activation,
            "compiled": compiled,
        }
        fan_ins = [in_channels, *channels]
        for fan_in, fan_out, family in zip(fan_ins, channels, families, strict=False):
            conv = KANConv2d(
                fan_in,
                fan_out,
                kernel_size,
                padding="same",
                bias=norm is None,
                coefficients=family,
                **options,
            )
            self.blocks.append(nn.Sequential(conv, _make_norm(norm, fan_out)))
        self.dropout = nn.Dropout(dropout)
        if head == "kan":
            self.head: nn.Module = KANLinear(
                channels[-1], num_classes, coefficients=families[-1], **options
            )
        else:
            self.head = nn.Linear(channels[-1], num_classes)

    @classmethod
    def from_layout(cls, layout: str, **kwargs: Any) -> ConvKAN:
        """A ConvKAN with a named layout (``metakan-4``, ``metakan-8``); kwargs override."""
        if layout not in CONV_KAN_LAYOUTS:
            raise ValueError(
                f"unknown layout {layout!r}; expected one of {sorted(CONV_KAN_LAYOUTS)}"
            )
        return cls(**{**CONV_KAN_LAYOUTS[layout], **kwargs})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, channels[-1])`` before the head."""
        for index, block in enumerate(self.blocks):
            x = block(x)
            if self.pool and (index + 1) % self.pool_every == 0 and min(x.shape[-2:]) >= 2:
                pool = nn.functional.max_pool2d if self.pool == "max" else nn.functional.avg_pool2d
                x = pool(x, 2)
        return x.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def num_parameters(self, trainable_only: bool = True) -> int:
        return count_parameters(self, trainable_only)


def _make_norm(norm: ConvNorm | None, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()
