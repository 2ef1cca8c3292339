"""Networks built from KAN layers."""

from lightning_kan.nets.conv_kan import CONV_KAN_LAYOUTS, ConvKAN
from lightning_kan.nets.kan import KAN

__all__ = ["CONV_KAN_LAYOUTS", "KAN", "ConvKAN"]
