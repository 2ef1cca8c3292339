"""Networks built from KAN layers, and the MLP baseline."""

from lightning_kan.nets.conv_kan import CONV_KAN_LAYOUTS, ConvKAN
from lightning_kan.nets.kan import KAN
from lightning_kan.nets.meta_kan import MetaConvKAN, MetaKAN, cluster_layers
from lightning_kan.nets.mlp import MLP
from lightning_kan.nets.slim_kan import SlimConvKAN, SlimKAN

__all__ = [
    "CONV_KAN_LAYOUTS",
    "KAN",
    "MLP",
    "ConvKAN",
    "MetaConvKAN",
    "MetaKAN",
    "SlimConvKAN",
    "SlimKAN",
    "cluster_layers",
]
