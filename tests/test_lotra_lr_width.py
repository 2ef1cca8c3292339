"""LoTRA's learning-rate rules, measured: how far one first Adam step on each adapter
component moves a layer's output, across widths, ranks and basis sizes.

The measurement (:func:`first_step_changes`): one Chebyshev ``KANLinear`` (``K`` basis
functions), a LoTRA adapter, a batch of inputs on ``[-1, 1]`` and a random target; each
component (``core`` G, ``out`` U1, ``in`` U2, ``basis`` U3) takes one Adam step alone at
the rate the strategy gives it, and the rms change of the layer's output (over batch and
outputs) per unit *base* rate is averaged geometrically over draws. The core steps from
its initialisation (``G = 0``); the factors step from a state where ``G`` is random
(``core_state="output"``: rescaled so the adapter moves the output by rms 1, the state
training reaches; ``"entries"``: ``G ~ N(0, 1)``, the issue's first table).
``python tests/test_lotra_lr_width.py`` prints the tables.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_kan import lotra
from lightning_kan.data import FunctionDataModule
from lightning_kan.layers import KANConv2d, KANLinear
from lightning_kan.nets import KAN
from lightning_kan.ops import TuckerFactors

WIDTHS = (16, 64, 256, 1024)
MEASURED = ("core", "out", "in", "basis")


def adapter_output(phi: torch.Tensor, tucker: TuckerFactors) -> torch.Tensor:
    """The adapter's part of the layer output, ``(B, O)``, from the features ``phi
    (B, I, K)``, contracted through the factors (never the dense ``(O, I, K)`` update)."""
    u1, u2, u3 = tucker.factors
    psi = torch.einsum("bik,kc->bic", phi, u3)
    h = torch.einsum("bic,ir->brc", psi, u2)
    return torch.einsum("abc,nbc->na", tucker.core, h) @ u1.T


@functools.cache
def unit_rate_changes(
    n_in: int,
    n_out: int,
    num_functions: int = 6,
    ranks: tuple[int, int, int] = (4, 4, 4),
    core_state: str = "output",
    batch: int = 512,
    draws: int = 6,
) -> dict[str, float]:
    """Output change of each component's first Adam step per unit of *its own* rate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GEMMs: threads only contend on a shared machine
    try:
        return _measure(n_in, n_out, num_functions, ranks, core_state, batch, draws)
    finally:
        torch.set_num_threads(threads)


def _measure(
    n_in: int,
    n_out: int,
    num_functions: int,
    ranks: tuple[int, int, int],
    core_state: str,
    batch: int,
    draws: int,
) -> dict[str, float]:
    logs = dict.fromkeys(MEASURED, 0.0)
    for draw in range(draws):
        torch.manual_seed(draw)
        layer = KANLinear(n_in, n_out, "chebyshev", {"degree": num_functions - 1})
        lotra.add_adapter(layer, ranks=list(ranks))
        delta = lotra.adapted_tensors(layer)[0].adapters.adapters["default"]
        x = torch.rand(batch, n_in) * 2 - 1
        target = torch.randn(batch, n_out)
        with torch.no_grad():
            phi = layer.basis(x)
            state = torch.randn(delta.core.shape)
            if core_state == "output":
                delta.core.copy_(state)
                state /= adapter_output(phi, delta.tucker).pow(2).mean().sqrt()
        start = {name: p.detach().clone() for name, p in delta.named_components()}
        for component, parameter in delta.named_components():
            with torch.no_grad():
                for name, p in delta.named_components():
                    p.copy_(start[name])
                delta.core.copy_(torch.zeros_like(state) if component == "core" else state)
                before = adapter_output(phi, delta.tucker)
            optimizer = torch.optim.Adam([parameter], lr=1.0)
            loss = 0.5 * (adapter_output(phi, delta.tucker) - target).pow(2).sum(1).mean()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                change = (adapter_output(phi, delta.tucker) - before).pow(2).mean().sqrt()
            logs[component] += math.log(change.item()) / draws
    return {component: math.exp(value) for component, value in logs.items()}


