"""Loss weighting for physics-informed training: how residual and boundary losses combine.

A strategy maps the step's pointwise residual ``r (N, 1)`` at the interior points, the
boundary loss ``L_b`` and the task's ``boundary_weight`` to the scalar to minimise, and
reports the weights it used (``PINNTask`` logs them):

- ``fixed``: ``mean(r^2) + boundary_weight * L_b`` (the default, as before);
- ``annealing`` (Wang, Teng and Perdikaris 2021, learning-rate annealing): every
  ``every_n_steps`` steps ``lambda_hat = max|grad_theta L_r| / mean|grad_theta L_b|``
  over the network's parameters and ``lambda <- (1 - alpha) lambda + alpha lambda_hat``,
  starting from ``boundary_weight``; the loss is ``L_r + lambda L_b``;
- ``causal`` (Wang, Sankaran and Perdikaris 2022, "Respecting causality"): the time
  axis is split into ``bins`` equal bins with residual losses ``L_i``, weighted by
  ``w_i = exp(-eps * sum_{k<i} L_k)`` (detached), so a later time trains only once the
  earlier ones fit; the loss is ``mean_i(w_i L_i) + boundary_weight * L_b``.

Strategies are ``nn.Module`` s: their state (annealing's ``lambda``) is in the task's
checkpoint. Statistics are averaged (``annealing``) or summed (``causal``) over DDP
processes through the context's reductions, so every process uses the same weights.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lightning_kan.pde.problems import PDEProblem

__all__ = [
    "LOSS_WEIGHTINGS",
    "CausalWeighting",
    "FixedWeighting",
    "GradientAnnealing",
    "LossWeighting",
    "WeightingContext",
    "get_loss_weighting",
]

Reduce = Callable[[torch.Tensor], torch.Tensor]


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@dataclass
class WeightingContext:
    """What a strategy may use besides the losses.

    ``params``: the network's trainable parameters (gradient statistics); ``step``: the
    global step; ``update``: whether this evaluation may change the strategy's state
    (false for L-BFGS' repeated line-search evaluations); ``mean`` / ``sum``: reductions
    over DDP processes (identity on one).
    """

    params: list[torch.Tensor]
    step: int = 0
    update: bool = True
    mean: Reduce = _identity
    sum: Reduce = _identity


class LossWeighting(nn.Module):
    """Base class: :meth:`forward` gives ``(loss, logs)``; ``logs`` maps names under
    ``train/`` to detached scalars."""

    #: the registry name (``LOSS_WEIGHTINGS[name]``)
    name: ClassVar[str]

    def bind(self, problem: PDEProblem) -> None:
        """Check the strategy fits ``problem`` (called at setup); nothing by default."""

    def forward(
        self,
        residual: torch.Tensor,
        interior: torch.Tensor,
        boundary_loss: torch.Tensor,
        boundary_weight: float,
        context: WeightingContext,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


class FixedWeighting(LossWeighting):
    """``mean(r^2) + boundary_weight * L_b``."""

    name = "fixed"

    def forward(self, residual, interior, boundary_loss, boundary_weight, context):
        loss = residual.square().mean() + boundary_weight * boundary_loss
        return loss, {"train/boundary_weight": torch.tensor(float(boundary_weight))}


def _positive(value: object, name: str, owner: str, upper: float | None = None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and value > 0
    if not ok or (upper is not None and value > upper):
        bound = f"in (0, {upper}]" if upper is not None else "> 0"
        raise ValueError(f"{owner}: {name} must be a number {bound}, got {value!r}.")
    return float(value)


def _integer(value: object, name: str, owner: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}.")
    return value


class GradientAnnealing(LossWeighting):
    """Learning-rate annealing of the boundary weight by gradient statistics.

    Args:
        alpha: the moving average's step (the paper's 0.1).
        every_n_steps: how often ``lambda`` is re-estimated (two extra backward passes).
    """

    name = "annealing"

    def __init__(self, alpha: float = 0.1, every_n_steps: int = 10) -> None:
        super().__init__()
        self.alpha = _positive(alpha, "alpha", "GradientAnnealing", upper=1.0)
        self.every_n_steps = _integer(every_n_steps, "every_n_steps", "GradientAnnealing", 1)
        #: the current lambda; NaN until the first step starts it at ``boundary_weight``
        self.register_buffer("weight", torch.tensor(float("nan"), dtype=torch.float64))

    @staticmethod
    def gradient_ratio(
        residual_loss: torch.Tensor, boundary_loss: torch.Tensor, params: list[torch.Tensor]
    ) -> torch.Tensor:
        """``max|grad L_r| / mean|grad L_b|`` over all entries of ``params`` (a parameter
        a loss does not reach counts as zero gradient)."""

        def flat(loss: torch.Tensor) -> torch.Tensor:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            pairs = zip(params, grads, strict=True)
            return torch.cat([(g if g is not None else p * 0).reshape(-1) for p, g in pairs]).abs()

        return flat(residual_loss).max() / flat(boundary_loss).mean()

    def forward(self, residual, interior, boundary_loss, boundary_weight, context):
        residual_loss = residual.square().mean()
        if torch.isnan(self.weight):
            self.weight.fill_(float(boundary_weight))
        due = context.update and context.step % self.every_n_steps == 0
        if due and boundary_loss.requires_grad:
            ratio = context.mean(self.gradient_ratio(residual_loss, boundary_loss, context.params))
            if torch.isfinite(ratio):  # a zero boundary gradient keeps the last lambda
                self.weight.mul_(1 - self.alpha).add_(self.alpha * ratio.detach().to(self.weight))
        weight = self.weight.to(residual_loss.dtype)
        return residual_loss + weight * boundary_loss, {"train/boundary_weight": weight.detach()}


class CausalWeighting(LossWeighting):
    """Causal weights over time bins (the problem's first time coordinate).

    Args:
        bins: equal bins of the time interval (the paper's ``N_t``).
        eps: the causality parameter (larger: stricter order in time).
    """

    name = "causal"

    def __init__(self, bins: int = 16, eps: float = 1.0) -> None:
        super().__init__()
        self.bins = _integer(bins, "bins", "CausalWeighting", 2)
        self.eps = _positive(eps, "eps", "CausalWeighting")
        self.time: tuple[int, float, float] | None = None

    def bind(self, problem: PDEProblem) -> None:
        if not problem.time_dims:
            raise ValueError(
                f"loss_weighting='causal' weights residuals by time, and {problem!r} has no "
                "time coordinate (its time_dims is empty); use it on a time-dependent "
                "problem (Burgers, TimeAllenCahn) or pick loss_weighting='fixed' or "
                "'annealing'."
            )
        dim = problem.time_dims[0]
        low, high = problem.domain.bounds[dim]
        self.time = (dim, float(low), float(high))

    def bin_losses(
        self, residual: torch.Tensor, interior: torch.Tensor, context: WeightingContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The bins' mean squared residuals ``(bins,)`` on this process (0 for an empty
        bin) and their weights ``(bins,)`` from the losses over all processes."""
        if self.time is None:
            raise ValueError("CausalWeighting needs bind(problem) before use (PINNTask.setup).")
        dim, low, high = self.time
        t = interior[:, dim].detach()
        index = ((t - low) / (high - low) * self.bins).floor().long().clamp(0, self.bins - 1)
        squares = residual.reshape(-1).square()
        sums = squares.new_zeros(self.bins).index_add(0, index, squares)
        counts = squares.new_zeros(self.bins).index_add(0, index, torch.ones_like(squares))
        losses = sums / counts.clamp(min=1)
        total = context.sum(torch.stack([sums.detach(), counts]))
        global_losses = total[0] / total[1].clamp(min=1)
        before = torch.cat([global_losses.new_zeros(1), global_losses.cumsum(0)[:-1]])
        return losses, torch.exp(-self.eps * before)

    def forward(self, residual, interior, boundary_loss, boundary_weight, context):
        losses, weights = self.bin_losses(residual, interior, context)
        loss = (weights * losses).mean() + boundary_weight * boundary_loss
        logs = {
            "train/causal_min_weight": weights.min(),
            "train/boundary_weight": torch.tensor(float(boundary_weight)),
        }
        return loss, logs


#: name -> strategy class
LOSS_WEIGHTINGS: dict[str, type[LossWeighting]] = {
    cls.name: cls for cls in (FixedWeighting, GradientAnnealing, CausalWeighting)
}


def get_loss_weighting(
    weighting: str | LossWeighting, kwargs: dict[str, Any] | None = None
) -> LossWeighting:
    """A strategy from its registry name and keyword arguments (or the strategy itself)."""
    if isinstance(weighting, LossWeighting):
        if kwargs:
            raise ValueError(
                f"loss_weighting_kwargs={kwargs!r} given with a LossWeighting instance "
                f"({type(weighting).__name__}); pass its options to its constructor instead."
            )
        return weighting
    if not isinstance(weighting, str) or weighting not in LOSS_WEIGHTINGS:
        close = difflib.get_close_matches(str(weighting), LOSS_WEIGHTINGS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ValueError(
            f"loss_weighting must be one of {sorted(LOSS_WEIGHTINGS)} or a LossWeighting "
            f"instance, got {weighting!r}{hint}"
        )
    cls = LOSS_WEIGHTINGS[weighting]
    kwargs = dict(kwargs or {})
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss_weighting_kwargs has {unknown} that loss_weighting={weighting!r} "
            f"({cls.__name__}) does not take; it accepts {accepted or 'no options'}."
        )
    return cls(**kwargs)
