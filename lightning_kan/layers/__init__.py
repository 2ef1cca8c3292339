"""KAN layers: ``KANLinear``, ``KANConv{1,2,3}d`` and the pieces they are built from."""

from lightning_kan.layers.activations import BaseActivation, resolve_activation
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.kan_conv import KANConv1d, KANConv2d, KANConv3d
from lightning_kan.layers.kan_linear import KANLinear

__all__ = [
    "BaseActivation",
    "KANConv1d",
    "KANConv2d",
    "KANConv3d",
    "KANLinear",
    "expand_features",
    "resolve_activation",
]