def first_step_changes(
    n_in: int,
    n_out: int,
    strategy: str,
    num_functions: int = 6,
    ranks: tuple[int, int, int] = (4, 4, 4),
    **options: Any,
) -> dict[str, float]:
    """Output change per unit *base* rate of each component's first Adam step under
    ``strategy``: the change per unit own rate (the step is exactly ``rate * sign(g)``
    and the output is linear in each component) times the strategy's rate."""
    unit = unit_rate_changes(n_in, n_out, num_functions, ranks, **options)
    modes = (n_out, n_in, num_functions)
    return {
        c: unit[c] * lotra.component_lr(1.0, c, n_in, strategy, mode_sizes=modes, ranks=ranks)
        for c in MEASURED
    }


def spread(tables: list[dict[str, float]]) -> dict[str, float]:
    """max / min of each component's change over the tables."""
    return {c: max(t[c] for t in tables) / min(t[c] for t in tables) for c in MEASURED}


@pytest.fixture(scope="module")
def width_tables() -> dict[str, list[dict[str, float]]]:
    return {
        s: [first_step_changes(n, n, s) for n in WIDTHS] for s in ("balanced", "width", "uniform")
    }


# --- the measurement itself --------------------------------------------------------------


def test_the_factored_adapter_output_is_the_layer_output_change_in_float64():
    torch.manual_seed(0)
    layer = KANLinear(5, 3, "chebyshev", {"degree": 4}).double()
    x = torch.rand(7, 5, dtype=torch.float64) * 2 - 1
    before = layer(x)
    lotra.add_adapter(layer, ranks=[2, 3, 4])
    delta = lotra.adapted_tensors(layer)[0].adapters.adapters["default"]
    with torch.no_grad():
        delta.core.normal_()
        expected = layer(x) - before
        torch.testing.assert_close(
            adapter_output(layer.basis(x), delta.tucker), expected, rtol=1e-12, atol=1e-12
        )
    assert expected.abs().min() > 1e-3  # a real change, not two zeros


@pytest.mark.parametrize("strategy", ["uniform", "width", "balanced"])
def test_adams_first_step_moves_every_entry_by_exactly_its_rate(strategy):
    """The premise of the derivation: the step is ``rate * sign(grad)``, any scale."""
    torch.manual_seed(0)
    layer = KANLinear(6, 4, "chebyshev", {"degree": 5}).double()
    lotra.add_adapter(layer, ranks=[2, 3, 4])
    delta = lotra.adapted_tensors(layer)[0].adapters.adapters["default"]
    with torch.no_grad():
        delta.core.normal_()
    groups = lotra.lotra_param_groups(layer, 0.01, strategy)
    pairs = [(p, g["lr"]) for g in groups for p in g["params"]]
    before = [p.detach().clone() for p, _ in pairs]
    x = torch.rand(32, 6, dtype=torch.float64) * 2 - 1
    (1e-6 * layer(x).pow(2).sum()).backward()  # a tiny gradient: the step does not care
    torch.optim.Adam(groups, eps=1e-30).step()
    assert {rate for _, rate in pairs} == {
        lotra.component_lr(0.01, c, 6, strategy, mode_sizes=delta.mode_sizes, ranks=delta.ranks)
        for c in MEASURED
    }
    for (parameter, rate), start in zip(pairs, before, strict=True):
        step = (parameter - start).abs()
        torch.testing.assert_close(step, torch.full_like(step, rate), rtol=1e-9, atol=0)


def test_the_issue_table_is_reproduced_with_fixed_core_entries_and_one_rate():
    """``G ~ N(0, 1)``, uniform rates: G and U3 shrink like ``n^-1/2``, U2 grows like
    ``n^1/2``, U1 stays (the issue's 16 / 1024 table; here 16 / 256, ratios 4)."""
    narrow, wide = (first_step_changes(n, n, "uniform", core_state="entries") for n in (16, 256))
    ratio = {c: wide[c] / narrow[c] for c in MEASURED}
    for component, expected in {"core": 0.25, "out": 1.0, "in": 4.0, "basis": 0.25}.items():
        assert expected / 1.5 < ratio[component] < expected * 1.5, (component, ratio)


# --- the rules -----------------------------------------------------------------------------


