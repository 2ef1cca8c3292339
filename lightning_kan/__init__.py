"""lightning_kan: fast, correct Kolmogorov-Arnold Networks for PyTorch Lightning."""

from lightning_kan.bases import available_bases, build_basis, register_basis
from lightning_kan.layers import (
    KANLinear,
    available_coefficients,
    build_coefficients,
    register_coefficients,
)
from lightning_kan.nets import KAN
from lightning_kan.utils import count_parameters

__version__ = "0.1.0"

__all__ = [
    "KAN",
    "KANLinear",
    "__version__",
    "available_bases",
    "available_coefficients",
    "build_basis",
    "build_coefficients",
    "count_parameters",
    "register_basis",
    "register_coefficients",
]
