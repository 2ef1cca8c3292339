"""LightningDataModules: function fitting (Feynman equations) and image classification."""

from lightning_kan.data.feynman import (
    EQUATIONS,
    FEYNMAN_EQUATIONS,
    KAN_PAPER_RANGES,
    Equation,
    with_ranges,
)
from lightning_kan.data.function import FunctionDataModule
from lightning_kan.data.images import DATASETS, ImageDataModule

__all__ = [
    "DATASETS",
    "EQUATIONS",
    "FEYNMAN_EQUATIONS",
    "KAN_PAPER_RANGES",
    "Equation",
    "FunctionDataModule",
    "ImageDataModule",
    "with_ranges",
]
