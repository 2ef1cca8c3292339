"""The checks of ``tests/test_cuda.py`` run here on the CPU (``tests/device_checks.py``
with device ``"cpu"``): every comparison against float64, the tolerances, the host-read
probe, the fits and checkpoint round trips, DDP and FSDP's sharding of our layers. On a
GPU machine the same code runs on ``cuda``; here it proves the test logic.
"""

from __future__ import annotations

import socket

import device_checks as checks
import pytest
import torch
import torch.multiprocessing as mp

DEVICE = "cpu"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("precision", list(checks.PRECISIONS))
@pytest.mark.parametrize("case", list(checks.CASES))
def test_forward_and_backward_match_float64(case, precision):
    module, x = checks.build(case)
    errors = checks.assert_matches_float64(module, x, DEVICE, precision)
    assert {"output", "input.grad"} <= errors.keys()
    assert len(errors) == 2 + sum(p.requires_grad for p in module.parameters())


def test_every_registered_basis_layer_family_and_net_is_a_case():
    assert set(checks.BASIS_CASES) == set(checks.library_bases())
    assert {"bspline", "chebyshev", "wavelet", "jacobi", "relukan"} <= set(checks.BASIS_CASES)
    assert {"dense", "slim", "meta", "conv1d", "conv2d", "conv3d"} <= set(checks.LAYER_CASES)
    assert {"kan", "slimkan", "metakan", "convkan"} <= set(checks.NET_CASES)


def test_a_wrong_weight_fails_the_float32_comparison():
    module, x = checks.build("dense")
    reference = checks.copy.deepcopy(module)
    with torch.no_grad():
        reference.weight[0, 0, 0] += 1e-3
    with pytest.raises(AssertionError, match=r"cpu 32: relative errors above 1e-05: {.output.: "):
        checks.assert_matches_float64(module, x, DEVICE, "32", reference=reference)


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_really_runs_in_low_precision(precision):
    # the float32 tolerance would reject it: autocast took effect in the comparison
    module, x = checks.build("kan")
    errors = checks.errors_against_float64(module, x, DEVICE, precision)
    assert errors["output"] > checks.TOLERANCE["32"]


def test_relative_error_is_normwise():
    expected = torch.tensor([3.0, 4.0])
    assert checks.relative_error(torch.tensor([3.0, 4.5]), expected) == pytest.approx(0.1)
    assert checks.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0


@pytest.mark.slow
def test_compiled_layer_matches_the_eager_layer():
    """Up to ~25 s on 2 cores with a cold inductor cache: one compile on the CPU."""
    errors = checks.check_compiled(DEVICE, "bspline")
    assert max(errors.values()) <= checks.TOLERANCE["32"]


def test_grid_update_and_refine_match_between_copies():
    checks.check_grid_update(DEVICE)


def test_lotra_adapters_train_save_load_and_merge(tmp_path):
    checks.check_lotra(DEVICE, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("config", list(checks.FIT_CONFIGS))
def test_one_epoch_fit_and_its_checkpoint_round_trip(config):
    run = checks.fit_one_epoch(config, "cpu")
    checks.check_checkpoint_round_trip(run, DEVICE)


def test_the_probe_finds_planted_host_reads_and_nothing_else():
    x = torch.randn(8)
    with checks.HostReads().watch() as clean:
        (x * 2).sum().exp()
        torch.where(x > 0, x, -x)
    assert clean.found == []
    with checks.HostReads().watch() as reads:
        x.sum().item()
        bool(x.sum() > 0)
        x[x > 0]
        x.to("cpu")
        x.tolist()
    assert reads.found == ["item", "__bool__", "__getitem__", "to(cpu)", "tolist"]


@pytest.mark.parametrize("config", list(checks.FIT_CONFIGS))
def test_a_training_step_reads_nothing_back_to_the_host(config):
    reads = checks.host_reads_per_step(config, "cpu", skip_finite_check=True)
    assert reads and all(found == [] for found in reads), reads


@pytest.mark.xfail(
    strict=True,
    reason="KANTask._check_finite reads bool(torch.isfinite(loss)) every step (a host sync)",
)
def test_the_nan_check_reads_nothing_back_to_the_host():
    reads = checks.host_reads_per_step("quickstart.yaml", "cpu", skip_finite_check=False)
    assert reads and all(found == [] for found in reads), reads


@pytest.mark.slow
def test_ddp_fit_on_two_cpu_processes(tmp_path):
    """About 30 s on 2 cores: Lightning's launcher starts the second process (gloo)."""
    checks.check_ddp_fit(tmp_path, "cpu", 2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_fsdp2_shards_our_layers_on_two_cpu_processes():
    """About 25 s on 2 cores. torch's ``fully_shard`` on every KANLinear (gloo, two
    processes): each holds part of every parameter; same outputs and gradients."""
    exit_barrier = mp.get_context("spawn").Barrier(2)
    mp.spawn(checks.check_fully_shard, args=(2, _free_port(), exit_barrier), nprocs=2, join=True)
