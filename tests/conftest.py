import sys

import pytest
import torch

from lightning_kan import native


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make every ``import matplotlib...`` fail, as on an install without it."""
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


BASES = {
    "bspline": {"grid_size": 5, "spline_order": 3},
    "chebyshev": {"degree": 5},
    "rbf": {"num_centers": 6},
    "rswaf": {"num_centers": 6},
    "legendre": {"degree": 5},
    "gram": {"degree": 5},
    "wavelet": {"num_wavelets": 5},
    "bernstein": {"degree": 5},
    "jacobi": {"degree": 5, "alpha": 0.5, "beta": 1.5},
    "fourierkan": {"grid_size": 3},
    "relukan": {"grid_size": 4, "order": 2},
}


@pytest.fixture(params=native.BUILDS)
def build(request, monkeypatch):
    """Each C kernel build (AVX-512, AVX2, baseline) this CPU runs, swapped in for the test."""
    library = native.builds_for_this_cpu().get(request.param)
    if library is None:
        pytest.skip(f"{request.param} is not built or this CPU cannot run it")
    monkeypatch.setattr(native, "_LIBRARY", library)
    return request.param
