"""Feature expansion: the basis values and the base branch in one buffer.

``expand_features(x, basis, activation)`` returns ``(..., I*K + I)``: the basis values
of all inputs (``(..., I, K)`` flattened) followed by the base branch ``b(x) (..., I)``.
A layer does **one GEMM** of it with its packed ``[C.view(O, I*K) | base_weight]``
weight ``(O, I*K + I)``. Keeping the K values of an input
contiguous (rather than interleaving ``b(x_i)`` after each) lets the basis write whole
vectors, which is what makes the compiled kernel fast.

For parameter-free bases the expansion is a custom autograd function that keeps only
``x`` for the backward and recomputes the (cheap, local) derivatives there instead of
storing the basis' intermediates; the buffer itself is kept by the GEMM anyway. The
backward is built from differentiable operations, so a double backward works
(physics-informed losses differentiate the network's input gradient again).

Without a compiler the basis writes the buffer in row chunks of about ``CHUNK_VALUES``
values per thread, and the backward (unless it builds a graph for a double backward)
evaluates the input gradient in the same chunks: each basis pass then runs in cache and
every temporary is chunk-sized, so a layer's training step peaks near the buffer and its
gradient (``benchmarks/kan_linear.py --input-grad``: 1.1-1.4x that minimum for every
basis at the default shapes; whole-buffer temporaries had made it up to 7x).

The custom function has no vmap rule, no forward-mode derivative and writes into a
buffer in place, which ``torch.func`` transforms, forward-mode AD, ``torch.jit.trace``,
``torch.export``/``torch.compile`` and the ONNX exporters cannot follow. Under any of
them (:func:`needs_plain_autograd`) the expansion is the basis' differentiable
``forward`` instead: same values, plain autograd.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache
from weakref import WeakKeyDictionary

import torch
from torch.autograd import forward_ad

from lightning_kan import native
from lightning_kan.bases.base import Basis
from lightning_kan.layers.activations import BaseActivation, native_base_code
from lightning_kan.layers.buffers import feature_buffer

__all__ = ["autocast_enabled", "expand_features", "needs_plain_autograd"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def needs_plain_autograd() -> bool:
    """True while a ``torch.func`` transform, a forward-mode AD level, ``torch.jit.trace``
    (legacy ONNX export included) or dynamo/``torch.export`` is active: custom
    ``autograd.Function`` fast paths must then give way to plain differentiable ops."""
    return (
        torch._C._are_functorch_transforms_active()
        or forward_ad._current_level >= 0
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
    )


#: rows per eager chunk are chosen so one chunk of the feature buffer holds about this many
#: values per intra-op thread (1 MiB in float32 each): the basis' passes over a chunk (a
#: recurrence's degrees, a B-spline's zero fill and scatters) then stay in the cores' L2
#: caches instead of streaming the whole ``(N, I*K)`` buffer from memory once per pass,
#: and the backward's temporaries are chunk-sized, not matrix-sized. Per thread, so the
#: ``(rows, I)`` operations stay above ATen's parallelisation grain (32768 elements).
CHUNK_VALUES = 1 << 18


def _chunk_rows(row_values: int) -> int:
    """Rows per chunk for rows of ``row_values`` values (at least one)."""
    return max(1, CHUNK_VALUES * torch.get_num_threads() // max(row_values, 1))


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch 2.3 takes no device argument)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _fused_values(
    x: torch.Tensor,
    basis: Basis,
    activation: BaseActivation | None,
    compiled: bool,
    kernel: native.NativeKernel | None,
) -> torch.Tensor:
    """The fused expansion's buffer, with autocast off (it would evaluate the basis in low
    precision); the context is entered only when autocast is on, since inside a training
    step every Python call around a small layer runs on cold caches."""
    if autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return _fused_values(x, basis, activation, compiled, kernel)
    if compiled:
        return _compiled_expansion(type(basis))(x, basis, activation)
    return _eager_expansion(x, basis, activation, kernel)


def _fused(
    x: torch.Tensor, basis: Basis, activation: BaseActivation | None, compiled: bool
) -> torch.Tensor:
    """The fused expansion; without an autograd node where ``x`` needs no gradient (a
    network's first layer): the basis and the activation have no parameters to train."""
    if not x.requires_grad:
        return _fused_values(x, basis, activation, compiled, _native_kernel(x, basis))
    return _FusedExpansion.apply(x, basis, activation, compiled)


class _FusedExpansion(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, basis, activation, compiled):
        # the C kernel (if any) is looked up once: the backward reuses the forward's
        kernel = _native_kernel(x, basis)
        out = _fused_values(x, basis, activation, compiled, kernel)
        ctx.save_for_backward(x)
        ctx.basis, ctx.activation, ctx.kernel = basis, activation, kernel
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (x,) = ctx.saved_tensors
        basis, activation = ctx.basis, ctx.activation
        num_values = x.shape[-1] * basis.num_functions
        grad_values = grad_out[..., :num_values].unflatten(-1, (x.shape[-1], -1))
        kernel = None if torch.is_grad_enabled() else ctx.kernel
        base = native_base_code(activation)
        if kernel is not None:  # one C pass over the buffer's gradient (and the base's)
            rows = x.reshape(-1, x.shape[-1])
            grad = grad_out.reshape(rows.shape[0], -1)
            grad_x = native.input_grad(kernel, rows, grad, basis.num_functions, base or 0)
            grad_x = grad_x.view_as(x)
        elif torch.is_grad_enabled():  # a double backward: one differentiable call
            grad_x = basis.input_grad(x, grad_values)
        else:  # chunk by chunk: the closed forms' (..., I, K) temporaries stay chunk-sized
            grad_x = _chunked_input_grad(x, basis, grad_values)
        if activation is not None and (kernel is None or base is None):
            grad_x = grad_x + activation.vjp(x, grad_out[..., num_values:])
        return grad_x, None, None, None


#: each basis' last kernel description and the state it was built from: building one
#: (knot tables, constants, their C arrays) took ~25 us, a sixth of a small layer's forward
_KERNELS: WeakKeyDictionary[Basis, tuple[tuple, native.NativeKernel | None]] = WeakKeyDictionary()


def _kernel_state(basis: Basis) -> tuple:
    """What :meth:`Basis.native_kernel` reads: the basis' tensors (storage, in-place
    version, dtype, shape) and its attributes (:attr:`Basis.attribute_version` counts
    every setting; walking ``vars(basis)`` instead cost ~20 us per forward in a step)."""
    owners = basis.modules() if basis._modules else (basis,)
    tensors = tuple(
        (t.data_ptr(), t._version, t.dtype, t.shape)
        for owner in owners
        for t in itertools.chain(owner._buffers.values(), owner._parameters.values())
        if t is not None
    )
    return tensors, basis.attribute_version


def _native_kernel(x: torch.Tensor, basis: Basis) -> native.NativeKernel | None:
    """The basis' C kernel when one applies to ``x`` (float32 on the CPU, at most
    ``native.MAX_FUNCTIONS`` functions), else None; rebuilt only when the basis changed
    (a grid update, a state dict load, a device move, a new attribute value)."""
    if not native.usable(x) or basis.num_functions > native.MAX_FUNCTIONS:
        return None
    state = _kernel_state(basis)
    cached = _KERNELS.get(basis)
    if cached is not None and cached[0] == state:
        return cached[1]
    kernel = basis.native_kernel()
    _KERNELS[basis] = (state, kernel)
    return kernel


def _eager_expansion(
    x: torch.Tensor,
    basis: Basis,
    activation: BaseActivation | None,
    kernel: native.NativeKernel | None,
) -> torch.Tensor:
    """The fused expansion without a compiler: the basis' C ``kernel`` in one pass, or
    ``basis.expand_into`` (and the base branch) into one uninitialised buffer in row
    chunks of about ``CHUNK_VALUES``."""
    in_features = x.shape[-1]
    num_values = in_features * basis.num_functions
    width = num_values + (0 if activation is None else in_features)
    out = feature_buffer(basis, (*x.shape[:-1], width), x)
    rows, flat_out = x.reshape(-1, in_features), out.view(-1, width)
    if kernel is not None:  # every value written once, in one C pass
        base = native_base_code(activation)
        native.expand(kernel, rows, flat_out, basis.num_functions, base or 0)
        if activation is not None and base is None:
            flat_out[:, num_values:] = activation(rows)
        return out
    step = _chunk_rows(width)
    for start in range(0, rows.shape[0], step):
        x_chunk, out_chunk = rows[start : start + step], flat_out[start : start + step]
        basis.expand_into(x_chunk, out_chunk[:, :num_values].unflatten(-1, (in_features, -1)))
        if activation is not None:
            out_chunk[:, num_values:] = activation(x_chunk)
    return out


def _chunked_input_grad(x: torch.Tensor, basis: Basis, grad_values: torch.Tensor) -> torch.Tensor:
    """``basis.input_grad`` ``(..., I)`` evaluated in row chunks (no graph is built)."""
    in_features = x.shape[-1]
    rows = x.reshape(-1, in_features)
    grads = grad_values.reshape(-1, in_features, basis.num_functions)
    step = _chunk_rows(in_features * basis.num_functions)
    if step >= rows.shape[0]:
        return basis.input_grad(x, grad_values)
    grad_x = torch.empty_like(rows)
    for start in range(0, rows.shape[0], step):
        chunk = slice(start, start + step)
        grad_x[chunk] = basis.input_grad(rows[chunk], grads[chunk])
    return grad_x.view_as(x)


def _plain_expansion(
    x: torch.Tensor, basis: Basis, activation: BaseActivation | None
) -> torch.Tensor:
    values = basis(x).flatten(-2)
    if activation is None:
        return values
    return torch.cat([values, activation(x)], dim=-1)


@cache
def _compiled_expansion(basis_type: type) -> Callable[..., torch.Tensor]:
    """``_plain_expansion`` under ``torch.compile``, one per basis class, built on first use.

    Dynamo guards on the basis' class, so a single shared function would recompile at
    every switch between families and hit its recompile limit in mixed models.
    """
    del basis_type  # the cache key only
    return torch.compile(_plain_expansion)


def expand_features(
    x: torch.Tensor,
    basis: Basis,
    activation: BaseActivation | None,
    compiled: bool = False,
) -> torch.Tensor:
    """Return ``(..., I*K [+ I])``: ``phi(x)`` flattened, then ``b(x)`` if there is a base.

    Inputs in float16/bfloat16 are evaluated in float32 (polynomial recurrences and knot
    arithmetic lose too much in half precision); the GEMM that follows may still run
    in low precision under autocast.

    ``compiled=True`` evaluates the forward with ``torch.compile``: the basis' dense
    formula and the base branch fuse into one kernel that writes every feature once
    (the backward is unchanged). It needs a working inductor backend (a C++ compiler
    on CPU, Triton on GPU) and compiles on the first call of each input shape.
    """
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    if basis.is_parameter_free and not needs_plain_autograd():
        if activation is None or activation.is_parameter_free:
            return _fused(x, basis, activation, compiled)
        # a trained activation (nn.PReLU) runs outside the custom function to get gradients
        values = _fused(x, basis, None, compiled)
        with torch.autocast(x.device.type, enabled=False):
            return torch.cat([values, activation(x)], dim=-1)
    with torch.autocast(x.device.type, enabled=False):
        return _plain_expansion(x, basis, activation)
