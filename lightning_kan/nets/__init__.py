"""Networks built from KAN layers."""

from lightning_kan.nets.kan import KAN

__all__ = ["KAN"]
