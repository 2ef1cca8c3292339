"""MetaKAN layers: every edge's coefficients generated from a learnable prompt.

A :class:`MetaLearner` ``M: Linear(d_z, h) -> ReLU -> Linear(h, K+1)`` maps the prompt
``z[o, i(, tap)] (d_z,)`` of each edge to that edge's K coefficients and its base weight
(the last output; ``K`` outputs only when the layer has no base branch):

    weight[o, i, :, (tap)], base_weight[o, i, (tap)] = M(z[o, i, (tap)]) * scale

Two initialisations (``init``, see :data:`INITS`): ``"xavier"`` (the default; the
MetaKAN authors' code): xavier-normal weights and zero biases in ``M``, xavier-normal
prompts (std ``sqrt(2 / (d_z * (I + O) * prod(kernel)))``, i.e. ``sqrt(2 / (in + out))``
for scalar prompts of a linear layer) and ``scale = 1``; ``"scaled"`` (ours, the default
until the MetaKAN recipe comparison in the README measured ``"xavier"`` better): prompts
``N(0, 1)``, PyTorch's default ``Linear`` init in ``M`` and ``scale = 1/sqrt(fan_in)``
with ``fan_in = I * prod(kernel)``, a fixed constant that lets one meta-learner serve
layers of different widths with ``KANLinear``-like output scales. ``scale`` is the
buffer ``weight_scale``, so a checkpoint loads with the scale it was trained with; one
saved before ``init`` existed (no ``weight_scale``) loads with ``1/sqrt(fan_in)``.
A layer's trainable parameters
are its prompts ``(O, I, *kernel, d_z)`` (and bias); the meta-learner is usually shared
by several layers (``nets.MetaKAN`` clusters them) and counted once.

The weights are generated in blocks of about ``chunk_size`` edges into one result,
and the backward recomputes each block's hidden layer, so the ``(edges, h)`` hidden
activations never exist all at once: peak memory is the generated weights, their
gradient and one block's hidden layer.
:class:`Generated` is the coefficient family; ``MetaKANLinear`` / ``MetaKANConv*d`` are
presets (``KANLinear``/``KANConv*d`` with ``coefficients=Generated(...)``).
The forward then is ``KANLinear``'s / ``KANConv``'s (one GEMM or convolution over the
same :func:`~lightning_kan.layers.expand_features` buffer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.bases.base import _check_positive_int
from lightning_kan.layers.coefficients import Coefficients, register_coefficients
from lightning_kan.layers.expansion import needs_plain_autograd
from lightning_kan.layers.kan_conv import KANConvNd
from lightning_kan.layers.kan_linear import KANLinear

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "INITS",
    "Generated",
    "MetaKANConv1d",
    "MetaKANConv2d",
    "MetaKANConv3d",
    "MetaKANLinear",
    "MetaLearner",
]

#: Edges per weight-generation chunk (a 32-wide hidden layer: 2 MiB of float32 per chunk,
#: small enough for the CPU allocator to reuse instead of page-faulting afresh).
DEFAULT_CHUNK_SIZE = 16384

#: Initialisations of prompts and meta-learners (see the module docstring).
INITS = ("scaled", "xavier")


def check_init(init: object) -> str:
    """``init`` if it names one of :data:`INITS`, else a clear error."""
    if init not in INITS:
        raise ValueError(
            f"init={init!r} is not a MetaKAN initialisation; use 'scaled' (ours: N(0, 1) "
            "prompts, weights scaled by 1/sqrt(fan_in)) or 'xavier' (the MetaKAN authors': "
            "xavier-normal prompts and meta-learner, zero biases, no scaling)"
        )
    return init  # type: ignore[return-value]


class MetaLearner(nn.Module):
    """``Linear(embed_dim, hidden_dim) -> ReLU -> Linear(hidden_dim, out_features)``.

    ``out_features`` is ``K + 1`` (coefficients, then the base weight) or ``K`` for
    layers without a base branch. Parameters: ``d_z*h + h + h*(K+1) + K+1``.
    ``init="scaled"``: PyTorch's default ``Linear`` init; ``"xavier"``: xavier-normal
    weights, zero biases (the MetaKAN authors' code).

    Shapes: ``(..., embed_dim) -> (..., out_features)``.
    """

    def __init__(
        self, out_features: int, embed_dim: int = 1, hidden_dim: int = 32, init: str = "xavier"
    ) -> None:
        super().__init__()
        _check_positive_int("out_features", out_features)
        _check_positive_int("embed_dim", embed_dim)
        _check_positive_int("hidden_dim", hidden_dim)
        self.out_features = out_features
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.init = check_init(init)
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_features)
        )
        if init == "xavier":
            for linear in (self.net[0], self.net[2]):
                nn.init.xavier_normal_(linear.weight)
                nn.init.zeros_(linear.bias)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        first, _, second = self.net
        return _meta_forward(prompts, first.weight, first.bias, second.weight, second.bias)

    def generate(
        self,
        prompts: torch.Tensor,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        scale: float = 1.0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``transform(scale * self(prompts))``, about ``chunk_size`` edges at a time.

        ``prompts (rows, ..., d_z)`` is split along its first dimension into blocks of
        ``max(1, chunk_size // edges per row)`` rows; each block's ``(r, ..., out_features)``
        output goes through ``transform`` (default: none; a layer uses it to write its
        packed GEMM layout directly) into one preallocated result. The backward
        recomputes each block's hidden layer, so only the prompts and the result are
        kept: peak memory is the result, its gradient and one block's activations.
        Under ``torch.func`` transforms, tracing or export the whole result is computed
        at once with plain autograd (:func:`~lightning_kan.layers.expansion.needs_plain_autograd`).
        """
        rows_per_block = max(1, chunk_size // max(1, math.prod(prompts.shape[1:-1])))
        first, _, second = self.net
        params = (first.weight, first.bias, second.weight, second.bias)
        if needs_plain_autograd():  # torch.func / tracing / export: differentiable ops
            out = _meta_forward(prompts, *params) * scale
            return out if transform is None else transform(out)
        return _BlockwiseGenerate.apply(rows_per_block, scale, transform, prompts, *params)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, hidden_dim={self.hidden_dim}, init={self.init!r}"


def _meta_forward(
    prompts: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor,
    weight2: torch.Tensor,
    bias2: torch.Tensor,
) -> torch.Tensor:
    """``Linear -> ReLU -> Linear`` on ``prompts (..., d_z)``."""
    if weight1.shape[1] == 1:  # scalar prompts: an outer product, cheaper elementwise
        hidden = torch.addcmul(bias1, prompts, weight1[:, 0])
    else:
        hidden = F.linear(prompts, weight1, bias1)
    return F.linear(hidden.relu_(), weight2, bias2)


class _BlockwiseGenerate(torch.autograd.Function):
    """Block-by-block generation that keeps no hidden activations for the backward."""

    @staticmethod
    def forward(ctx, rows_per_block, scale, transform, prompts, *params):
        def run(block: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
            out = _meta_forward(block, *weights) * scale
            return out if transform is None else transform(out)

        result = None
        for start in range(0, prompts.shape[0], rows_per_block):
            block = run(prompts[start : start + rows_per_block], *params)
            if result is None:
                result = block.new_empty(prompts.shape[0], *block.shape[1:])
            result[start : start + rows_per_block] = block
        ctx.run, ctx.rows_per_block = run, rows_per_block
        ctx.save_for_backward(prompts, *params)
        return result

    @staticmethod
    def backward(ctx, grad_result):
        prompts, *params = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        tensors = (prompts, *params)
        grads = [torch.zeros_like(t) if n else None for t, n in zip(tensors, needs, strict=True)]
        weights = [p.detach().requires_grad_(n) for p, n in zip(params, needs[1:], strict=True)]
        rows = ctx.rows_per_block
        with torch.enable_grad():
            for start in range(0, prompts.shape[0], rows):
                block = prompts[start : start + rows].detach().requires_grad_(needs[0])
                inputs = [t for t in (block, *weights) if t.requires_grad]
                if not inputs:
                    break
                out = ctx.run(block, *weights)
                block_grads = iter(
                    torch.autograd.grad(out, inputs, grad_result[start : start + rows])
                )
                if needs[0]:
                    grads[0][start : start + rows] = next(block_grads)
                for index, weight in enumerate(weights, start=1):
                    if weight.requires_grad:
                        grads[index] += next(block_grads)
        return None, None, None, *grads


@register_coefficients("generated")
class Generated(Coefficients):
    """Coefficients generated from per-edge prompts by a (shareable) meta-learner.

    Registers ``prompts (O, I, *kernel, d_z)`` and ``meta_learner`` (``meta_learner`` if
    given, shared, else a new ``MetaLearner(K [+ 1], embed_dim, hidden_dim, init)``) on
    the layer, and sets the layer's ``chunk_size`` (edges per generation block) and
    ``weight_scale``. ``init="scaled"``: ``N(0, 1)`` prompts, ``weight_scale =
    1/sqrt(fan_in)``; ``"xavier"``: xavier-normal prompts, ``weight_scale = 1`` (see the
    module docstring). ``spline_init_scale`` does not apply.
    """

    def __init__(
        self,
        meta_learner: MetaLearner | None = None,
        embed_dim: int = 1,
        hidden_dim: int = 32,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        init: str = "xavier",
    ) -> None:
        _check_positive_int("chunk_size", chunk_size)
        self.init = check_init(init)
        if meta_learner is not None and not isinstance(meta_learner, MetaLearner):
            raise TypeError(
                f"meta_learner must be a MetaLearner or None (build a new one), got "
                f"{type(meta_learner).__name__}"
            )
        self.meta_learner = meta_learner
        self.embed_dim, self.hidden_dim, self.chunk_size = embed_dim, hidden_dim, chunk_size

    def build(self, layer: nn.Module, shape: tuple[int, ...], base: bool) -> None:
        out_features, group_inputs, num_functions, *kernel = shape
        outputs = num_functions + base
        meta_learner = self.meta_learner
        if meta_learner is None:
            meta_learner = MetaLearner(outputs, self.embed_dim, self.hidden_dim, self.init)
        elif meta_learner.out_features != outputs:
            raise ValueError(
                f"the meta_learner outputs {meta_learner.out_features} numbers per edge but "
                f"this layer needs {outputs} (K={num_functions} coefficients"
                f"{' + 1 base weight' if base else ''}); build it as MetaLearner({outputs}, ...)"
            )
        layer.meta_learner = meta_learner
        layer.prompts = nn.Parameter(
            torch.empty(out_features, group_inputs, *kernel, meta_learner.embed_dim)
        )
        layer.chunk_size = self.chunk_size
        scale = _legacy_scale(layer.prompts) if self.init == "scaled" else 1.0
        # a buffer, so checkpoints say which scale their prompts were trained with
        layer.register_buffer("weight_scale", torch.tensor(scale))
        layer.register_load_state_dict_pre_hook(_default_to_legacy_scale)

    def reset(self, layer: nn.Module, bound: float) -> None:
        """Prompts ~ N(0, 1) (``"scaled"``) or xavier-normal (``"xavier"``); the (shared)
        meta-learner keeps its own init."""
        if self.init == "scaled":
            nn.init.normal_(layer.prompts)
        else:
            nn.init.xavier_normal_(layer.prompts)

    def tensors(self, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = layer.meta_learner.generate(layer.prompts, layer.chunk_size, layer.weight_scale)
        num_functions = layer.num_basis_functions
        # (O, I, *kernel, K[+1]) -> weight (O, I, K, *kernel), base (O, I, *kernel)
        weight = out[..., :num_functions].movedim(out.dim() - 1, 2)  # legacy ONNX: no -1
        base = out[..., num_functions] if layer.activation is not None else None
        return weight, base

    def packed_weight(self, layer: nn.Module) -> torch.Tensor:
        """``[weight.view(O, I*K) | base_weight]`` of a linear layer, generated block by
        block in that layout (no separate ``(O, I, K+1)`` tensor to rearrange)."""
        num_functions = layer.num_basis_functions
        num_values = layer.in_features * num_functions
        base = layer.activation is not None

        def pack(out: torch.Tensor) -> torch.Tensor:  # (r, I, K[+1]) -> (r, I*K [+ I])
            if not base:
                return out.flatten(1)
            values = out[..., :num_functions].reshape(out.shape[0], num_values)
            return torch.cat([values, out[..., -1]], dim=-1)

        return layer.meta_learner.generate(
            layer.prompts, layer.chunk_size, layer.weight_scale, pack
        )

    def extra_repr(self, layer: nn.Module) -> str:
        return f"embed_dim={layer.prompts.shape[-1]}"

    def __repr__(self) -> str:
        return (
            f"Generated(embed_dim={self.embed_dim}, hidden_dim={self.hidden_dim}, "
            f"init={self.init!r})"
        )


def _legacy_scale(prompts: torch.Tensor) -> float:
    """``1/sqrt(fan_in)`` of the layer with ``prompts (O, I, *kernel, d_z)``."""
    return 1.0 / math.sqrt(math.prod(prompts.shape[1:-1]))


def _default_to_legacy_scale(layer: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
    """A state dict without ``weight_scale`` predates ``init``: its weights were generated
    with the ``"scaled"`` factor ``1/sqrt(fan_in)``, which it then loads with."""
    key = f"{prefix}weight_scale"
    if key not in state_dict and any(name.startswith(prefix) for name in state_dict):
        state_dict[key] = torch.tensor(_legacy_scale(layer.prompts))


class MetaKANLinear(KANLinear):
    """A ``KANLinear`` whose edges' K+1 weights come from a meta-learner and prompts
    (a preset of ``KANLinear(coefficients=Generated(...))``).

    Args:
        in_features, out_features, basis, basis_kwargs, base_activation, bias, compiled:
            as :class:`KANLinear` (``spline_init_scale`` does not apply).
        meta_learner: a :class:`MetaLearner` to share with other layers, or ``None`` to
            build one (``embed_dim``, ``hidden_dim``) owned by this layer.
        embed_dim: prompt dimension ``d_z`` (ignored when ``meta_learner`` is given).
        hidden_dim: hidden width ``h`` of a new meta-learner.
        chunk_size: edges generated per block (whole output rows).
        init: ``"xavier"`` (default, the MetaKAN authors') or ``"scaled"``, see
            :class:`Generated`.

    Parameters: ``prompts (O, I, d_z)``, ``bias (O,)`` if ``bias``, and the meta-learner.
    Shapes: ``x (..., I) -> (..., O)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        meta_learner: MetaLearner | None = None,
        embed_dim: int = 1,
        hidden_dim: int = 32,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        init: str = "xavier",
        **kan_linear_kwargs: Any,
    ) -> None:
        generated = Generated(meta_learner, embed_dim, hidden_dim, chunk_size, init)
        super().__init__(in_features, out_features, coefficients=generated, **kan_linear_kwargs)


class _MetaKANConvNd(KANConvNd):
    """Shared implementation of ``MetaKANConv{1,2,3}d``: one prompt per (out, in, tap)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        meta_learner: MetaLearner | None = None,
        embed_dim: int = 1,
        hidden_dim: int = 32,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        init: str = "xavier",
        **kan_conv_kwargs: Any,
    ) -> None:
        generated = Generated(meta_learner, embed_dim, hidden_dim, chunk_size, init)
        super().__init__(
            in_channels, out_channels, kernel_size, coefficients=generated, **kan_conv_kwargs
        )


class MetaKANConv1d(_MetaKANConvNd):
    """MetaKAN 1-D convolution: prompts ``(O, C_in/groups, k, d_z)``; see the module doc."""

    ndim = 1


class MetaKANConv2d(_MetaKANConvNd):
    """MetaKAN 2-D convolution: prompts ``(O, C_in/groups, kh, kw, d_z)``."""

    ndim = 2


class MetaKANConv3d(_MetaKANConvNd):
    """MetaKAN 3-D convolution: prompts ``(O, C_in/groups, kd, kh, kw, d_z)``."""

    ndim = 3
