"""LightningModules that train any network (KAN, ConvKAN, an MLP) on a task."""

from lightning_kan.tasks.base import KANTask, NonFiniteLossError
from lightning_kan.tasks.classification import ClassificationTask
from lightning_kan.tasks.lbfgs import LBFGSPhase
from lightning_kan.tasks.metrics import ClassificationScores, RegressionScores, RelativeL2Error
from lightning_kan.tasks.pinn import PINNTask
from lightning_kan.tasks.regression import RegressionTask

__all__ = [
    "ClassificationScores",
    "ClassificationTask",
    "KANTask",
    "LBFGSPhase",
    "NonFiniteLossError",
    "PINNTask",
    "RegressionScores",
    "RegressionTask",
    "RelativeL2Error",
]
