"""KAN layers: ``KANLinear`` and the pieces it is built from."""

from lightning_kan.layers.activations import BaseActivation, resolve_activation
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.kan_linear import KANLinear

__all__ = ["BaseActivation", "KANLinear", "expand_features", "resolve_activation"]
