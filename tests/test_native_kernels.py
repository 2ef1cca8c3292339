"""The C kernels of the CPU expansion (lightning_kan.native) against the eager torch path.

Every family with a kernel, over its options, at random and at edge inputs (+-1e4, knots,
exact zeros, NaN): the layer's output and input gradient with the kernels on must equal
those with them off to float32 round-off. Plus the plumbing: thread counts, block tails,
strided and batched inputs, base activations, trainable bases (no kernel), the reused
feature buffers (never overwritten while anything holds them) and the switch.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from lightning_kan import KANLinear, native
from lightning_kan.layers import buffers
from lightning_kan.layers.expansion import expand_features

needs_kernels = pytest.mark.skipif(not native.available(), reason="C kernels not built")

# (basis, options): every family's kernel and the options that change its formula
CASES = [
    ("bspline", {}),
    ("bspline", {"grid_size": 3}),  # K = 6: the AVX-512 cubic pairs, masked to 2K columns
    ("bspline", {"grid_size": 1}),
    ("bspline", {"spline_order": 1}),
    ("bspline", {"spline_order": 2, "grid_size": 7}),
    ("bspline", {"grid_size": 20}),
    ("bspline", {"spline_order": 5, "grid_range": (-3.0, 2.0)}),
    ("chebyshev", {}),
    ("chebyshev", {"degree": 1}),
    ("chebyshev", {"degree": 12}),
    ("legendre", {}),
    ("gram", {"degree": 5}),
    ("jacobi", {}),
    ("jacobi", {"alpha": -0.5, "beta": 2.0, "degree": 4}),
    ("bernstein", {}),
    ("bernstein", {"degree": 2}),
    ("rbf", {}),
    ("rbf", {"num_centers": 23}),
    ("rswaf", {"width": 0.3}),
    ("rswaf", {}),  # K = 8: one exp per value
    ("rswaf", {"num_centers": 23}),  # shared exponentials (evenly spaced centres)
    ("rswaf", {"num_centers": 23, "width": 0.02}),  # 2 w |u| = 200: one exp per value
    ("relukan", {}),
    ("relukan", {"order": 2, "grid_size": 9}),
    ("fourierkan", {}),
    ("wavelet", {}),
    ("wavelet", {"wavelet": "dog"}),
    ("wavelet", {"wavelet": "morlet", "num_wavelets": 5}),
]


@pytest.fixture
def kernels_on():
    previous = native.set_enabled(True)
    yield
    native.set_enabled(previous)


def _inputs(in_features: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randn(64, in_features, generator=generator) * 2]
    edges = torch.tensor([1e4, -1e4, 0.0, 1.0, -1.0, 0.6, -0.2, 2.0, -2.0, 1e-30, 40.0, -3.0])
    rows.append(edges.repeat(math.ceil(in_features / edges.numel()) + 1)[: 2 * in_features])
    rows[-1] = rows[-1].view(2, in_features)
    rows.append(torch.linspace(-1.5, 1.5, 13 * in_features).view(13, in_features))
    return torch.cat(rows)


def _layer_and_grads(layer: torch.nn.Module, x: torch.Tensor, enabled: bool):
    native.set_enabled(enabled)
    x = x.clone().requires_grad_()
    y = layer(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y * weights).sum().backward()
    return y.detach(), x.grad


def _features_and_grads(layer: torch.nn.Module, x: torch.Tensor):
    """The layer's feature buffer and the input gradient of a fixed weighting of it: the
    kernels' own numbers, without the GEMM (whose blocking depends on the thread count)."""
    x = x.clone().requires_grad_()
    features = expand_features(x, layer.basis, layer.activation)
    weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(1))
    (features * weights).sum().backward()
    return features.detach().clone(), x.grad


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = expected.abs().max().clamp_min(1.0)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=3e-6 * scale, msg=what)


def _assert_features_match_the_eager_path(layer: torch.nn.Module, x: torch.Tensor, what: str):
    """The feature buffer and its input gradient with the kernels on, then off."""
    native.set_enabled(True)
    features, grad = _features_and_grads(layer, x)
    native.set_enabled(False)
    features_eager, grad_eager = _features_and_grads(layer, x)
    native.set_enabled(True)
    _assert_close(features, features_eager, f"{what} values")
    _assert_close(grad, grad_eager, f"{what} input gradient")