def test_balanced_rates_move_every_component_alike_at_every_width(width_tables):
    assert max(spread(width_tables["balanced"]).values()) < 2.0, width_tables["balanced"]
    for table in width_tables["balanced"]:  # and about lr per output: base rate = step size
        assert all(0.3 < table[c] < 3.0 for c in MEASURED), table


def test_the_old_rules_fail_the_same_check(width_tables):
    width, uniform = spread(width_tables["width"]), spread(width_tables["uniform"])
    assert width["core"] > 4.0 and width["out"] > 4.0, width  # O^-1/2 and O^1/2
    assert uniform["core"] > 4.0 and uniform["out"] > 4.0 and uniform["in"] > 16.0, uniform


def test_in_and_out_widths_enter_separately():
    tables = [first_step_changes(16, 256, "balanced"), first_step_changes(256, 16, "balanced")]
    assert max(spread(tables).values()) < 2.0, tables


def test_balanced_rates_hold_over_ranks_and_basis_sizes():
    tables = [
        first_step_changes(64, 64, "balanced", ranks=ranks, num_functions=k, draws=4)
        for ranks, k in [
            ((2, 2, 2), 6),
            ((4, 4, 4), 6),
            ((8, 8, 4), 6),
            ((8, 2, 4), 4),
            ((2, 8, 4), 9),
            ((4, 4, 4), 4),
            ((4, 4, 6), 9),
        ]
    ]
    assert max(spread(tables).values()) < 2.0, tables


def test_balanced_rates_closed_form_and_group_names():
    layer = torch.nn.Sequential(
        KANLinear(8, 16, "chebyshev", {"degree": 5}), KANLinear(16, 4, "chebyshev", {"degree": 3})
    )
    lotra.add_adapter(layer, ranks={"0": [4, 2, 3], "1": [2, 4, 4]})
    groups = lotra.lotra_param_groups(layer, 0.1, "balanced", {"out": 2.0})
    got = [(g["name"], g["lr"], len(g["params"])) for g in groups]
    expected = [
        ("lotra/core/O=16,r=24", 0.1 * math.sqrt(16 / 24), 1),
        ("lotra/core/O=4,r=32", 0.1 * math.sqrt(4 / 32), 1),
        ("lotra/out/O=16", 0.2 / 4, 1),
        ("lotra/out/O=4", 0.2 / 2, 1),
        ("lotra/in/I=8,K=6", 0.1 * math.sqrt(6) / 8, 1),
        ("lotra/in/I=16,K=4", 0.1 * 2 / 16, 1),
        ("lotra/basis/K=6", 0.1 / math.sqrt(6), 1),
        ("lotra/basis/K=4", 0.1 / 2, 1),
    ]
    assert [(n, c) for n, _, c in got] == [(n, c) for n, _, c in expected]
    for (_, rate, _), (_, want, _) in zip(got, expected, strict=True):
        assert rate == pytest.approx(want, rel=1e-15)
    delta = lotra.adapted_tensors(layer)[0].adapters.adapters["default"]
    assert lotra.component_lr(
        0.1, "core", 8, "balanced", mode_sizes=delta.mode_sizes, ranks=delta.ranks
    ) == pytest.approx(0.1 * math.sqrt(16 / 24), rel=1e-15)


def test_balanced_rates_for_a_convolution_treat_the_kernel_taps_like_the_basis():
    conv = KANConv2d(3, 8, kernel_size=3, basis="chebyshev", basis_kwargs={"degree": 5})
    lotra.add_adapter(conv, ranks=[2, 3, 4])  # the kernel mode stays full: r4 = T = 9
    groups = lotra.lotra_param_groups(conv, 1.0, "balanced")
    expected = {
        "lotra/core/O=8,r=216": math.sqrt(8 / 216),
        "lotra/out/O=8": 1 / math.sqrt(8),
        "lotra/in/I=3,K=54": math.sqrt(54) / 3,
        "lotra/basis/K=6": 1 / math.sqrt(6),
        "lotra/kernel/T=9": 1 / 3,
    }
    assert [g["name"] for g in groups] == list(expected)
    for group in groups:
        assert group["lr"] == pytest.approx(expected[group["name"]], rel=1e-15)


