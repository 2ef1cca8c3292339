"""The opt-in CPU allocator setting."""

import sys

import pytest
import torch

from lightning_kan.cpu import reuse_large_allocations


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_reuse_large_allocations_applies_on_glibc():
    assert reuse_large_allocations() is True
    # large tensors still allocate, compute and free normally afterwards
    big = torch.ones(64 << 20 >> 2)
    assert big.sum().item() == big.numel()
