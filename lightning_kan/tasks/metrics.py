"""Metrics torchmetrics does not ship under the name KAN papers use."""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["RelativeL2Error"]


class RelativeL2Error(Metric):
    """``||prediction - target||_2 / ||target||_2`` over everything seen (not a batch mean).

    The error measure of function-fitting and PDE papers; accumulates both squared sums
    so it is exact across batches and processes.
    """

    is_differentiable = True
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "error", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("norm", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
                "must have the same shape"
            )
        self.error += (prediction.double() - target.double()).square().sum()
        self.norm += target.double().square().sum()

    def compute(self) -> torch.Tensor:
        return (self.error / self.norm.clamp(min=torch.finfo(torch.float64).tiny)).sqrt().float()
