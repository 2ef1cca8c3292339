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
    "Prune",
    "__version__",
    "available_bases",
    "available_coefficients",
    "build_basis",
    "build_coefficients",
    "count_parameters",
    "register_basis",
    "register_coefficients",
]


def __getattr__(name: str) -> object:
    """``lightning_kan.Prune`` on first use: importing the package stays free of Lightning."""
    if name == "Prune":
        from lightning_kan.callbacks import Prune

        return Prune
    raise AttributeError(f"module 'lightning_kan' has no attribute {name!r}")
