import pytest
import torch


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
}