@needs_kernels
@pytest.mark.parametrize(("basis", "options"), CASES)
@pytest.mark.parametrize("base", ["silu", "none"])
def test_kernel_matches_the_eager_path(kernels_on, build, basis, options, base):
    torch.manual_seed(0)
    layer = KANLinear(7, 3, basis=basis, basis_kwargs=options, base_activation=base)
    assert layer.basis.native_kernel() is not None
    x = _inputs(7)
    y_native, grad_native = _layer_and_grads(layer, x, True)
    y_eager, grad_eager = _layer_and_grads(layer, x, False)
    assert torch.isfinite(y_native).all() and torch.isfinite(grad_native).all()
    _assert_close(y_native, y_eager, f"{basis} {options} output")
    _assert_close(grad_native, grad_eager, f"{basis} {options} input gradient")


@needs_kernels
@pytest.mark.parametrize("base", ["silu", "tanh", "identity", "gelu", "none"])
def test_base_activations_fused_or_not(kernels_on, base):
    layer = KANLinear(5, 4, basis="chebyshev", base_activation=base)
    x = _inputs(5, seed=3)
    y_native, grad_native = _layer_and_grads(layer, x, True)
    y_eager, grad_eager = _layer_and_grads(layer, x, False)
    _assert_close(y_native, y_eager, "output")
    _assert_close(grad_native, grad_eager, "input gradient")


@needs_kernels
def test_values_against_the_published_formulas(kernels_on):
    """Kernel values against closed forms in float64 (not the eager code)."""
    x = torch.linspace(-3, 3, 41).view(-1, 1)
    cases = {
        "chebyshev": lambda s: torch.cos(torch.arange(8) * torch.acos(torch.tanh(s))),
        "fourierkan": lambda s: torch.cat(
            [torch.cos(torch.arange(1, 6) * s), torch.sin(torch.arange(1, 6) * s)], -1
        ),
        "rbf": lambda s: torch.exp(-(((s - torch.linspace(-2, 2, 8)) / (4 / 7)) ** 2)),
        "rswaf": lambda s: 1 / torch.cosh((s - torch.linspace(-2, 2, 8)) / (4 / 7)) ** 2,
    }
    for name, formula in cases.items():
        layer = KANLinear(1, 1, basis=name, base_activation="none")
        values = expand_features(x, layer.basis, None)
        torch.testing.assert_close(values.double(), formula(x.double()), atol=2e-6, rtol=0)


