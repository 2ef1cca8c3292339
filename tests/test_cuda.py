"""The GPU path (issue 19), on ``cuda``: every basis, layer family and network in
float32, ``16-mixed`` and ``bf16-mixed`` against float64 on the CPU; ``compiled=True``
(Triton); grid updates and LoTRA; one-epoch ``lightning_kan fit`` runs with
``accelerator: gpu`` and their checkpoints on the CPU and back; no host
synchronisation per training step; DDP over the GPUs present and FSDP on a large KAN.

Skipped without CUDA. The same checks (``tests/device_checks.py``) run on the CPU in
``tests/test_device_checks.py``, which proves their logic on every machine.
``benchmarks/gpu_check.sh`` runs this module with the GPU benchmarks.
"""

from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip(
        "needs a CUDA device (the same checks run on the CPU in tests/test_device_checks.py)",
        allow_module_level=True,
    )

import device_checks as checks

pytestmark = pytest.mark.cuda
DEVICE = "cuda"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("precision", list(checks.PRECISIONS))
@pytest.mark.parametrize("case", list(checks.CASES))
def test_forward_and_backward_on_cuda_match_float64_on_the_cpu(case, precision):
    module, x = checks.build(case)
    checks.assert_matches_float64(module, x, DEVICE, precision)


@pytest.mark.parametrize("basis", ["bspline", "chebyshev", "rbf"])
def test_compiled_layer_on_cuda_matches_the_eager_layer(basis):
    checks.check_compiled(DEVICE, basis)


def test_grid_update_and_refine_on_cuda_match_the_cpu():
    checks.check_grid_update(DEVICE)


def test_lotra_adapters_train_save_load_and_merge_on_cuda(tmp_path):
    checks.check_lotra(DEVICE, tmp_path / "adapter")


@pytest.mark.parametrize("config", list(checks.FIT_CONFIGS))
def test_one_epoch_fit_on_gpu_and_its_checkpoint_on_the_cpu_and_back(config):
    run = checks.fit_one_epoch(config, "gpu")
    checks.check_checkpoint_round_trip(run, DEVICE)


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_a_mixed_precision_fit_on_gpu_trains_finite_weights(precision):
    run = checks.fit_one_epoch("quickstart.yaml", "gpu", f"--trainer.precision={precision}")
    state = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert all(value.isfinite().all() for value in state["state_dict"].values())


@pytest.mark.parametrize("config", list(checks.FIT_CONFIGS))
def test_a_training_step_reads_nothing_back_to_the_host(config):
    reads = checks.host_reads_per_step(config, "gpu", skip_finite_check=True)
    assert reads and all(found == [] for found in reads), reads


@pytest.mark.xfail(
    strict=True,
    reason="KANTask._check_finite reads bool(torch.isfinite(loss)) every step (a host sync)",
)
def test_the_nan_check_reads_nothing_back_to_the_host():
    reads = checks.host_reads_per_step("quickstart.yaml", "gpu", skip_finite_check=False)
    assert reads and all(found == [] for found in reads), reads


def test_ddp_over_every_gpu_present(tmp_path):
    checks.check_ddp_fit(tmp_path, "gpu", torch.cuda.device_count())


def test_the_torchrun_example_on_every_gpu_present(tmp_path):
    checks.check_torchrun_fit(tmp_path, "gpu", torch.cuda.device_count())


def test_fsdp_trains_a_large_kan(tmp_path):
    free, _ = torch.cuda.mem_get_info()
    # [4096, 4096, 4096, 10] with K + 1 = 9: 302 M parameters, ~1.2 GB each for weights,
    # gradients and two Adam moments; halve the widths on a small GPU
    width = 4096 if free > 24 * 2**30 else 1024
    checks.check_fsdp_fit(tmp_path, torch.cuda.device_count(), width)
