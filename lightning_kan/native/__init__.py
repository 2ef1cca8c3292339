"""Fused C kernels of the CPU feature expansion, used when they were built with the package.

A basis that has one describes it with :meth:`Basis.native_kernel` (a
:class:`NativeKernel`: which formula, its constants, a per-input table); the layer's
expansion then writes its ``(rows, I*K + I)`` feature buffer in one pass over the data,
and the backward reads the buffer's gradient once, instead of the eager path's tens of
ATen calls per row chunk (``benchmarks/kan_linear.py``: the eager expansion cost more than
the GEMM itself at ``1024 x 784 -> 64``). For a uniform B-spline, :func:`spline_linear`
and :func:`spline_linear_backward` go further and compute a dense layer's output and
gradients from each input's ``k + 1`` non-zero values, with no buffer at all
(:mod:`lightning_kan.layers.local_spline`).

The kernels cover float32 on the CPU; anything else (float64, CUDA, a basis or base
activation without a kernel) takes the eager path, whose results they match to float32
round-off (``tests/test_native_kernels.py``). They are plain C (``_kernels.c``, no torch
headers) built by ``pip install`` when a C compiler is present; without one the install
still succeeds and :func:`available` is False. ``LIGHTNING_KAN_NATIVE=0`` in the
environment, or :func:`set_enabled`, turns them off.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import torch

__all__ = [
    "BUILDS",
    "MAX_FUNCTIONS",
    "NativeKernel",
    "available",
    "builds_for_this_cpu",
    "expand",
    "input_grad",
    "set_enabled",
    "spline_linear",
    "spline_linear_backward",
    "usable",
]

#: formula codes of ``_kernels.c``
KINDS = {
    "three_term": 0,
    "bspline": 1,
    "rbf": 2,
    "rswaf": 3,
    "fourier": 4,
    "relu": 5,
    "bernstein": 6,
    "wavelet": 7,
}
#: base-activation codes of ``_kernels.c`` (0: no base columns written by the kernel)
BASE_CODES = {"silu": 1, "identity": 2, "tanh": 3}
#: the most functions per input a kernel evaluates (``MAX_K`` in ``_kernels.c``); a basis
#: with more takes the torch path
MAX_FUNCTIONS = 64
#: below this many values a call runs on one thread (starting threads costs ~20 us)
_PARALLEL_VALUES = 1 << 15


@dataclass(frozen=True)
class NativeKernel:
    """One basis' kernel: the formula ``kind`` (a key of :data:`KINDS`), its constants
    ``params`` (their layout is the kernel's, documented in ``_kernels.c``) and an
    optional float32 ``table`` (per-input knots, centres, phases; flattened)."""

    kind: str
    params: tuple[float, ...]
    table: torch.Tensor | None = None

    @cached_property
    def call_arguments(self) -> tuple[int, int, tuple[torch.Tensor, torch.Tensor | None]]:
        """``(address of params as float64, address of the float32 table or 0, the tensors
        they point into)``, built once per kernel description (the tensors are kept alive
        here)."""
        params = torch.tensor(self.params or (0.0,), dtype=torch.float64, device="cpu")
        table = self.table
        if table is not None:
            table = table.detach().to(torch.float32).contiguous()
        table_address = table.data_ptr() if table is not None else 0
        return params.data_ptr(), table_address, (params, table)


#: the builds setup.py makes, widest instruction set first (all compute the same numbers)
BUILDS = ("_kernels_avx512", "_kernels_avx2", "_kernels")


def _open(module: str) -> ModuleType | None:
    """Build ``module`` of :data:`BUILDS` imported (its functions are the kernels), or None
    if it was not built."""
    if importlib.util.find_spec(f"lightning_kan.native.{module}") is None:
        return None
    try:
        return importlib.import_module(f"lightning_kan.native.{module}")
    except ImportError:
        return None


def builds_for_this_cpu() -> dict[str, ModuleType]:
    """Every built kernel module this CPU can run, by module name, widest first (a build is
    imported only where the CPU runs its instructions)."""
    baseline = _open("_kernels")
    if baseline is None:
        return {}
    runs = {
        "_kernels_avx512": baseline.cpu_has_avx512(),
        "_kernels_avx2": baseline.cpu_has_avx2(),
        "_kernels": True,
    }
    found = {
        module: _open(module) if module != "_kernels" else baseline
        for module in BUILDS
        if runs[module]
    }
    return {module: library for module, library in found.items() if library is not None}


def _load() -> ModuleType | None:
    """The widest build the CPU runs (AVX-512, AVX2 + FMA, baseline), else None."""
    if os.environ.get("LIGHTNING_KAN_NATIVE", "1") == "0":
        return None
    return next(iter(builds_for_this_cpu().values()), None)


_LIBRARY = _load()
_enabled = _LIBRARY is not None


def available() -> bool:
    """Whether the kernels were built and are switched on."""
    return _enabled


def set_enabled(enabled: bool) -> bool:
    """Switch the kernels on or off (process-wide); returns the previous setting. Turning
    them on when they were not built raises a one-paragraph error."""
    global _enabled
    if enabled and _LIBRARY is None:
        raise RuntimeError(
            "set_enabled(True): lightning_kan's C kernels are not available in this "
            "install (not built: no C compiler at install time, or LIGHTNING_KAN_NATIVE=0 "
            "was set at import); reinstall with a C compiler (`pip install -e .`) or keep "
            "the eager path"
        )
    previous, _enabled = _enabled, bool(enabled)
    return previous


def usable(x: torch.Tensor) -> bool:
    """Whether a kernel can evaluate ``x``: float32 on the CPU, kernels on."""
    return _enabled and x.dtype is torch.float32 and x.is_cpu


def _threads(values: int) -> int:
    return 1 if values < _PARALLEL_VALUES else torch.get_num_threads()


def expand(
    kernel: NativeKernel, x: torch.Tensor, out: torch.Tensor, num_functions: int, base: int
) -> None:
    """Write the basis values of ``x (rows, I)`` into ``out (rows, W)`` (rows contiguous,
    ``W >= I*K``) and, if ``base`` (a :data:`BASE_CODES` value) is not 0, the base
    branch into columns ``I*K .. I*K + I``."""
    rows, in_features = x.shape
    if out.stride(1) != 1:
        raise ValueError(f"native.expand: out must be row-contiguous, got strides {out.stride()}")
    x = x.contiguous()
    params, table_pointer, _ = kernel.call_arguments
    status = _LIBRARY.expand(
        KINDS[kernel.kind], base, x.data_ptr(), out.data_ptr(), rows, in_features,
        num_functions, out.stride(0), params, table_pointer,
        _threads(rows * in_features * num_functions),
    )  # fmt: skip
    if status:
        raise RuntimeError(f"lightning_kan native expand: invalid kernel {kernel!r}")


def input_grad(
    kernel: NativeKernel, x: torch.Tensor, grad: torch.Tensor, num_functions: int, base: int
) -> torch.Tensor:
    """``(rows, I)``: the gradient of ``x (rows, I)`` from ``grad (rows, W)``, the gradient
    of the buffer :func:`expand` wrote (base columns included when ``base`` is not 0)."""
    rows, in_features = x.shape
    x, grad = x.contiguous(), grad.contiguous()
    grad_x = torch.empty_like(x)
    params, table_pointer, _ = kernel.call_arguments
    status = _LIBRARY.input_grad(
        KINDS[kernel.kind], base, x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), rows,
        in_features, num_functions, grad.stride(0), params, table_pointer,
        _threads(rows * in_features * num_functions),
    )  # fmt: skip
    if status:
        raise RuntimeError(f"lightning_kan native input_grad: invalid kernel {kernel!r}")
    return grad_x


def _pointer(tensor: torch.Tensor | None) -> int:
    return 0 if tensor is None else tensor.data_ptr()


def spline_linear(
    kernel: NativeKernel,
    x: torch.Tensor,
    weight: torch.Tensor,
    base_weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    base: int,
) -> torch.Tensor:
    """``(rows, O)``: a dense layer's output from each input's ``k + 1`` local values of a
    uniform B-spline ``kernel``, ``bias + sum_i (sum_n phi_n(x_i) weight[:, i, n] +
    b(x_i) base_weight[:, i])``; ``x (rows, I)``, ``weight (O, I, K)``, ``base_weight
    (O, I)`` (``None`` with ``base`` 0, else ``b``'s :data:`BASE_CODES` value), all
    float32 and contiguous."""
    y = x.new_empty(x.shape[0], weight.shape[0])
    _spline_call(kernel, 0, base, x, weight, base_weight, None, bias, y, None, None, None)
    return y


def spline_linear_backward(
    kernel: NativeKernel,
    x: torch.Tensor,
    weight: torch.Tensor,
    base_weight: torch.Tensor | None,
    base: int,
    grad: torch.Tensor,
    weight_grad: bool,
    input_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """:func:`spline_linear`'s gradients from ``grad (rows, O)``, each if asked:
    ``(grad_weight (O, I, K), grad_base_weight (O, I) or None, grad_x (rows, I))``."""
    grad_w = torch.empty_like(weight) if weight_grad else None
    grad_wb = torch.empty_like(base_weight) if weight_grad and base_weight is not None else None
    grad_x = torch.empty_like(x) if input_grad else None
    if weight_grad or input_grad:
        _spline_call(
            kernel, 1, base, x, weight, base_weight, grad, None, None, grad_w, grad_wb, grad_x
        )
    return grad_w, grad_wb, grad_x


def _spline_call(kernel, backward, base, x, w, wb, g, bias, y, grad_w, grad_wb, grad_x):
    rows, in_features = x.shape
    out_features, _, num_functions = w.shape
    params, table_pointer, _ = kernel.call_arguments
    status = _LIBRARY.spline_linear(
        backward, base, x.data_ptr(), w.data_ptr(), _pointer(wb), _pointer(g), _pointer(bias),
        _pointer(y), _pointer(grad_w), _pointer(grad_wb), _pointer(grad_x), rows, in_features,
        num_functions, out_features, params, table_pointer,
        _threads(rows * in_features * out_features),
    )  # fmt: skip
    if status == -2:
        raise MemoryError(
            "lightning_kan native spline_linear: a thread's scratch was not allocated"
        )
    if status:
        raise RuntimeError(f"lightning_kan native spline_linear: invalid call, kernel {kernel!r}")