@needs_kernels
def test_rswaf_shares_its_exponentials_where_the_centres_allow(kernels_on, build):
    """At least 12 evenly spaced centres with 2 w |u| <= 40: two exps per input (the
    kernel's shared path); uneven centres, a narrow width or fewer centres: one per value.
    All match the eager path, also a few float32 steps of x either side of every centre."""
    from lightning_kan.bases.radial import _shared_exponentials

    even = KANLinear(3, 2, basis="rswaf", basis_kwargs={"num_centers": 23})
    assert even.basis.native_kernel().params[3] == 1.0
    uneven = KANLinear(3, 2, basis="rswaf", basis_kwargs={"num_centers": 23})
    with torch.no_grad():
        uneven.basis.centers[3] += 0.1
    narrow = KANLinear(3, 2, basis="rswaf", basis_kwargs={"num_centers": 23, "width": 0.02})
    few = KANLinear(3, 2, basis="rswaf", basis_kwargs={"num_centers": 11})
    for layer in (uneven, narrow, few):
        assert _shared_exponentials(layer.basis.centers, 1 / layer.basis.width) is None
        assert layer.basis.native_kernel().params[3] == 0.0
    centres = even.basis.centers
    steps = torch.tensor([-3e-7, -1e-7, 0.0, 1e-7, 3e-7])
    near = (centres.unsqueeze(-1) + steps).flatten()
    x = torch.cat([_inputs(3).flatten(), near, torch.tensor([9.0, -9.0, 50.0, -50.0])])
    x = x[: x.numel() // 3 * 3].view(-1, 3)
    for layer in (even, uneven, narrow, few):
        _assert_features_match_the_eager_path(layer, x, "rswaf")


def _unflushed_rbf_values(basis, x: torch.Tensor) -> torch.Tensor:
    """The RBF formula in float64 at the stored centres, flushed like the layer."""
    from lightning_kan.bases import gaussian

    z = (x.double().unsqueeze(-1) - basis.centers.double()) / basis.width
    values = torch.exp(-z.square())
    return torch.where(values < gaussian.FLUSH, torch.zeros_like(values), values).flatten(-2)


@needs_kernels
@pytest.mark.parametrize(
    ("options", "windowed"),
    [
        ({"num_centers": 23}, True),  # a = 1: windows of 15 of the 23 values
        ({"num_centers": 64, "grid_range": (-5.0, 5.0), "width": 0.1}, True),  # a = 1.6
        ({"num_centers": 48, "grid_range": (0.0, 1.0)}, True),
        ({"num_centers": 8}, False),  # a window of 15 saves nothing
        ({"num_centers": 23, "width": 0.5}, False),  # a = 0.36: a window of 37
    ],
)
def test_rbf_values_by_windows_where_the_centres_allow(kernels_on, build, options, windowed):
    """Evenly spaced centres whose window is short of K: values from two exps and a division
    per input (the AVX-512 build's rbf_window_rows; the other builds keep one exp per value).
    Against the float64 formula at the stored centres, at random inputs, a few float32 steps
    around every centre and midpoint, at the flush distance and far out: within 6e-7 (the
    window's lattice corrected to the stored float32 centres: without that correction the
    second case is off by 3e-6), and non-zero exactly where the formula is above the flush.
    NaN in, NaN out; the input gradient matches the eager path."""
    from lightning_kan.bases import gaussian

    layer = KANLinear(3, 2, basis="rbf", basis_kwargs=options, base_activation="none")
    basis = layer.basis
    assert basis.native_kernel().params[3] == (1.0 if windowed else 0.0)
    centres = basis.centers
    points = torch.cat([centres, (centres[1:] + centres[:-1]) / 2])
    steps = torch.tensor([-3e-7, -1e-7, 0.0, 1e-7, 3e-7]) * centres.abs().max().clamp_min(1)
    reach = 6.66 * basis.width
    edges = torch.tensor([reach, -reach, 1.2 * reach, 9.0, -9.0, 50.0, -50.0, 1e4, -1e4, 0.0])
    x = torch.cat(
        [
            (torch.randn(300, generator=torch.Generator().manual_seed(0)) * centres.std() * 1.5),
            (points.unsqueeze(-1) + steps).flatten(),
            centres[0] + edges,
            centres[-1] + edges,
        ]
    )
    x = x[: x.numel() // 3 * 3].view(-1, 3)
    values = expand_features(x, basis, None)
    exact = _unflushed_rbf_values(basis, x)
    torch.testing.assert_close(values.double(), exact, atol=6e-7, rtol=0)
    clear = (exact - gaussian.FLUSH).abs() > 0.01 * gaussian.FLUSH  # not at the flush itself
    assert torch.equal((values != 0)[clear], (exact != 0)[clear])  # the window holds every value
    nan_row = torch.tensor([[float("nan"), 0.1, float("inf")]])
    values = expand_features(nan_row, basis, None).view(3, -1)
    assert torch.isnan(values[0]).all() and not torch.isnan(values[1:]).any()
    _assert_features_match_the_eager_path(layer, x, "rbf")


@needs_kernels
def test_fourier_is_exact_at_large_inputs(kernels_on):
    """One sincos and angle addition: cos(m x) of the float32 x to 1e-5 up to |x| = 1e3."""
    x = torch.linspace(-1e3, 1e3, 997).view(-1, 1)
    layer = KANLinear(1, 1, basis="fourierkan", base_activation="none")
    values = expand_features(x, layer.basis, None).double()
    m = torch.arange(1, 6, dtype=torch.float64)
    exact = torch.cat([torch.cos(m * x.double()), torch.sin(m * x.double())], -1)
    torch.testing.assert_close(values, exact, atol=1e-5, rtol=0)
    far = expand_features(torch.tensor([[1e4], [-3e5]]), layer.basis, None)
    assert torch.isfinite(far).all() and far.abs().max() <= 1.0 + 1e-6


@needs_kernels
def test_nan_inputs_give_nan_not_garbage(kernels_on):
    for basis in ("bspline", "chebyshev", "rbf", "fourierkan", "relukan", "bernstein"):
        layer = KANLinear(3, 2, basis=basis)
        x = torch.tensor([[float("nan"), 0.5, -0.5]])
        native.set_enabled(True)
        y_native = layer(x)
        native.set_enabled(False)
        y_eager = layer(x)
        assert torch.isnan(y_native).all() == torch.isnan(y_eager).all(), basis


@needs_kernels
@pytest.mark.parametrize("grid_size", [2, 5])
def test_a_nan_input_leaves_its_neighbours_alone(kernels_on, build, grid_size):
    """A cubic B-spline on a coarse grid (the AVX-512 build permutes each pair of inputs'
    four local values into place with one instruction): a NaN input gives NaN among its
    own K columns, and every other input's columns equal the torch path's."""
    layer = KANLinear(5, 2, basis="bspline", basis_kwargs={"grid_size": grid_size})
    x = torch.tensor([[0.3, float("nan"), -0.7, 0.9, float("nan")], [1e4, -1e4, 0.0, 1.0, -1.0]])
    native.set_enabled(True)
    features_native = expand_features(x, layer.basis, None).unflatten(-1, (5, -1))
    native.set_enabled(False)
    features_eager = expand_features(x, layer.basis, None).unflatten(-1, (5, -1))
    nan_input = x.isnan()
    assert features_native[nan_input].isnan().any(dim=-1).all()
    _assert_close(features_native[~nan_input], features_eager[~nan_input], "other inputs")


@needs_kernels
@pytest.mark.parametrize("in_features", [1, 3, 31, 33, 70])
@pytest.mark.parametrize(
    ("basis", "options"),
    [
        ("bspline", {}),
        ("bspline", {"grid_size": 20}),
        ("relukan", {}),
        ("wavelet", {}),
        ("chebyshev", {}),
    ],
)
def test_block_tails_threads_strides_and_batch_axes(kernels_on, build, in_features, basis, options):
    """Inputs not a multiple of the kernel's 32-lane blocks (whole blocks read per-input
    tables in place, partial ones from a copy), 1 vs 2 threads, a transposed input and
    leading batch axes all give the eager path's numbers."""
    layer = KANLinear(in_features, 2, basis=basis, basis_kwargs=options)
    shift = torch.randn(in_features, 1, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.no_grad():  # per-input tables that differ by input (knots, centres, edges)
        for table in layer.basis.buffers():
            if table.dim() == 2 and table.shape[0] == in_features and table.is_floating_point():
                table.add_(shift)
    x = torch.randn(in_features, 300).t() * 1.5  # strided
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        features_one, grad_features_one = _features_and_grads(layer, x)
        y_one, grad_one = _layer_and_grads(layer, x, True)
        torch.set_num_threads(2)
        features_two, grad_features_two = _features_and_grads(layer, x)
    finally:
        torch.set_num_threads(threads)
    y_eager, grad_eager = _layer_and_grads(layer, x, False)
    assert torch.equal(features_one, features_two)
    assert torch.equal(grad_features_one, grad_features_two)
    _assert_close(y_one, y_eager, "output")
    _assert_close(grad_one, grad_eager, "input gradient")
    batched = x.reshape(3, 100, in_features)
    native.set_enabled(True)
    torch.testing.assert_close(layer(batched).reshape(300, 2), y_eager, rtol=1e-5, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize(
    ("basis", "options"), [("bspline", {"grid_size": 80}), ("fourierkan", {"grid_size": 40})]
)
def test_more_functions_than_a_kernel_holds_take_the_torch_path(kernels_on, basis, options):
    """K > native.MAX_FUNCTIONS (a refined pykan grid reaches G = 100): no kernel call."""
    layer = KANLinear(4, 2, basis=basis, basis_kwargs=options)
    assert layer.basis.num_functions > native.MAX_FUNCTIONS
    x = _inputs(4)
    y_on, grad_on = _layer_and_grads(layer, x, True)
    y_off, grad_off = _layer_and_grads(layer, x, False)
    assert torch.equal(y_on, y_off) and torch.equal(grad_on, grad_off)


@needs_kernels
def test_double_backward_and_float64_use_the_torch_path(kernels_on, monkeypatch):
    """gPINN-style double backward needs a graph, float64 needs float64: no kernel call."""
    calls = []
    monkeypatch.setattr(native, "expand", lambda *a: calls.append(a))
    monkeypatch.setattr(native, "input_grad", lambda *a: calls.append(a))
    layer = KANLinear(2, 1, basis="chebyshev").double()
    x = torch.rand(9, 2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    grad.sum().backward()
    assert calls == []


@needs_kernels
@pytest.mark.parametrize(
    ("basis", "options"),
    [
        ("rswaf", {"trainable_width": True}),
        ("wavelet", {"trainable": True}),
        ("relukan", {"trainable": True}),
        ("gram", {"trainable_beta": True}),
        ("legendre", {"normalization": "minmax"}),
        ("bspline", {"spline_order": 0}),
    ],
)
def test_trainable_and_coupled_bases_have_no_kernel(basis, options):
    assert KANLinear(3, 2, basis=basis, basis_kwargs=options).basis.native_kernel() is None


def test_a_non_uniform_bspline_grid_has_no_kernel():
    layer = KANLinear(3, 2, basis="bspline")
    layer.basis.set_knots(torch.linspace(-2, 2, 12).pow(3).expand(3, -1).clone())
    assert layer.basis.native_kernel() is None  # non-uniform knots: de Boor in torch


def test_kernels_are_built_where_a_compiler_exists():
    """`pip install` builds them when a C compiler is present (CI's machines have one)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")
    assert native._LIBRARY is not None, "lightning_kan/native/_kernels*.so was not built"
    builds = native.builds_for_this_cpu()
    widest = next(iter(builds.values()))
    assert native._LIBRARY is widest, "the widest build this CPU runs is used"


@pytest.mark.parametrize(
    ("function", "arity"), [("expand", 11), ("input_grad", 12), ("spline_linear", 18)]
)
def test_every_build_refuses_a_call_with_the_wrong_arguments(build, function, arity):
    """The module functions take integers only (addresses for pointers): a wrong count or
    a non-integer is a TypeError naming the function, never a call with garbage."""
    kernel = getattr(native._LIBRARY, function)
    with pytest.raises(TypeError, match=f"{function} takes {arity} integer arguments, got 2"):
        kernel(0, 0)
    with pytest.raises(TypeError):
        kernel(*([0] * (arity - 1)), torch.zeros(1))


def test_switching_on_without_the_library_says_why(monkeypatch):
    monkeypatch.setattr(native, "_LIBRARY", None)
    with pytest.raises(RuntimeError, match="not available in this install"):
        native.set_enabled(True)


# ------------------------------------------------------------------ reused buffers
def test_a_buffer_in_use_is_never_reused():
    """Two forwards before one backward (gradient accumulation, a shared layer): the
    first graph's features must survive the second forward."""
    torch.manual_seed(0)
    layer = KANLinear(300, 8, basis="chebyshev")  # 1200 x 2700 floats: above MIN_BYTES
    first, second = torch.rand(1200, 300), torch.rand(1200, 300)
    reference = KANLinear(300, 8, basis="chebyshev")
    reference.load_state_dict(layer.state_dict())
    (layer(first).square().sum() + layer(second).square().sum()).backward()
    for batch in (first, second):  # one graph at a time
        buffers.release_feature_buffers()
        reference(batch).square().sum().backward()
    for got, want in zip(layer.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-4)


def test_a_free_buffer_is_reused_and_a_held_one_is_not():
    layer = KANLinear(300, 8, basis="chebyshev")
    x = torch.rand(1200, 300)
    buffers.release_feature_buffers()
    with torch.no_grad():
        held = expand_features(x, layer.basis, layer.activation)
        kept = held.clone()
        other = expand_features(torch.rand(1200, 300), layer.basis, layer.activation)
        assert other.data_ptr() != held.data_ptr()  # held by the caller: not reused
        torch.testing.assert_close(held, kept, rtol=0, atol=0)
        pointer = other.data_ptr()
        del other
        again = expand_features(x, layer.basis, layer.activation)
        assert again.data_ptr() == pointer  # free: reused
        torch.testing.assert_close(again, kept, rtol=0, atol=0)


def test_a_free_buffer_of_another_shape_is_not_handed_out():
    """Reuse is by shape: a free buffer with the same byte count but another shape stays
    in the pool, and the tensors handed out are never views of one another."""
    layer = KANLinear(300, 8, basis="chebyshev")  # K = 8 plus the base: 2700 per row
    buffers.release_feature_buffers()
    with torch.no_grad():
        first = expand_features(torch.rand(1200, 300), layer.basis, layer.activation)
        pointer = first.data_ptr()
        del first
        shape = (600, 2, 300)  # the same 1200 x 300 inputs in another batch layout
        second = expand_features(torch.rand(*shape), layer.basis, layer.activation)
    assert second.shape == (600, 2, 2700) and second.data_ptr() != pointer
    assert not second._is_view()


def test_small_buffers_are_not_pooled():
    layer = KANLinear(4, 2)
    buffers.release_feature_buffers()
    with torch.no_grad():
        expand_features(torch.rand(8, 4), layer.basis, layer.activation)
    assert layer.basis not in buffers._pools


def _unflushed_rbf(basis, x: torch.Tensor) -> torch.Tensor:
    z = (x.double().unsqueeze(-1) - basis.centers.double()) / basis.width
    return torch.exp(-z.square()).flatten(-2)


def _unflushed_mexican_hat(basis, x: torch.Tensor) -> torch.Tensor:
    t = (x.double().unsqueeze(-1) - basis.translation.double()) / basis.log_scale.double().exp()
    hat = 2 / (math.sqrt(3) * math.pi**0.25) * (1 - t.square()) * torch.exp(-t.square() / 2)
    return hat.flatten(-2)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize(
    ("basis", "options", "unflushed"),
    [("rbf", {"num_centers": 23}, _unflushed_rbf), ("wavelet", {}, _unflushed_mexican_hat)],
)
def test_gaussian_tails_are_flushed_not_subnormal(basis, options, unflushed, enabled):
    """Far centres' tails are 0 or at least gaussian.FLUSH (so their products with the
    weights stay normal numbers in the GEMMs), within FLUSH of the unflushed float64
    formula, with the kernels on and off."""
    from lightning_kan.bases import gaussian

    built = native._LIBRARY is not None
    if enabled and not built:
        pytest.skip("C kernels not built")
    layer = KANLinear(4, 2, basis=basis, basis_kwargs=options, base_activation="none")
    x = torch.linspace(-30, 30, 4000).view(-1, 4)
    previous = native.set_enabled(enabled) if built else False
    try:
        values = expand_features(x, layer.basis, None)
    finally:
        if built:
            native.set_enabled(previous)
    assert values[values != 0].abs().min() >= gaussian.FLUSH
    assert (values == 0).any()  # the range reaches the flushed tails
    exact = unflushed(layer.basis, x)
    assert ((values.double() - exact).abs() <= gaussian.FLUSH + 1e-6 * exact.abs() + 1e-7).all()


@needs_kernels
def test_the_cached_kernel_follows_grid_updates_loads_and_attributes(kernels_on):
    """The kernel description is cached per basis and rebuilt when the basis changes:
    an in-place grid update, a state dict load, a refined grid, a new width."""
    torch.manual_seed(0)
    x = torch.randn(64, 3) * 2

    def check(layer):
        y_native, grad_native = _layer_and_grads(layer, x, True)
        y_eager, grad_eager = _layer_and_grads(layer, x, False)
        _assert_close(y_native, y_eager, "output")
        _assert_close(grad_native, grad_eager, "input gradient")
        native.set_enabled(True)

    layer = KANLinear(3, 2, basis="bspline")
    check(layer)
    layer.update_grid(x * 0.5, grid_eps=1.0)  # uniform knots, in place on the same storage
    check(layer)
    other = KANLinear(3, 2, basis="bspline")
    other.update_grid(x * 3, grid_eps=1.0)
    layer.load_state_dict(other.state_dict())
    check(layer)
    layer.refine_grid(9)
    check(layer)
    rbf = KANLinear(3, 2, basis="rbf")
    check(rbf)
    rbf.basis.width = 0.3  # a plain attribute the kernel reads
    check(rbf)


@needs_kernels
def test_the_kernel_constants_stay_on_the_cpu_under_another_default_device(kernels_on):
    """``torch.set_default_device`` does not move the constants the C code reads."""
    layer = KANLinear(3, 2, basis="rbf")
    x = torch.rand(5, 3)
    expected = expand_features(x, layer.basis, layer.activation)
    kernel = layer.basis.native_kernel()
    with torch.device("meta"):
        _, _, (params, _) = kernel.call_arguments
    assert params.device.type == "cpu"
    torch.testing.assert_close(expand_features(x, layer.basis, layer.activation), expected)
    out = torch.empty_like(expected)  # the constants built under "meta" drive the C code
    native.expand(kernel, x, out, layer.basis.num_functions, native.BASE_CODES["silu"])
    torch.testing.assert_close(out, expected)
