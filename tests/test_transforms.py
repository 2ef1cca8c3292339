"""``torch.func`` transforms and forward-mode AD on every basis and layer family.

Each transform is checked in float64 against plain autograd on the eager layer (the
fused expansion with its hand-written backward), to round-off.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import BASES
from torch import nn
from torch.autograd import forward_ad
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, vmap

from lightning_kan.bases import available_bases, build_basis
from lightning_kan.layers import (
    KANConv1d,
    KANConv2d,
    KANConv3d,
    KANLinear,
    MetaKANConv1d,
    MetaKANConv2d,
    MetaKANConv3d,
    MetaKANLinear,
    SlimKANConv1d,
    SlimKANConv2d,
    SlimKANConv3d,
    SlimKANLinear,
    expand_features,
)

#: every basis the library registers (user bases registered by other tests excluded)
LIBRARY_BASES = [
    name
    for name in available_bases()
    if type(build_basis(name, 2)).__module__.startswith("lightning_kan.")
]

NON_UNIFORM = "bspline-nonuniform"
_CONVS = {
    "conv": (KANConv1d, KANConv2d, KANConv3d),
    "slim_conv": (SlimKANConv1d, SlimKANConv2d, SlimKANConv3d),
    "meta_conv": (MetaKANConv1d, MetaKANConv2d, MetaKANConv3d),
}
_FAMILY_OPTIONS = {"slim": {"ranks": 2}, "meta": {"hidden_dim": 4, "chunk_size": 4}}


def build_layer(family: str, basis: str) -> tuple[nn.Module, tuple[int, ...]]:
    """A small float64 layer of ``family`` and the shape of one (unbatched) sample.

    ``basis="bspline-nonuniform"``: B-splines on jittered knots (de Boor's path).
    """
    if basis == NON_UNIFORM:
        layer, shape = build_layer(family, "bspline")
        knots = layer.basis.grid.clone()
        knots[:, 1:-1] += (torch.rand_like(knots[:, 1:-1]) - 0.5) * 0.4 * knots.diff(dim=-1)[:, :1]
        layer.basis.set_knots(knots)
        return layer, shape
    options = {"basis": basis, "basis_kwargs": BASES.get(basis, {})}
    options.update(_FAMILY_OPTIONS.get(family.split("_")[0].rstrip("123"), {}))
    if family in ("dense", "slim", "meta"):
        cls = {"dense": KANLinear, "slim": SlimKANLinear, "meta": MetaKANLinear}[family]
        return cls(3, 2, **options).double(), (3,)
    ndim = int(family[-1])
    options.pop("chunk_size", None)
    layer = _CONVS[family[:-1]][ndim - 1](2, 2, 2, **options).double()
    if family.startswith("meta"):
        layer.chunk_size = 4  # several generation blocks in the eager reference
    return layer, (2, *[3 if ndim < 3 else 2] * ndim)  # 3-D: one output position


FAMILIES = [
    "dense",
    "slim",
    "meta",
    *(f"{kind}{ndim}" for kind in _CONVS for ndim in (1, 2, 3)),
]
CASES = [(family, basis) for family in FAMILIES for basis in [*LIBRARY_BASES, NON_UNIFORM]]


def _samples(shape: tuple[int, ...], batch: int = 3) -> torch.Tensor:
    # inside and outside the B-spline grid [-1, 1]
    return torch.rand(batch, *shape, dtype=torch.float64) * 3 - 1.5


def _autograd_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """``d fn(x) / d x`` row by row with ``torch.autograd.grad`` (the reference)."""
    x = x.detach().requires_grad_(True)
    out = fn(x)
    rows = [
        torch.autograd.grad(value, x, retain_graph=True)[0] for value in out.reshape(-1).unbind()
    ]
    return torch.stack(rows).reshape(*out.shape, *x.shape)


def test_every_library_basis_is_covered():
    assert set(LIBRARY_BASES) >= {"bspline", "chebyshev", "gram", "legendre", "rbf", "rswaf"}


@pytest.mark.parametrize(("family", "basis"), CASES)
def test_vmap_matches_the_batched_forward(family, basis):
    layer, shape = build_layer(family, basis)
    x = _samples(shape)
    torch.testing.assert_close(vmap(layer)(x), layer(x))


@pytest.mark.parametrize(("family", "basis"), CASES)
def test_jacrev_and_jacfwd_match_autograd(family, basis):
    layer, shape = build_layer(family, basis)
    x = _samples(shape)
    expected = torch.stack([_autograd_jacobian(layer, sample) for sample in x])
    torch.testing.assert_close(vmap(jacrev(layer))(x), expected)
    torch.testing.assert_close(vmap(jacfwd(layer))(x), expected)


@pytest.mark.parametrize(("family", "basis"), CASES)
def test_hessian_matches_double_backward(family, basis):
    layer, shape = build_layer(family, basis)
    x = _samples(shape, batch=1)[0]

    def energy(sample: torch.Tensor) -> torch.Tensor:
        return layer(sample).square().sum()

    def input_grad(sample: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(energy(sample), sample, create_graph=True)[0]

    torch.testing.assert_close(hessian(energy)(x), _autograd_jacobian(input_grad, x))


@pytest.mark.parametrize(("family", "basis"), CASES)
def test_per_sample_gradients_match_a_loop(family, basis):
    layer, shape = build_layer(family, basis)
    x = _samples(shape)
    target = torch.randn_like(layer(x))
    params = {name: p.detach() for name, p in layer.named_parameters()}

    def loss(parameters, sample, goal):
        out = functional_call(layer, parameters, (sample.unsqueeze(0),))
        return (out - goal.unsqueeze(0)).square().sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, target)
    for index in range(x.shape[0]):
        layer.zero_grad()
        loss(dict(layer.named_parameters()), x[index], target[index]).backward()
        for name, parameter in layer.named_parameters():
            torch.testing.assert_close(per_sample[name][index], parameter.grad, msg=name)


@pytest.mark.parametrize("basis", [*LIBRARY_BASES, NON_UNIFORM])
def test_forward_mode_ad_matches_the_jacobian(basis):
    layer, shape = build_layer("dense", basis)
    x, tangent = _samples(shape), torch.randn(3, *shape, dtype=torch.float64)
    with forward_ad.dual_level():
        jvp = forward_ad.unpack_dual(layer(forward_ad.make_dual(x, tangent))).tangent
    jacobians = torch.stack([_autograd_jacobian(layer, sample) for sample in x])
    torch.testing.assert_close(jvp, torch.einsum("noi,ni->no", jacobians, tangent))


@pytest.mark.parametrize("basis", LIBRARY_BASES)
def test_eager_training_keeps_the_fused_expansion(basis):
    """Outside transforms and tracing the fast fused path stays in use (its speed)."""
    layer, shape = build_layer("dense", basis)
    x = _samples(shape).requires_grad_(True)
    features = expand_features(x, layer.basis, layer.activation)
    assert "_FusedExpansion" in features.grad_fn.name()
    with forward_ad.dual_level():  # ... and gives way to plain autograd under a transform
        dual = expand_features(forward_ad.make_dual(x, torch.ones_like(x)), layer.basis, None)
        assert "_FusedExpansion" not in dual.grad_fn.name()
