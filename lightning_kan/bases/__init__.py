"""Basis families: ``x (..., I) -> (..., I, K)``, chosen by name or instance."""

from lightning_kan.bases.base import Basis, available_bases, build_basis, register_basis
from lightning_kan.bases.bspline import BSplineBasis
from lightning_kan.bases.polynomial import ChebyshevBasis, GramBasis, LegendreBasis
from lightning_kan.bases.radial import GaussianRBFBasis, RSWAFBasis

__all__ = [
    "BSplineBasis",
    "Basis",
    "ChebyshevBasis",
    "GaussianRBFBasis",
    "GramBasis",
    "LegendreBasis",
    "RSWAFBasis",
    "available_bases",
    "build_basis",
    "register_basis",
]
