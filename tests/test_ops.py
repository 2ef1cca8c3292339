"""lightning_kan.ops: the one Tucker tensor type, the one rank resolver, and the
state-dict / adapter-file names of its two users (Slim KAN, LoTRA) kept as they were."""

import math
import warnings

import pytest
import torch

from lightning_kan import lotra
from lightning_kan.layers import KANConv2d, SlimKANConv2d, SlimKANLinear
from lightning_kan.layers.slim import resolve_ranks as slim_resolve_ranks
from lightning_kan.layers.slim import tucker_factors
from lightning_kan.ops import (
    TuckerFactors,
    check_ranks,
    partial_tucker,
    relative_error,
    resolve_ranks,
    tucker_to_tensor,
)

# --- the rank resolver -------------------------------------------------------------------


def test_an_int_covers_out_in_basis_and_kernel_modes_stay_full():
    assert resolve_ranks(2, (5, 4, 8), "t") == (2, 2, 2)
    assert resolve_ranks(2, (5, 4, 8, 9), "t") == (2, 2, 2, 9)
    assert resolve_ranks((1, 2, 3), (5, 4, 8, 9), "t") == (1, 2, 3, 9)
    assert resolve_ranks((1, 2, 3, 4), (5, 4, 8, 9), "t") == (1, 2, 3, 4)


def test_a_rank_above_its_mode_raises_naming_mode_tensor_and_fix():
    with pytest.raises(ValueError) as error:
        resolve_ranks((2, 9, 2), (5, 4, 8), "layers.0.weight", fix="pass clip=True")
    message = str(error.value)
    assert "rank 9 for the 'in' mode of layers.0.weight" in message
    assert "ranks[1]=9 for mode 1 of size 4" in message and "1..4" in message
    assert message.endswith("Lower it, pass clip=True")


def test_clipping_warns_once_listing_every_mode_or_collects_the_notes():
    expected = r"^opt clipped 2 rank.*: t 'out' 6 -> 5; t 'in' 6 -> 4$"
    with pytest.warns(UserWarning, match=expected) as w:
        assert resolve_ranks(6, (5, 4, 8), "t", clip=True, clip_option="opt") == (5, 4, 6)
    assert len(w) == 1
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_ranks(6, (5, 4, 8), "t", clip=True, clipped=notes) == (5, 4, 6)
        assert resolve_ranks(3, (5, 4, 8), "t", clip=True) == (3, 3, 3)  # nothing clipped
    assert notes == ["t 'out' 6 -> 5", "t 'in' 6 -> 4"]


@pytest.mark.parametrize(
    ("ranks", "message"),
    [
        (0, r"ranks=0: rank 0 for the 'out' mode of t .*Raise it to 1"),
        ((2, -1, 2), r"rank -1 for the 'in' mode of t"),
        (True, r"ranks=True is not a valid rank specification \(got a bool\)"),
        (2.5, r"ranks=2\.5 is not a valid rank specification \(got a float\)"),
        ((2, 2.0, 2), r"its entry 2\.0 \(float\) is not an int"),
        ("4", r"ranks='4' is not a valid rank specification \(got a str\)"),
        ((), r"ranks=\(\) is not a valid rank"),
        ((2, 2), r"ranks=\(2, 2\) for t: expected an int or 3 ranks, one rank per mode.*got 2"),
    ],
)
def test_bad_ranks_are_one_clear_paragraph_even_when_clipping(ranks, message):
    with pytest.raises(ValueError, match=message) as error:
        resolve_ranks(ranks, (5, 4, 8), "t", clip=True)
    assert "\n" not in str(error.value)


def test_the_old_resolvers_are_the_one_resolver():
    with pytest.raises(ValueError, match=r"rank 9 for the 'in' mode of a tensor of shape"):
        check_ranks((5, 4, 8), (2, 9, 2))
    assert check_ranks((5, 4, 8, 9), 2) == (2, 2, 2, 2)  # hosvd's int: every mode
    with pytest.raises(ValueError, match=r"rank 7 for the 'basis' mode .*clip_ranks=True"):
        lotra.resolve_ranks((2, 2, 7), (5, 4, 6), "x")


