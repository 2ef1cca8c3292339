"""The fused task metrics against the torchmetrics classes they replace."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MeanSquaredError, R2Score
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from lightning_kan.tasks import ClassificationScores, RegressionScores, RelativeL2Error


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_scores_match_torchmetrics(outputs):
    generator = torch.Generator().manual_seed(outputs)
    fused, references = (
        RegressionScores(),
        {
            "mse": MeanSquaredError(),
            "rel_l2": RelativeL2Error(),
            "r2": R2Score(multioutput="uniform_average"),
        },
    )
    for size in (17, 40, 5):  # batches of different sizes
        target = torch.randn(size, outputs, generator=generator) * 3 + 1
        prediction = target + 0.5 * torch.randn(size, outputs, generator=generator)
        fused.update(prediction, target)
        for metric in references.values():
            metric.update(prediction, target)
    scores = fused.compute()
    assert set(scores) == set(references)
    for name, metric in references.items():
        torch.testing.assert_close(scores[name], metric.compute(), rtol=1e-5, atol=1e-6)
    fused.reset()
    fused.update(torch.ones(4, outputs), torch.ones(4, outputs) * 2)
    assert scores["mse"] != fused.compute()["mse"]  # reset started over


def test_classification_scores_match_torchmetrics():
    generator = torch.Generator().manual_seed(0)
    classes = 7
    fused = ClassificationScores(classes)
    accuracy = MulticlassAccuracy(classes, average="micro")
    f1 = MulticlassF1Score(classes, average="macro")
    for size in (30, 11, 64):
        logits = torch.randn(size, classes, generator=generator)
        logits[:, 6] = -10  # class 6 is never predicted ...
        target = torch.randint(0, 6, (size,), generator=generator)  # ... nor a target
        logits[:3, 5] = 10  # class 5 predicted, and (by chance or not) a target
        fused.update(logits, target)
        accuracy.update(logits, target)
        f1.update(logits, target)
    scores = fused.compute()
    torch.testing.assert_close(scores["accuracy"], accuracy.compute())
    torch.testing.assert_close(scores["f1"], f1.compute())


def test_fused_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        RegressionScores().update(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        scores = RegressionScores()
        scores.update(torch.zeros(1, 1), torch.ones(1, 1))
        scores.compute()
    with pytest.raises(ValueError, match=r"expected logits \(N, 3\)"):
        ClassificationScores(3).update(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 3\), got 5"):
        ClassificationScores(3).update(torch.zeros(2, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationScores(1)
