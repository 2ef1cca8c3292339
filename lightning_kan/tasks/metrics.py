"""Metrics torchmetrics does not ship under the name KAN papers use, and fused per-task
metric sets.

The tasks update their metrics on every step. torchmetrics' ``MeanSquaredError`` +
``R2Score`` + ``RelativeL2Error``, or ``MulticlassAccuracy`` + ``MulticlassF1Score``, cost
0.3-0.6 ms per step in a training loop (each keeps and updates its own state, and the
collection checks compute groups), about 5% of a ~10 ms MNIST-5k KAN step and more of a
small one. :class:`RegressionScores` and :class:`ClassificationScores` keep the
sufficient statistics once (a few sums; a confusion matrix) and derive every number at
``compute``, on torchmetrics' ``Metric`` for state, reset and DDP sync; tests check them
against the torchmetrics classes they replace.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["ClassificationScores", "RegressionScores", "RelativeL2Error"]


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
        _check_same_shape(prediction, target)
        self.error += (prediction.double() - target.double()).square().sum()
        self.norm += target.double().square().sum()

    def compute(self) -> torch.Tensor:
        return _relative_l2(self.error, self.norm)


def _relative_l2(squared_error: torch.Tensor, target_square: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum squared error / sum squared target)`` in float32, safe for a zero target."""
    tiny = torch.finfo(torch.float64).tiny
    return (squared_error / target_square.clamp(min=tiny)).sqrt().float()


def _check_same_shape(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
            "must have the same shape"
        )


class RegressionScores(Metric):
    """MSE, relative L2 error and R2 (and MAE) of ``prediction, target (N, D)`` over
    everything seen.

    ``compute`` returns ``{"mse", "rel_l2", "r2"}``, plus ``"mae"`` with ``mae=True``:
    ``mse`` and ``mae`` are the means over all N * D entries of the squared and absolute
    errors (torchmetrics' ``MeanSquaredError`` / ``MeanAbsoluteError``), ``rel_l2`` as
    :class:`RelativeL2Error`, ``r2`` the mean over outputs of ``1 - SS_res / SS_tot``
    (torchmetrics' ``R2Score``, ``uniform_average``). ``mae`` is the MetaKAN paper's
    function-fitting metric: its code takes the mean of the per-sample ``sqrt`` of the
    squared error, the same number for one output.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, mae: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mae = mae
        zero = torch.zeros((), dtype=torch.float64)
        for name in ("squared_error", "target_sum", "target_square_sum"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        if mae:
            self.add_state("absolute_error", default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=zero.clone(), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape(prediction, target)
        prediction, target = prediction.reshape(len(target), -1), target.reshape(len(target), -1)
        # per-output sums (D,); the first update turns the scalar defaults into vectors
        self.squared_error = self.squared_error + (prediction - target).square().sum(
            0, dtype=torch.float64
        )
        if self.mae:
            error = (prediction - target).abs().sum(dtype=torch.float64)
            self.absolute_error = self.absolute_error + error
        self.target_sum = self.target_sum + target.sum(0, dtype=torch.float64)
        self.target_square_sum = self.target_square_sum + target.square().sum(
            0, dtype=torch.float64
        )
        self.count = self.count + len(target)

    def compute(self) -> dict[str, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"R2 needs at least 2 samples, got {int(self.count)}")
        tiny = torch.finfo(torch.float64).tiny
        squared_error = self.squared_error.sum()
        total = self.target_square_sum - self.target_sum.square() / self.count
        entries = self.count * self.squared_error.numel()
        scores = {
            "mse": (squared_error / entries).float(),
            "rel_l2": _relative_l2(squared_error, self.target_square_sum.sum()),
            "r2": (1 - self.squared_error / total.clamp(min=tiny)).mean().float(),
        }
        if self.mae:
            scores["mae"] = (self.absolute_error / entries).float()
        return scores


class ClassificationScores(Metric):
    """Accuracy and macro F1 of ``logits (N, C)`` against ``target (N,)``, from one
    confusion matrix.

    ``compute`` returns ``{"accuracy", "f1"}``: micro accuracy, and the F1 averaged over
    the classes that occur in the targets or the predictions (as torchmetrics'
    ``MulticlassAccuracy(average="micro")`` and ``MulticlassF1Score(average="macro")``).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.add_state(
            "confusion",  # rows: target class, columns: predicted class
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        classes = self.num_classes
        if logits.dim() != 2 or logits.shape[1] != classes or target.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits (N, {classes}) and target (N,), got "
                f"{tuple(logits.shape)} and {tuple(target.shape)}"
            )
        cells = target.long() * classes + logits.argmax(1)
        counts = torch.bincount(cells, minlength=classes * classes)
        if counts.numel() != classes * classes:
            raise ValueError(f"target values must lie in [0, {classes}), got {int(target.max())}")
        self.confusion += counts.view(classes, classes)

    def compute(self) -> dict[str, torch.Tensor]:
        confusion = self.confusion.double()
        hits = confusion.diagonal()
        predicted, actual = confusion.sum(0), confusion.sum(1)
        scored = 2 * hits + (predicted - hits) + (actual - hits)  # 2 tp + fp + fn
        present = scored > 0
        f1 = (2 * hits[present] / scored[present]).mean() if present.any() else hits.sum()
        return {
            "accuracy": (hits.sum() / confusion.sum().clamp(min=1)).float(),
            "f1": f1.float(),
        }
