"""KAN layers: ``KANLinear``, ``KANConv{1,2,3}d``, their Slim (Tucker) and MetaKAN
variants, and the pieces they are built from (Tucker ops in ``layers.tucker``)."""

from lightning_kan.layers.activations import BaseActivation, resolve_activation
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.kan_conv import KANConv1d, KANConv2d, KANConv3d
from lightning_kan.layers.kan_linear import KANLinear
from lightning_kan.layers.meta import (
    MetaKANConv1d,
    MetaKANConv2d,
    MetaKANConv3d,
    MetaKANLinear,
    MetaLearner,
)
from lightning_kan.layers.slim import SlimKANConv1d, SlimKANConv2d, SlimKANConv3d, SlimKANLinear

__all__ = [
    "BaseActivation",
    "KANConv1d",
    "KANConv2d",
    "KANConv3d",
    "KANLinear",
    "MetaKANConv1d",
    "MetaKANConv2d",
    "MetaKANConv3d",
    "MetaKANLinear",
    "MetaLearner",
    "SlimKANConv1d",
    "SlimKANConv2d",
    "SlimKANConv3d",
    "SlimKANLinear",
    "expand_features",
    "resolve_activation",
]
