"""``torch.export``, ``torch.jit.trace`` and ONNX export (both exporters) of every basis.

Every exported program is run and compared with the eager model, also on a batch size
other than the export example's where the export allows one.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from conftest import BASES
from test_transforms import FAMILIES, LIBRARY_BASES, build_layer
from torch import nn

from lightning_kan.nets import KAN


def _net(basis: str, non_uniform: bool = False) -> nn.Module:
    """A ``[3, 4, 2]`` KAN in eval mode; B-spline grids moved off uniform on request."""
    net = KAN([3, 4, 2], basis=basis, basis_kwargs=BASES.get(basis, {})).eval()
    if non_uniform:
        net.layers[0].update_grid(torch.randn(64, 3) * 0.7)
        assert not net.layers[0].basis.is_uniform
    return net


NETS = [(basis, False) for basis in LIBRARY_BASES] + [("bspline", True)]
NET_IDS = [basis + ("-nonuniform" if moved else "") for basis, moved in NETS]


def _assert_matches(program, model: nn.Module, *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        for x in inputs:
            torch.testing.assert_close(program(x), model(x))


# ------------------------------------------------------------------------ torch.export
@pytest.mark.parametrize("strict", [False, True], ids=["nonstrict", "strict"])
@pytest.mark.parametrize(("basis", "non_uniform"), NETS, ids=NET_IDS)
def test_torch_export_matches_eager(basis, non_uniform, strict):
    net = _net(basis, non_uniform)
    x, other = torch.randn(5, 3), torch.randn(9, 3) * 2
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (x,), dynamic_shapes=({0: batch},), strict=strict)
    _assert_matches(program.module(), net, x, other)


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_export_of_every_layer_family(family):
    layer, shape = build_layer(family, "chebyshev")
    x = torch.rand(2, *shape, dtype=torch.float64) * 2 - 1
    _assert_matches(torch.export.export(layer, (x,)).module(), layer, x)


@pytest.mark.parametrize(
    "basis_options",
    [
        {"basis": "gram", "basis_kwargs": {"degree": 4, "num_points": 11}},
        {"basis": "bspline", "basis_kwargs": {"spline_order": 0}},
        {"basis": "bspline", "basis_kwargs": {"spline_order": 3}},
    ],
    ids=["gram", "bspline-order0", "bspline-order3"],
)
def test_export_first_leaves_eager_working(basis_options):
    """In a fresh process: ``torch.export`` before any eager call must not leave symbolic
    numbers in a module-level cache (Gram coefficients, B-spline tables)."""
    script = textwrap.dedent(
        f"""
        import torch
        from lightning_kan.nets import KAN

        options = {basis_options!r}
        net = KAN([3, 4, 2], **options)
        x = torch.randn(5, 3)
        program = torch.export.export(net, (x,))
        eager = net(x)  # raised GuardOnDataDependentSymNode before the fix
        torch.testing.assert_close(program.module()(x), eager)
        x.requires_grad_(True)  # the fused backward and a double backward
        (grad_x,) = torch.autograd.grad(KAN([3, 2], **options)(x).sum(), x, create_graph=True)
        grad_x.sum().backward()
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


# ---------------------------------------------------------------------- torch.jit.trace
@pytest.mark.parametrize(("basis", "non_uniform"), NETS, ids=NET_IDS)
def test_jit_trace_matches_eager(basis, non_uniform):
    net = _net(basis, non_uniform)
    x, other = torch.randn(5, 3), torch.randn(9, 3) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.trace is deprecated upstream
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the layers' shape checks
        traced = torch.jit.trace(net, (x,))
    _assert_matches(traced, net, x, other)


@pytest.mark.parametrize("family", FAMILIES)
def test_jit_trace_of_every_layer_family(family):
    layer, shape = build_layer(family, "bspline")
    x = torch.rand(2, *shape, dtype=torch.float64) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(layer, (x,))
    _assert_matches(traced, layer, x)


# -------------------------------------------------------------------------------- ONNX
def _onnx_bytes(net: nn.Module, x: torch.Tensor, dynamo: bool, dynamic: bool) -> bytes:
    names = {"input_names": ["x"], "output_names": ["y"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation, dynamo chatter
        if dynamo:
            shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
            program = torch.onnx.export(
                net, (x,), dynamo=True, dynamic_shapes=shapes, verbose=False, **names
            )
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
        torch.onnx.export(net, (x,), buffer, dynamo=False, dynamic_axes=axes, **names)
        return buffer.getvalue()


def _check_onnx(model: nn.Module, x: torch.Tensor, dynamo: bool, dynamic: bool) -> None:
    """Export ``model`` at ``x``, run it in onnxruntime and compare with eager."""
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    session = ort.InferenceSession(
        _onnx_bytes(model, x, dynamo, dynamic), providers=["CPUExecutionProvider"]
    )
    # the input must be a graph input: a constant-folded graph ignores it
    assert [node.name for node in session.get_inputs()] == ["x"]
    other_batch = torch.rand(x.shape[0] + 3, *x.shape[1:]) * 3 - 1.5
    samples = [x, torch.rand_like(x) * 3 - 1.5] + ([other_batch] if dynamic else [])
    with torch.no_grad():
        for sample in samples:
            (y,) = session.run(None, {"x": sample.numpy()})
            torch.testing.assert_close(torch.from_numpy(y), model(sample), rtol=1e-5, atol=1e-5)
    if not dynamic:  # a fixed-shape graph refuses another batch size instead of guessing
        with pytest.raises(Exception, match=r"(?i)dimension|shape"):
            session.run(None, {"x": other_batch.numpy()})


EXPORTERS = [False, True]
EXPORTER_IDS = ["legacy", "dynamo"]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("dynamo", EXPORTERS, ids=EXPORTER_IDS)
@pytest.mark.parametrize(("basis", "non_uniform"), NETS, ids=NET_IDS)
def test_onnx_export_matches_eager(basis, non_uniform, dynamo, dynamic):
    _check_onnx(_net(basis, non_uniform), torch.randn(5, 3), dynamo, dynamic)


@pytest.mark.parametrize("dynamo", EXPORTERS, ids=EXPORTER_IDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_export_of_every_layer_family(family, dynamo):
    layer, shape = build_layer(family, "bspline")
    layer = layer.float().eval()
    _check_onnx(layer, torch.rand(2, *shape) * 2 - 1, dynamo, dynamic=True)