class _Regressor(L.LightningModule):
    """A pretrained-looking KAN regressor with its own (replaced) optimizer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = KAN([2, 8, 8, 1], basis="chebyshev", basis_kwargs={"degree": 5})

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(root, epochs: int, ckpt_path=None) -> _Regressor:
    module = _Regressor()
    callbacks = [
        lotra.LoTRA(ranks=4, lr=0.05, lr_strategy="balanced", clip_ranks=True),
        ModelCheckpoint(dirpath=root, save_last=True),
    ]
    data = FunctionDataModule("kan-toy", num_train=100, num_val=20, num_test=20, batch_size=50)
    L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        callbacks=callbacks,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    ).fit(module, data, ckpt_path=ckpt_path)
    return module


def test_balanced_rates_train_and_resume_exactly_from_a_checkpoint(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clip_ranks' warning and Lightning's small-data hints
        straight = _fit(tmp_path / "straight", 4)
        _fit(tmp_path / "resumed", 2)
        resumed = _fit(tmp_path / "resumed", 4, tmp_path / "resumed/last.ckpt")
    optimizer = straight.trainer.optimizers[0]
    assert [(g["name"], g["lr"]) for g in optimizer.param_groups] == [
        (g["name"], g["lr"]) for g in lotra.lotra_param_groups(straight, 0.05, "balanced")
    ]
    assert optimizer.param_groups[0]["name"] == "lotra/core/O=8,r=32"  # layer 0: ranks 4, 2, 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    cores = [v for k, v in straight.state_dict().items() if k.endswith("default.core")]
    assert len(cores) == 3 and all(core.abs().max() > 0 for core in cores)  # it trained


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"mode_sizes=None is not the adapter's modes"),
        ({"mode_sizes": (8, 5, 6), "ranks": (2, 2, 2)}, r"I = in_features = 4"),
        ({"mode_sizes": (8, 4, 6), "ranks": (2, 2)}, r"ranks=\(2, 2\) must be one positive int"),
        ({"mode_sizes": (8, 4, 6), "ranks": (2, 0, 2)}, r"ranks=\(2, 0, 2\)"),
    ],
)
def test_component_lr_names_what_balanced_needs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lotra.component_lr(0.1, "core", 4, "balanced", **kwargs)
    with pytest.raises(ValueError, match=r"component='kernel' needs a fourth"):
        lotra.component_lr(0.1, "kernel", 4, "balanced", mode_sizes=(8, 4, 6), ranks=(2, 2, 2))


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lotra_transfer.py"


@pytest.fixture(scope="module")
def transfer_example():
    spec = importlib.util.spec_from_file_location("lotra_transfer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_takes_point_wise_medians_of_curves(transfer_example):
    runs = [[(10, 3.0), (20, 1.0)], [(10, 1.0), (20, 5.0)], [(10, 2.0), (20, 4.0)]]
    assert transfer_example.median_curve(runs) == [(10, 2.0), (20, 4.0)]
    curve = [(s, float(s)) for s in range(1, 9)]
    assert transfer_example.quarters(curve) == "2.00e+00 | 4.00e+00 | 8.00e+00"


def test_the_example_runs_a_shortened_strategy_grid(transfer_example, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transfer_example.strategies(1, 1, (0.01,), (4,), ("uniform", "balanced"), (0, 1))
    printed = capsys.readouterr().out
    runs = [line for line in printed.splitlines() if line.startswith("| 4 | ") and "e" in line]
    assert len(runs) == 2 * 2 + 2 + 2  # every run, the medians, each strategy's best
    assert "| 4 | balanced | 0.01 | " in printed and "steps to target" in printed


if __name__ == "__main__":
    torch.set_num_threads(1)
    for strategy, state in [
        ("uniform", "entries"),
        ("uniform", "output"),
        ("width", "output"),
        ("balanced", "output"),
    ]:
        print(f"\n{strategy} rates, core_state={state!r}\n\n| n | core G | U1 | U2 | U3 |")
        print("|---|---|---|---|---|")
        for n in WIDTHS:
            t = first_step_changes(n, n, strategy, core_state=state)
            print(f"| {n} | " + " | ".join(f"{t[c]:.3g}" for c in MEASURED) + " |", flush=True)
