"""The opt-in CPU allocator setting."""

import sys

import pytest
import torch

from lightning_kan import cpu
from lightning_kan.cpu import reuse_large_allocations, skip_failing_nvml_probe


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_reuse_large_allocations_applies_on_glibc():
    assert reuse_large_allocations() is True
    # large tensors still allocate, compute and free normally afterwards
    big = torch.ones(64 << 20 >> 2)
    assert big.sum().item() == big.numel()


def _nvml_loads() -> bool:
    import ctypes

    try:
        ctypes.CDLL(cpu._NVML_LIBRARY)
    except OSError:
        return False
    return True


def test_skip_failing_nvml_probe_keeps_torchs_answers(monkeypatch):
    """Turned off only where NVML cannot load; the GPU answers stay what they were."""
    monkeypatch.setenv(cpu._NVML_CHECK, "1")
    before = (torch.cuda.is_available(), torch.cuda.device_count())
    switched = skip_failing_nvml_probe()
    assert switched == (not _nvml_loads())
    assert (cpu.os.environ[cpu._NVML_CHECK] == "0") == switched
    assert (torch.cuda.is_available(), torch.cuda.device_count()) == before
    assert not skip_failing_nvml_probe()  # nothing left to do


def test_skip_failing_nvml_probe_leaves_a_loadable_nvml_alone(monkeypatch):
    monkeypatch.setenv(cpu._NVML_CHECK, "1")
    monkeypatch.setattr(cpu.ctypes, "CDLL", lambda name: object())
    assert not skip_failing_nvml_probe()
    assert cpu.os.environ[cpu._NVML_CHECK] == "1"
