import sys

import pytest
import torch


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
