"""KAN layers: ``KANLinear``, ``KANConv{1,2,3}d`` (``KANLayer`` is what they extend),
their coefficient families (``Dense``, ``Tucker`` for Slim KAN, ``Generated`` for MetaKAN,
or your own via ``register_coefficients``), the Slim/Meta presets, and the pieces they
are built from (Tucker ops in ``layers.tucker``)."""

from lightning_kan.layers.activations import BaseActivation, resolve_activation
from lightning_kan.layers.base import KANLayer
from lightning_kan.layers.coefficients import (
    Coefficients,
    Dense,
    available_coefficients,
    build_coefficients,
    register_coefficients,
)
from lightning_kan.layers.expansion import expand_features
from lightning_kan.layers.kan_conv import KANConv1d, KANConv2d, KANConv3d, KANConvNd
from lightning_kan.layers.kan_linear import KANLinear
from lightning_kan.layers.meta import (
    Generated,
    MetaKANConv1d,
    MetaKANConv2d,
    MetaKANConv3d,
    MetaKANLinear,
    MetaLearner,
)
from lightning_kan.layers.slim import (
    SlimKANConv1d,
    SlimKANConv2d,
    SlimKANConv3d,
    SlimKANLinear,
    Tucker,
)

__all__ = [
    "BaseActivation",
    "Coefficients",
    "Dense",
    "Generated",
    "KANConv1d",
    "KANConv2d",
    "KANConv3d",
    "KANConvNd",
    "KANLayer",
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
    "Tucker",
    "available_coefficients",
    "build_coefficients",
    "expand_features",
    "register_coefficients",
    "resolve_activation",
]
