"""Networks built from KAN layers, and the MLP baseline."""

from lightning_kan.nets.conv_kan import CONV_KAN_LAYOUTS, ConvKAN
from lightning_kan.nets.kan import KAN
from lightning_kan.nets.mlp import MLP

__all__ = ["CONV_KAN_LAYOUTS", "KAN", "MLP", "ConvKAN"]
