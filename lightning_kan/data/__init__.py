"""LightningDataModules: function fitting (Feynman equations) and image classification."""

from lightning_kan.data.feynman import EQUATIONS, FEYNMAN_EQUATIONS, Equation
from lightning_kan.data.function import FunctionDataModule
from lightning_kan.data.images import DATASETS, ImageDataModule

__all__ = [
    "DATASETS",
    "EQUATIONS",
    "FEYNMAN_EQUATIONS",
    "Equation",
    "FunctionDataModule",
    "ImageDataModule",
]
