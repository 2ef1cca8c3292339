"""KAN convolutions ``KANConv1d/2d/3d``: a learnable function on every (out, in, tap) edge.

    y[o] = sum_{c, tap} base_weight[o, c, tap] * b(x[c, at tap])
         + sum_{c, tap, k} weight[o, c, k, tap] * phi_k(x[c, at tap])      (+ bias[o])

Every input value is expanded once into its ``K`` basis values and ``b(x)`` (the same
:func:`~lightning_kan.layers.expand_features` as ``KANLinear``), giving ``C*K + C``
channels, and one native ``conv{1,2,3}d`` contracts them with the packed weight, so a
KAN convolution runs at the speed of a convolution over ``C*(K+1)`` channels.

**Coefficient protocol** (as ``KANLinear``, with the kernel appended; the layer's
``coefficients`` strategy registers the parameters and does the convolution):

* ``weight``: ``(out_channels, in_channels // groups, K, *kernel_size)``, modes
  (out, in, basis, *kernel);
* ``base_weight``: ``(out_channels, in_channels // groups, *kernel_size)`` or ``None``;
* ``bias``: ``(out_channels,)`` or ``None``; ``basis`` with ``in_features = in_channels``.

Zero padding pads the *expanded* features, so a padded tap contributes nothing, as
zero padding does in ``nn.Conv2d`` (not ``phi(0)``). Other padding modes pad the input
before the expansion (reflecting ``x`` and then expanding is the same as expanding and
then reflecting, because the expansion is elementwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lightning_kan.bases import Basis
from lightning_kan.bases.base import _check_positive_int
from lightning_kan.layers.base import KANLayer
from lightning_kan.layers.coefficients import Coefficients
from lightning_kan.layers.expansion import expand_features

__all__ = ["KANConv1d", "KANConv2d", "KANConv3d", "KANConvNd"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(name: str, value: int | Sequence[int], ndim: int, minimum: int) -> tuple[int, ...]:
    values = (value,) * ndim if isinstance(value, int) else tuple(value)
    if len(values) != ndim or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values
    ):
        raise ValueError(
            f"{name} must be an integer >= {minimum} or a tuple of {ndim} such integers, "
            f"got {value!r}"
        )
    return values


class KANConvNd(KANLayer):
    """Shared implementation of :class:`KANConv1d`, :class:`KANConv2d`, :class:`KANConv3d`
    (``ndim`` spatial dims); the arguments are ``nn.Conv2d``'s plus :class:`KANLinear`'s
    ``basis``, ``basis_kwargs``, ``base_activation``, ``spline_init_scale``, ``compiled``,
    ``coefficients`` and ``coefficients_kwargs``."""

    ndim: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        basis: str | Basis = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        spline_init_scale: float | None = None,
        compiled: bool = False,
        coefficients: str | Coefficients | None = "dense",
        coefficients_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("out_channels", out_channels)
        _check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        self.kernel_size = _tuple("kernel_size", kernel_size, self.ndim, 1)
        self.stride = _tuple("stride", stride, self.ndim, 1)
        self.dilation = _tuple("dilation", dilation, self.ndim, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid' or integers, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1 (as in nn.Conv2d)")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = _tuple("padding", padding, self.ndim, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if padding_mode != "zeros" and isinstance(self.padding, str):
            raise ValueError(f"padding_mode={padding_mode!r} needs integer padding")
        self.padding_mode = padding_mode
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self._build_parameters(
            in_channels,
            out_channels,
            in_channels // groups,
            self.kernel_size,
            basis,
            basis_kwargs,
            base_activation,
            bias,
            spline_init_scale,
            compiled,
            coefficients,
            coefficients_kwargs,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        self._check_input_tensor(x)
        if x.dim() not in (self.ndim + 1, self.ndim + 2) or x.shape[-self.ndim - 1] != (
            self.in_channels
        ):
            spatial = ("L", "H, W", "D, H, W")[self.ndim - 1]
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (N, {self.in_channels}, "
                f"{spatial}) or ({self.in_channels}, {spatial}), got {tuple(map(int, x.shape))}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        unbatched = x.dim() == self.ndim + 1
        if unbatched:
            x = x.unsqueeze(0)
        padding = self.padding
        if self.padding_mode != "zeros":
            pads = [p for p in reversed(self.padding) for _ in range(2)]  # type: ignore[arg-type]
            x = F.pad(x, pads, mode=self.padding_mode)
            padding = 0
        # (N, C, *S) -> channels-last expansion (N, *S, C*K + C) -> channels-first view
        # non-negative dims: the legacy ONNX exporter turns movedim(-1, 1) into a bad Transpose
        last = x.dim() - 1
        features = expand_features(x.movedim(1, last), self.basis, self.activation, self.compiled)
        features = features.movedim(last, 1)
        options = {"stride": self.stride, "padding": padding, "dilation": self.dilation}
        y = self.coefficients.convolve(self, features, options)
        return y.squeeze(0) if unbatched else y

    # ------------------------------------------------- B-spline grids (SplineGridMixin)
    def _grid_samples(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return x.movedim(-self.ndim - 1, -1).reshape(-1, self.in_channels)

    def _map_coefficients(self, refit: torch.Tensor) -> torch.Tensor:
        # weight (O, C_g, K, *kernel): input channel of (o, c) is group(o) * C_g + c
        groups, group_in = self.groups, self.weight.shape[1]
        weight = self.weight.detach().to(refit.dtype)
        weight = weight.reshape(groups, self.out_channels // groups, group_in, weight.shape[2], -1)
        refit = refit.reshape(groups, group_in, *refit.shape[1:])
        mapped = torch.einsum("gckl,goclt->gockt", refit, weight)
        return mapped.reshape(self.out_channels, group_in, refit.shape[-2], *self.kernel_size)

    def _layout_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, K={self.num_basis_functions}, "
            f"base_activation={self.activation}, bias={self.bias is not None}"
        )


class KANConv1d(KANConvNd):
    """1-D KAN convolution: ``(N, C_in, L) -> (N, C_out, L_out)``; see the module docstring."""

    ndim = 1


class KANConv2d(KANConvNd):
    """2-D KAN convolution: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``."""

    ndim = 2


class KANConv3d(KANConvNd):
    """3-D KAN convolution: ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``."""

    ndim = 3
