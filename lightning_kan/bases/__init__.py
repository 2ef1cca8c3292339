"""Basis families: ``x (..., I) -> (..., I, K)``, chosen by name or instance."""

from lightning_kan.bases.base import Basis, available_bases, build_basis, register_basis
from lightning_kan.bases.bernstein import BernsteinBasis
from lightning_kan.bases.bspline import BSplineBasis
from lightning_kan.bases.fourier import FourierBasis
from lightning_kan.bases.jacobi import JacobiBasis
from lightning_kan.bases.normalized import InputNormBasis
from lightning_kan.bases.polynomial import ChebyshevBasis, GramBasis, LegendreBasis
from lightning_kan.bases.radial import GaussianRBFBasis, RSWAFBasis
from lightning_kan.bases.relu import ReLUKANBasis
from lightning_kan.bases.wavelet import WaveletBasis

__all__ = [
    "BSplineBasis",
    "Basis",
    "BernsteinBasis",
    "ChebyshevBasis",
    "FourierBasis",
    "GaussianRBFBasis",
    "GramBasis",
    "InputNormBasis",
    "JacobiBasis",
    "LegendreBasis",
    "RSWAFBasis",
    "ReLUKANBasis",
    "WaveletBasis",
    "available_bases",
    "build_basis",
    "register_basis",
]
