"""Coefficient families as strategies: a new family in a few lines, exact parameter
counts, outputs against a slow einsum reference, old state-dict keys, activations as
modules."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan import lotra
from lightning_kan.layers import KANConv2d, KANLinear, MetaLearner, expand_features
from lightning_kan.layers.coefficients import (
    Coefficients,
    Dense,
    available_coefficients,
    build_coefficients,
    register_coefficients,
    reset_base_weight,
)
from lightning_kan.layers.meta import Generated
from lightning_kan.layers.slim import SlimKANLinear, Tucker
from lightning_kan.nets import KAN, ConvKAN, MetaConvKAN, MetaKAN, SlimConvKAN, SlimKAN


# ---------------------------------------------------------------- the seam: a CP family
@register_coefficients("cp")
class CP(Coefficients):
    """weight[o, i, k, *t] = sum_r A[o, r] B[i, r] C[k, r, *t] (kernel taps stay in C)."""

    stores = frozenset({"base_weight"})

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank

    def build(self, layer, shape, base):
        out_features, inputs, num_functions, *kernel = shape
        layer.cp_out = nn.Parameter(torch.empty(out_features, self.rank))
        layer.cp_in = nn.Parameter(torch.empty(inputs, self.rank))
        layer.cp_basis = nn.Parameter(torch.empty(num_functions, self.rank, *kernel))
        Dense.build_base(layer, shape, base)  # a dense base_weight (O, I, *kernel) or None

    def reset(self, layer, bound):
        for factor in (layer.cp_out, layer.cp_in, layer.cp_basis):
            nn.init.uniform_(factor, -1.0, 1.0)
        reset_base_weight(layer)

    def tensors(self, layer):
        weight = torch.einsum("or,ir,kr...->oik...", layer.cp_out, layer.cp_in, layer.cp_basis)
        return weight, layer.base_weight


# ---------------------------------------------------------------- slow references
def reference_linear(layer: KANLinear, x: torch.Tensor) -> torch.Tensor:
    """``sum_{i,k} W[o,i,k] phi_k(x_i) + sum_i B[o,i] b(x_i) + bias`` by einsum."""
    weight, base = layer.coefficients.tensors(layer)
    y = torch.einsum("nik,oik->no", layer.basis(x), weight)
    if base is not None:
        y = y + layer.activation(x) @ base.T
    return y + (0 if layer.bias is None else layer.bias)


def reference_conv2d(layer: KANConv2d, x: torch.Tensor) -> torch.Tensor:
    """Patches of the basis values and ``b(x)`` (``F.unfold``, no padding) times the
    weight, by einsum: an independent route to a stride-1 KAN convolution."""
    weight, base = layer.coefficients.tensors(layer)
    kh, kw = layer.kernel_size
    values = layer.basis(x.movedim(1, -1)).permute(0, 3, 4, 1, 2)  # (N, C, K, H, W)
    n, c, k, h, w = values.shape
    patches = F.unfold(values.reshape(n, c * k, h, w), (kh, kw)).view(n, c, k, kh, kw, -1)
    y = torch.einsum("ncktul,ocktu->nol", patches, weight)
    if base is not None:
        base_patches = F.unfold(layer.activation(x), (kh, kw)).view(n, c, kh, kw, -1)
        y = y + torch.einsum("nctul,octu->nol", base_patches, base)
    if layer.bias is not None:
        y = y + layer.bias[:, None]
    return y.view(n, -1, h - kh + 1, w - kw + 1)


FAMILIES = {
    "dense": lambda: "dense",
    "tucker": lambda: Tucker((2, 3, 4)),
    "generated": lambda: Generated(hidden_dim=5, chunk_size=7),
    "cp": lambda: CP(rank=3),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("base_activation", ["silu", None])
def test_every_family_matches_the_einsum_reference_in_linear_and_conv(family, base_activation):
    torch.manual_seed(0)
    options = {"coefficients": FAMILIES[family](), "base_activation": base_activation}
    layer = KANLinear(4, 5, **options).double()
    x = torch.rand(9, 4, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(layer(x), reference_linear(layer, x))
    conv = KANConv2d(3, 4, (3, 2), **options).double()
    image = torch.rand(2, 3, 6, 5, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(conv(image), reference_conv2d(conv, image))
    torch.testing.assert_close(layer.weight, layer.coefficients.tensors(layer)[0])


def test_exact_parameter_counts_of_the_families():
    O, I, K = 5, 4, 8  # noqa: E741 - the shapes of the docstrings
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(KANLinear(I, O)) == O * I * K + O * I + O
    assert count(KANLinear(I, O, coefficients=Tucker((2, 3, 4)))) == (
        2 * 3 * 4 + O * 2 + I * 3 + K * 4 + O * I + O
    )
    learner = MetaLearner(K + 1, embed_dim=2, hidden_dim=5)
    meta = KANLinear(I, O, coefficients=Generated(learner), bias=False)
    assert count(meta) == O * I * 2 + (2 * 5 + 5 + 5 * (K + 1) + K + 1)
    assert count(KANLinear(I, O, coefficients="cp", coefficients_kwargs={"rank": 3})) == (
        3 * (O + I + K) + O * I + O
    )
    taps = 3 * 2
    assert count(KANConv2d(I, O, (3, 2), coefficients=CP(3))) == (
        3 * (O + I + K * taps) + O * I * taps + O
    )


def test_a_cp_family_registered_by_name_builds_nets_and_trains_under_lotra():
    assert "cp" in available_coefficients()
    net = KAN([3, 4, 2], coefficients="cp", coefficients_kwargs={"rank": 2})
    assert [type(layer.coefficients) for layer in net.layers] == [CP, CP]
    conv_net = ConvKAN(1, 3, channels=(2,), coefficients=[CP(2), "dense"])
    assert isinstance(conv_net.blocks[0][0].coefficients, CP)
    conv = KANConv2d(2, 3, 3, coefficients=CP(2))  # C (K, R, 3, 3): LoTRA's 3+-D tensor
    image = torch.randn(2, 2, 5, 5)
    before = conv(image).detach()
    lotra.add_adapter(conv, ranks=2, parameter_name="cp_basis")
    torch.testing.assert_close(conv(image), before)  # zero-initialised delta
    conv(image).square().sum().backward()
    trainable = [name for name, p in conv.named_parameters() if p.requires_grad]
    assert trainable and all(conv.get_parameter(n).grad is not None for n in trainable)
    assert not conv.parametrizations["cp_basis"].original.requires_grad


def test_lotra_still_adapts_dense_weight_tucker_core_and_meta_prompts():
    x = torch.randn(6, 3)
    for name, layer in (
        ("weight", KANLinear(3, 4)),
        ("core", KANLinear(3, 4, coefficients=Tucker(2))),
        ("prompts", KANLinear(3, 4, coefficients=Generated(embed_dim=2))),
    ):
        before = layer(x).detach()
        assert len(lotra.add_adapter(layer, ranks=1, parameter_name=name, clip_ranks=True)) == 1
        torch.testing.assert_close(layer(x), before)
        assert name in layer.parametrizations


# keys read from the state dicts of commit 320834d (before coefficient strategies)
OLD_KEYS = {
    "KAN": (lambda: KAN([2, 3, 1]), ["layers.0.weight", "layers.0.base_weight", "layers.1.bias"]),
    "SlimKAN": (
        lambda: SlimKAN([2, 3, 1], ranks=2),
        ["layers.0.core", "layers.0.factor_out", "layers.0.factor_in", "layers.1.factor_basis"],
    ),
    "MetaKAN": (
        lambda: MetaKAN([2, 3, 4, 1], n_clusters=2, hidden_dim=4),
        ["layers.2.prompts", "layers.1.meta_learner.net.2.weight", "meta_learners.1.net.0.bias"],
    ),
    "SlimConvKAN": (
        lambda: SlimConvKAN(1, 3, channels=(2, 4), ranks=2),
        ["blocks.1.0.core", "blocks.0.0.base_weight", "head.factor_basis"],
    ),
    "MetaConvKAN": (
        lambda: MetaConvKAN(1, 3, channels=(2, 4), hidden_dim=4),
        ["blocks.0.0.prompts", "head.meta_learner.net.0.weight", "meta_learners.0.net.2.bias"],
    ),
}


@pytest.mark.parametrize("name", sorted(OLD_KEYS))
def test_old_state_dict_keys_are_unchanged_and_load(name):
    build, keys = OLD_KEYS[name]
    torch.manual_seed(0)
    saved = build().state_dict()
    assert set(keys) <= set(saved)
    torch.manual_seed(1)
    fresh = build()
    fresh.load_state_dict(saved)  # strict: no missing or unexpected key
    for key in keys:
        torch.testing.assert_close(fresh.state_dict()[key], saved[key])


def test_a_named_family_is_the_preset_layer_and_net():
    torch.manual_seed(0)
    slim = SlimKAN([3, 4, 2], ranks=2)
    torch.manual_seed(0)
    named = KAN([3, 4, 2], coefficients="tucker", coefficients_kwargs={"ranks": 2})
    assert slim.state_dict().keys() == named.state_dict().keys()
    x = torch.randn(5, 3)
    torch.testing.assert_close(slim(x), named(x))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: build_coefficients("cpp"), r"unknown coefficients 'cpp'; expected one of \["),
        (lambda: build_coefficients(Tucker(2), {"ranks": 3}), "ready Tucker instance"),
        (lambda: build_coefficients(3), "coefficients must be a registered name"),
        (lambda: build_coefficients("tucker", {"rank": 3}), "does not take coefficients_kwargs"),
        (lambda: register_coefficients("dense")(CP), "already registered"),
        (lambda: KAN([2, 3, 1], coefficients=[CP()]), "lists 1 entries but the network has 2"),
        (lambda: Tucker(2, contraction="fast"), "contraction must be one of"),
        (lambda: KANConv2d(4, 4, 3, groups=2, coefficients="tucker"), "groups=2"),
    ],
)
def test_bad_coefficient_options_are_refused_clearly(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


# ---------------------------------------------------------------- activations as modules
def test_a_prelu_base_activation_is_trained_saved_and_moved_with_the_layer():
    layer = KANLinear(3, 2, base_activation=nn.PReLU())
    (prelu_weight,) = layer.activation.parameters()
    assert "activation.fn.weight" in layer.state_dict()
    assert any(p is prelu_weight for p in layer.parameters())
    layer(torch.randn(8, 3)).sum().backward()
    assert prelu_weight.grad is not None and prelu_weight.grad.abs().item() > 0
    layer.to(torch.float64)
    assert next(layer.activation.parameters()).dtype == torch.float64
    net = KAN([3, 4, 1], base_activation=nn.PReLU())
    net(torch.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_from_dense_copies_a_trained_activation_instead_of_sharing_it():
    dense = KANLinear(3, 4, base_activation=nn.PReLU(init=0.3)).double()
    slim, error = SlimKANLinear.from_dense(dense, ranks=(4, 3, 8))
    assert error < 1e-10 and slim.activation.fn is not dense.activation.fn
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(slim(x), dense(x))
    assert KANLinear(3, 4).activation is SlimKANLinear.from_dense(KANLinear(3, 4), 2)[0].activation


def test_a_prelu_layer_saved_before_activations_were_modules_still_loads():
    old = KANLinear(3, 2, base_activation=nn.PReLU(init=0.5)).state_dict()
    del old["activation.fn.weight"]  # the old code saved no activation state
    layer = KANLinear(3, 2, base_activation=nn.PReLU(init=0.5))
    layer.load_state_dict(old)  # strict
    assert layer.activation.fn.weight.item() == 0.5
    torch.testing.assert_close(layer.weight, old["weight"])


def test_named_activations_keep_the_fused_closed_form_path():
    x = torch.randn(5, 3, requires_grad=True)
    layer = KANLinear(3, 2)
    fused = expand_features(x, layer.basis, layer.activation)
    assert "FusedExpansion" in fused.grad_fn.name()
    assert layer.activation._derivative is not None and list(layer.activation.parameters()) == []
    prelu = KANLinear(3, 2, base_activation=nn.PReLU()).activation
    grad_x = torch.autograd.grad(expand_features(x, layer.basis, prelu).sum(), x)[0]
    reference = torch.autograd.grad(torch.cat([layer.basis(x).flatten(-2), prelu(x)], -1).sum(), x)[
        0
    ]
    torch.testing.assert_close(grad_x, reference)
    assert math.isfinite(float(grad_x.sum()))
