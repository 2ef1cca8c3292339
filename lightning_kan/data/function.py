"""``FunctionDataModule``: samples of a formula, seeded train/val/test splits."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.data.feynman import EQUATIONS, Equation
from lightning_kan.data.loading import batch_loader
from lightning_kan.data.sampling import EpochShuffleSampler

__all__ = ["FunctionDataModule"]


class FunctionDataModule(L.LightningDataModule):
    """Fit ``y = f(x)``: a Feynman equation by name or your own callable.

    Args:
        equation: a key of :data:`EQUATIONS` (e.g. ``"I.6.20a"``, ``"kan-toy"``) or a dotted path
            ``"package.module.function"`` to ``f(x: (N, D)) -> (N,)`` or ``(N, 1)``; then
            give ``num_variables`` and ``variable_range``.
        num_train, num_val, num_test: sample counts (drawn uniformly from the ranges).
        batch_size: training batch size (evaluation uses whole splits).
        normalize_inputs: map every variable's range linearly onto ``[-1, 1]``, the
            default grid of KAN bases (the targets keep their physical values).
        noise: standard deviation of Gaussian noise added to the training targets.
        seed: the samples are a function of the seed only.

    ``num_features`` (inputs) and ``num_outputs`` are known at construction, so the CLI
    links them to the network.
    """

    def __init__(
        self,
        equation: str = "I.6.20a",
        num_variables: int | None = None,
        variable_range: tuple[float, float] = (-1.0, 1.0),
        num_train: int = 1000,
        num_val: int = 200,
        num_test: int = 1000,
        batch_size: int = 128,
        normalize_inputs: bool = True,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value in [
            ("num_train", num_train),
            ("num_val", num_val),
            ("num_test", num_test),
            ("batch_size", batch_size),
        ]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.equation = _resolve_equation(equation, num_variables, variable_range)
        self.batch_size = batch_size
        self.splits: dict[str, TensorDataset] = {}

    @property
    def num_features(self) -> int:
        return self.equation.num_variables

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def in_channels(self) -> int:
        """Samples are single-channel vectors (for networks that ask for channels)."""
        return 1

    def sample(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` samples: inputs ``(count, D)`` (maybe normalised), targets ``(count, 1)``"""
        low = torch.tensor([lo for _, lo, _ in self.equation.variables])
        high = torch.tensor([hi for _, _, hi in self.equation.variables])
        unit = torch.rand(count, len(low), generator=generator)
        physical = low + unit * (high - low)
        target = self.equation.formula(*physical.T).reshape(count, 1).float()
        inputs = unit * 2 - 1 if self.hparams.normalize_inputs else physical
        return inputs.float(), target

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        generator = torch.Generator().manual_seed(self.hparams.seed)
        for split in ("train", "val", "test"):
            x, y = self.sample(self.hparams[f"num_{split}"], generator)
            if split == "train" and self.hparams.noise > 0:
                y = y + self.hparams.noise * torch.randn(y.shape, generator=generator)
            self.splits[split] = TensorDataset(x, y)

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        sampler = EpochShuffleSampler(len(train), seed=self.hparams.seed)
        return batch_loader(train, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["val"], len(self.splits["val"]))

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["test"], len(self.splits["test"]))

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def _resolve_equation(
    equation: str, num_variables: int | None, variable_range: tuple[float, float]
) -> Equation:
    if equation in EQUATIONS:
        return EQUATIONS[equation]
    module_name, _, attribute = equation.rpartition(".")
    try:
        function: Callable[[torch.Tensor], torch.Tensor] = getattr(
            importlib.import_module(module_name), attribute
        )
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"unknown equation {equation!r}; expected one of {sorted(EQUATIONS)} or an "
            f"importable dotted path such as 'mypackage.targets.my_function' ({error})"
        ) from None
    if not isinstance(num_variables, int) or num_variables < 1:
        raise ValueError(
            f"a custom equation needs num_variables (a positive integer), got {num_variables!r}"
        )
    low, high = variable_range
    return Equation(
        equation,
        tuple((f"x{i}", float(low), float(high)) for i in range(num_variables)),
        lambda *columns: function(torch.stack(columns, dim=-1)),
        equation,
    )