def test_slim_clips_an_int_silently_and_refuses_a_too_large_sequence():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an int is documented to clip per mode
        assert slim_resolve_ranks((8, 3, 5), 6) == (6, 3, 5)
        assert SlimKANLinear(3, 2, ranks=4).ranks == (2, 3, 4)
        SlimKANLinear(3, 2, ranks=2)
    with pytest.raises(ValueError, match=r"rank 9 for the 'in' mode of SlimKANLinear"):
        SlimKANLinear(4, 3, ranks=(2, 9, 2))


# --- the Tucker tensor type --------------------------------------------------------------


def test_tucker_factors_rebuild_with_whole_kernel_modes_and_a_partial_product():
    torch.manual_seed(0)
    tucker = TuckerFactors(
        torch.randn(2, 3, 4, 5, dtype=torch.float64),
        tuple(torch.randn(n, r, dtype=torch.float64) for n, r in ((6, 2), (7, 3), (8, 4))),
    )
    assert tucker.mode_ranks == (2, 3, 4) and tucker.shape == (6, 7, 8, 5)
    eye = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close(
        tucker.to_tensor(), tucker_to_tensor(tucker.core, [*tucker.factors, eye])
    )
    inner = tucker.to_tensor(first=1)
    assert inner.shape == (2, 7, 8, 5)
    full = (tucker.factors[0] @ inner.reshape(2, -1)).reshape(tucker.shape)
    torch.testing.assert_close(full, tucker.to_tensor())


def test_the_two_inits_slim_orthogonal_and_lotra_zero_core():
    torch.manual_seed(0)
    tucker = TuckerFactors.empty((40, 30, 8), (4, 5, 6), whole=(3, 3))
    bound = 0.1
    tucker.init_orthogonal(bound)
    for factor in tucker.factors:
        torch.testing.assert_close(factor.T @ factor, torch.eye(factor.shape[1]))
    assert tucker.shape == (40, 30, 8, 3, 3)
    rms = float(tucker.to_tensor().pow(2).mean().sqrt())
    assert rms == pytest.approx(bound / math.sqrt(3), rel=0.15)  # U(-b, b) has rms b/sqrt(3)
    tucker.init_zero_core(normal_modes=(1,))
    assert not tucker.to_tensor().any()
    u_out, u_in, _ = tucker.factors
    torch.testing.assert_close(u_out.T @ u_out, torch.eye(4))
    assert float(u_in.std()) == pytest.approx(1 / math.sqrt(30), rel=0.2)


def test_partial_tucker_at_full_rank_is_exact_and_keeps_the_kernel_whole():
    tensor = torch.randn(4, 3, 5, 2, 2, dtype=torch.float64)
    tucker = partial_tucker(tensor, (4, 3, 5), iters=1)
    assert tucker.core.shape == (4, 3, 5, 2, 2)
    assert relative_error(tensor, tucker.to_tensor()) < 1e-12


def test_slim_and_lotra_hold_their_tensors_as_the_one_type():
    slim = SlimKANLinear(3, 4, ranks=(2, 3, 4))
    view = tucker_factors(slim)
    assert view.core is slim.core and view.factors[1] is slim.factor_in
    torch.testing.assert_close(slim.weight, view.to_tensor())
    delta = lotra.TuckerDelta((3, 2, 8, 3, 3), 2)
    assert delta.tucker.core is delta.core and delta.tucker.mode_ranks == (2, 2, 2, 9)
    torch.testing.assert_close(delta(), delta.tucker.to_tensor().reshape(3, 2, 8, 3, 3))


# --- today's state-dict and adapter-file names load ----------------------------------------

