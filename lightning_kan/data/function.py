"""``FunctionDataModule``: samples of a formula, seeded train/val/test splits."""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_kan.data.feynman import EQUATIONS, Equation, with_ranges
from lightning_kan.data.loading import batch_loader, evaluation_loader
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
        ranges: the variable ranges of a named equation: ``"ai_feynman"`` (default) or
            ``"kan_paper"`` (the KAN and MetaKAN papers', mostly ``[-1, 1]``; see
            :data:`~lightning_kan.data.feynman.KAN_PAPER_RANGES`).

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
        ranges: str = "ai_feynman",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value in [
            ("num_train", num_train),
            ("num_val", num_val),
            ("num_test", num_test),
            ("batch_size", batch_size),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
            raise ValueError(
                f"noise (the standard deviation of the target noise) must be a finite number "
                f">= 0, got {noise!r}"
            )
        self.equation = with_ranges(
            _resolve_equation(equation, num_variables, variable_range), ranges
        )
        self.batch_size = batch_size
        self.splits: dict[str, TensorDataset] = {}

    @property
    def num_features(self) -> int:
        return self.equation.num_variables

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def input_variables(self) -> list[tuple[str, float, float]]:
        """Each network input as ``(name, scale, shift)`` of its variable: ``input = scale *
        variable + shift`` (``normalize_inputs`` maps the range onto ``[-1, 1]``; else the
        identity). Symbolic formulas use it to speak in the equation's variables."""
        if not self.hparams.normalize_inputs:
            return [(name, 1.0, 0.0) for name, _, _ in self.equation.variables]
        return [
            (name, 2.0 / (high - low), -(high + low) / (high - low))
            for name, low, high in self.equation.variables
        ]

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
        target = _evaluate(self.equation, physical)
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
        return evaluation_loader(self.splits["val"], len(self.splits["val"]), split="val")

    def test_dataloader(self) -> DataLoader:
        return evaluation_loader(self.splits["test"], len(self.splits["test"]), split="test")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def _evaluate(equation: Equation, physical: torch.Tensor) -> torch.Tensor:
    """Targets ``(N, 1)`` of ``equation`` at ``physical (N, D)``; a formula that fails, gives
    another shape or non-finite values is reported by name (a user function may)."""
    count, width = physical.shape
    try:
        target = torch.as_tensor(equation.formula(*physical.T))
    except Exception as error:
        raise ValueError(
            f"equation {equation.name!r} failed on inputs of shape ({count}, {width}) "
            f"({type(error).__name__}: {error}); a custom equation must map an (N, D) tensor "
            "to (N,) or (N, 1) targets"
        ) from error
    if target.shape not in ((count,), (count, 1)):
        raise ValueError(
            f"equation {equation.name!r} returned shape {tuple(target.shape)} for inputs of "
            f"shape ({count}, {width}); expected ({count},) or ({count}, 1)"
        )
    bad = int((~torch.isfinite(target)).sum())
    if bad:
        ranges = [(lo, hi) for _, lo, hi in equation.variables]
        raise ValueError(
            f"equation {equation.name!r} gives {bad} non-finite targets (NaN/inf) among {count} "
            f"samples of the variable ranges {ranges}; narrow variable_range or fix the formula"
        )
    return target.reshape(count, 1).float()


def _resolve_equation(
    equation: str, num_variables: int | None, variable_range: tuple[float, float]
) -> Equation:
    if equation in EQUATIONS:
        known = EQUATIONS[equation]
        if num_variables is not None and num_variables != known.num_variables:
            raise ValueError(
                f"num_variables={num_variables!r} contradicts equation {equation!r}, which has "
                f"{known.num_variables} variables; drop num_variables (it is for custom equations)"
            )
        return known
    function = _import_function(equation)
    if isinstance(num_variables, bool) or not isinstance(num_variables, int) or num_variables < 1:
        raise ValueError(
            f"a custom equation needs num_variables (a positive integer), got {num_variables!r}"
        )
    if not (
        isinstance(variable_range, list | tuple)
        and len(variable_range) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in variable_range)
        and variable_range[0] < variable_range[1]
    ):
        raise ValueError(
            f"variable_range must be two finite numbers (low, high) with low < high, got "
            f"{variable_range!r}"
        )
    low, high = variable_range
    return Equation(
        equation,
        tuple((f"x{i}", float(low), float(high)) for i in range(num_variables)),
        lambda *columns: function(torch.stack(columns, dim=-1)),
        equation,
    )


def _import_function(equation: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function a dotted path ``package.module.function`` names."""
    module_name, _, attribute = str(equation).rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as error:
        close = difflib.get_close_matches(str(equation), EQUATIONS, n=3)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        detail = f" (importing {module_name!r}: {error})" if module_name else ""
        raise ValueError(
            f"unknown equation {equation!r}{hint}: neither a name of EQUATIONS "
            f"({', '.join(sorted(EQUATIONS))}) nor an importable dotted path "
            f"'package.module.function'{detail}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        found = "nothing" if function is None else f"a {type(function).__name__}"
        raise ValueError(
            f"equation {equation!r}: {module_name}.{attribute} is {found}, not a function "
            "f(x: (N, D)) -> (N,) or (N, 1)"
        )
    return function
