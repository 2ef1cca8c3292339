"""lightning_kan: fast, correct Kolmogorov-Arnold Networks for PyTorch Lightning.

Every public name is imported on first use (PEP 562), so ``import lightning_kan`` (and the
``lightning_kan --help`` it starts with) imports neither torch nor Lightning;
``from lightning_kan import KAN`` imports what ``KAN`` needs, and ``lightning_kan.layers``
(any subpackage) is imported on first access as well.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # resolved by __getattr__ at run time
    from lightning_kan.bases import available_bases, build_basis, register_basis
    from lightning_kan.callbacks import Prune
    from lightning_kan.layers import (
        KANLinear,
        available_coefficients,
        build_coefficients,
        register_coefficients,
    )
    from lightning_kan.nets import KAN
    from lightning_kan.utils import count_parameters

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "KAN": "lightning_kan.nets",
    "KANLinear": "lightning_kan.layers",
    "Prune": "lightning_kan.callbacks",
    "available_bases": "lightning_kan.bases",
    "available_coefficients": "lightning_kan.layers",
    "build_basis": "lightning_kan.bases",
    "build_coefficients": "lightning_kan.layers",
    "count_parameters": "lightning_kan.utils",
    "register_basis": "lightning_kan.bases",
    "register_coefficients": "lightning_kan.layers",
}

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


def __getattr__(name: str) -> Any:
    """A public name from its module, or a subpackage (``lightning_kan.cpu``), on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