#: key -> shape of the state dicts as HEAD (before lightning_kan.ops) wrote them, read by
#: running `git show HEAD:lightning_kan/...`'s code (SlimKANLinear(3, 4, ranks=(2, 3, 4)),
#: SlimKANConv2d(2, 3, 3, ranks=2), LoTRA ranks=2 on KANConv2d(2, 3, 3))
HEAD_SLIM_LINEAR = {
    "core": (2, 3, 4),
    "factor_out": (4, 2),
    "factor_in": (3, 3),
    "factor_basis": (8, 4),
    "base_weight": (4, 3),
    "bias": (4,),
    "basis.grid": (3, 12),
}
HEAD_SLIM_CONV = {
    "core": (2, 2, 2, 3, 3),
    "factor_out": (3, 2),
    "factor_in": (2, 2),
    "factor_basis": (8, 2),
    "base_weight": (3, 2, 3, 3),
    "bias": (3,),
    "basis.grid": (2, 12),
}
_ADAPTER = "0.parametrizations.weight.0.adapters.default."
HEAD_LOTRA_CONV = {
    "0.base_weight": (3, 2, 3, 3),
    "0.bias": (3,),
    "0.basis.grid": (2, 12),
    "0.parametrizations.weight.original": (3, 2, 8, 3, 3),
    _ADAPTER + "core": (2, 2, 2, 9),
    _ADAPTER + "factors.0": (3, 2),
    _ADAPTER + "factors.1": (2, 2),
    _ADAPTER + "factors.2": (8, 2),
    _ADAPTER + "factors.3": (9, 9),
}


def _old_state(module: torch.nn.Module, shapes: dict) -> dict:
    """A state dict with HEAD's names: random values, the module's own basis grid."""
    own = module.state_dict()
    assert {k: tuple(v.shape) for k, v in own.items()} == shapes  # same names and shapes
    return {k: own[k].clone() if k.endswith("grid") else torch.randn(s) for k, s in shapes.items()}


def test_an_old_slim_state_dict_loads_and_computes_from_its_factors():
    for module, shapes in (
        (SlimKANLinear(3, 4, ranks=(2, 3, 4)), HEAD_SLIM_LINEAR),
        (SlimKANConv2d(2, 3, 3, ranks=2), HEAD_SLIM_CONV),
    ):
        state = _old_state(module, shapes)
        module.load_state_dict(state, strict=True)
        eye = torch.eye(3)
        extra = [eye, eye] if state["core"].dim() == 5 else []
        factors = [state["factor_out"], state["factor_in"], state["factor_basis"], *extra]
        torch.testing.assert_close(module.weight, tucker_to_tensor(state["core"], factors))


def test_an_old_lotra_state_dict_and_adapter_file_load(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(KANConv2d(2, 3, 3))
    lotra.add_adapter(net, ranks=2, target_modules=["0"])
    state = _old_state(net, HEAD_LOTRA_CONV)
    net.load_state_dict(state, strict=True)
    delta = tucker_to_tensor(
        state[_ADAPTER + "core"], [state[_ADAPTER + f"factors.{i}"] for i in range(4)]
    )
    expected = state["0.parametrizations.weight.original"] + delta.reshape(3, 2, 8, 3, 3)
    torch.testing.assert_close(net[0].weight, expected)
    directory = lotra.save_adapter(net, tmp_path / "adapter")
    names = sorted(torch.load(directory / "adapter.pt", weights_only=True))
    assert names == ["0.weight.core", *(f"0.weight.factors.{i}" for i in range(4))]
    base = torch.nn.Sequential(KANConv2d(2, 3, 3))
    with torch.no_grad():
        base[0].weight.copy_(state["0.parametrizations.weight.original"])
        base[0].base_weight.copy_(state["0.base_weight"])
        base[0].bias.copy_(state["0.bias"])
    assert lotra.load_adapter(base, directory) == "default"
    torch.testing.assert_close(base[0].weight, expected)
