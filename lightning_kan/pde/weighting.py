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
  earlier ones fit; the loss is ``mean_i(w_i L_i) + boundary_weight * L_b``;
- ``self_adaptive`` (McClenny and Braga-Neto 2023, SA-PINN): one weight ``lambda_i`` per
  collocation point, the loss ``mean_i(m(lambda_i) r_i^2) + boundary_weight * L_b`` with a
  mask ``m`` (``sigmoid``, ``square``: ``lambda^2``, ``identity``), and gradient *ascent*
  on the weights after the step's loss, normalised by the step's mean square residual so
  the step size does not depend on the residual's scale:
  ``lambda_i <- lambda_i + lr * m'(lambda_i) r_i^2 / mean_j(r_j^2)``;
- ``rba`` (Anagnostopoulos et al. 2024, residual-based attention):
  ``lambda_i <- gamma lambda_i + eta |r_i| / max_j |r_j|`` (the maximum over the step's
  points on all processes), then the loss ``mean_i((lambda_i r_i)^2) + boundary_weight * L_b``.

The pointwise strategies need collocation points that stay fixed between steps, each
with an index: ``PDEDataModule(resample=False)`` without adaptive mode, whose batches
carry ``"interior_index"`` into its :attr:`~PDEDataModule.num_fixed_points` points.

Strategies are ``nn.Module`` s: their state (annealing's ``lambda``, the pointwise
weights) is in the task's checkpoint. Statistics are averaged (``annealing``), summed
(``causal``, the pointwise updates) or maximised (``rba``) over DDP processes through
the context's reductions, so every process uses the same weights.

:func:`residual_gradient_loss` is gPINN's term (Yu et al. 2022, gradient-enhanced PINNs),
``PINNTask(gradient_weight=...)``.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lightning_kan.pde.problems import PDEProblem

__all__ = [
    "LOSS_WEIGHTINGS",
    "SA_MASKS",
    "CausalWeighting",
    "FixedWeighting",
    "GradientAnnealing",
    "LossWeighting",
    "PointwiseWeighting",
    "ResidualAttention",
    "SelfAdaptiveWeighting",
    "WeightingContext",
    "get_loss_weighting",
    "nonnegative_weight",
    "residual_gradient_loss",
]

Reduce = Callable[[torch.Tensor], torch.Tensor]


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@dataclass
class WeightingContext:
    """What a strategy may use besides the losses.

    ``params``: the network's trainable parameters (gradient statistics); ``step``: the
    global step; ``update``: whether this evaluation may change the strategy's state
    (false for L-BFGS' repeated line-search evaluations); ``mean`` / ``sum`` / ``max``:
    reductions over DDP processes (identity on one); ``index``: the interior points'
    indices ``(N,)`` into the fixed collocation set (the batch's ``"interior_index"``),
    ``None`` when the points change between steps.
    """

    params: list[torch.Tensor]
    step: int = 0
    update: bool = True
    mean: Reduce = _identity
    sum: Reduce = _identity
    max: Reduce = _identity
    index: torch.Tensor | None = None


class LossWeighting(nn.Module):
    """Base class: :meth:`forward` gives ``(loss, logs)``; ``logs`` maps names under
    ``train/`` to detached scalars."""

    #: the registry name (``LOSS_WEIGHTINGS[name]``)
    name: ClassVar[str]

    def bind(self, problem: PDEProblem) -> None:
        """Check the strategy fits ``problem`` (called at setup); nothing by default."""

    def bind_data(self, datamodule: object) -> None:
        """Check the strategy fits the fit's data module (``None`` without one; called at
        setup, before a checkpoint is restored); nothing by default."""

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


def _number(
    value: object, name: str, owner: str, low: float = -math.inf, high: float = math.inf
) -> float:
    """``value`` as a finite float in ``[low, high]``, else a one-paragraph error."""
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        bound = "" if math.isinf(low) and math.isinf(high) else f" in [{low}, {high}]"
        raise ValueError(f"{owner}: {name} must be a finite number{bound}, got {value!r}.")
    return float(value)


def nonnegative_weight(value: object, name: str, meaning: str) -> float:
    """A loss term's weight as a float >= 0 (0 switches the term off), else an error that
    says what the term is."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(
            f"{name} must be a finite number >= 0 (the weight of {meaning}; 0 switches it "
            f"off), got {value!r}."
        )
    return float(value)


def residual_gradient_loss(residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """gPINN's term ``mean_i |grad_x r_i|^2`` (summed over the coordinates, time included)
    of the residual ``r (N, 1)`` at the points ``x (N, d)``; differentiable again, so its
    parameter gradient reaches the network (a residual that ignores ``x``: 0)."""
    (grad,) = torch.autograd.grad(residual.sum(), x, create_graph=True, allow_unused=True)
    if grad is None:
        return residual.new_zeros(())
    return grad.square().sum(dim=1).mean()


#: SA-PINN masks: name -> (m, m')
SA_MASKS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    "square": (torch.square, lambda w: 2 * w),
    "sigmoid": (torch.sigmoid, lambda w: torch.sigmoid(w) * (1 - torch.sigmoid(w))),
    "identity": (lambda w: w, torch.ones_like),
}


class PointwiseWeighting(LossWeighting):
    """Base class: one weight per point of a fixed collocation set, ``weights (P,)``.

    :meth:`bind_data` sizes ``weights`` to the data module's ``num_fixed_points`` (every
    entry ``init``); a checkpoint's weights replace them (also in a task built by
    ``load_from_checkpoint``, which never sees a data module). A step updates the
    weights of its points only (:meth:`_store`: the new values summed over the DDP
    processes and divided by how many held each point, so every process keeps the same
    vector). ``update=False`` evaluations (L-BFGS' line search) use the weights unchanged.
    """

    def __init__(self, init: float) -> None:
        super().__init__()
        self.init = init
        self.register_buffer("weights", torch.zeros(0, dtype=torch.float64))

    def bind_data(self, datamodule: object) -> None:
        count = getattr(datamodule, "num_fixed_points", None)
        if not isinstance(count, int):
            found = "no data module" if datamodule is None else type(datamodule).__name__
            if datamodule is not None:
                options = {k: getattr(datamodule, k, None) for k in ("resample", "adaptive")}
                found += f" ({', '.join(f'{k}={v}' for k, v in options.items())})"
            raise ValueError(
                f"loss_weighting={self.name!r} keeps one weight per collocation point, so the "
                f"points must stay the same between steps, and this fit has {found} "
                "whose points change (or carry no index); use "
                "PDEDataModule(problem, ..., resample=False, adaptive=False) (in a config: "
                "data.init_args.resample: false): its steps_per_epoch * num_interior points "
                "are fixed and indexed. Adaptive collocation (R3Sampling, RAR) moves points "
                "and cannot be combined with pointwise weights."
            )
        if self.weights.numel() != count:
            self.weights = torch.full((count,), self.init, dtype=torch.float64)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "weights")
        if saved is not None and saved.shape != self.weights.shape:
            self.weights = torch.empty_like(saved, device=self.weights.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _index(self, residual: torch.Tensor, context: WeightingContext) -> torch.Tensor:
        """The step's point indices ``(N,)``, checked against ``weights``."""
        index = context.index
        if index is None or self.weights.numel() == 0:
            raise ValueError(
                f'loss_weighting={self.name!r} needs the batch\'s "interior_index" (the '
                "points' places in a fixed collocation set) and weights sized by bind_data; "
                "train with PINNTask on PDEDataModule(..., resample=False, adaptive=False)."
            )
        index = index.reshape(-1).to(self.weights.device)
        if index.numel() != residual.numel() or int(index.max()) >= self.weights.numel():
            raise ValueError(
                f"loss_weighting={self.name!r}: the batch's interior_index ({index.numel()} "
                f"indices up to {int(index.max())}) does not match its {residual.numel()} "
                f"residuals and the {self.weights.numel()} weights; the collocation set "
                "changed size during the fit, which pointwise weights do not allow."
            )
        return index

    def _store(self, index: torch.Tensor, new: torch.Tensor, context: WeightingContext) -> None:
        """``weights[index] = new``, identical on every DDP process."""
        sums = self.weights.new_zeros(2, self.weights.numel())
        sums[0].index_add_(0, index, new.detach().to(sums))
        sums[1].index_add_(0, index, torch.ones_like(new, dtype=sums.dtype))
        sums = context.sum(sums)
        held = sums[1] > 0
        self.weights[held] = sums[0][held] / sums[1][held]


class SelfAdaptiveWeighting(PointwiseWeighting):
    """SA-PINN: ``mean_i(m(lambda_i) r_i^2)`` with ``lambda_i`` raised by gradient ascent.

    Args:
        mask: ``m`` of :data:`SA_MASKS`: ``sigmoid`` (the default: weights in ``(0, 1)``,
            so they cannot run away), ``square`` (the paper's polynomial mask, ``q = 2``;
            it grows geometrically where the residual stays large), ``identity``.
        lr: the ascent step: ``lambda_i <- lambda_i + lr * m'(lambda_i) r_i^2 / s`` (the
            gradient of the point's term ``m(lambda_i) r_i^2`` over ``s``, the mean square
            residual of the step's points on all processes), applied after the loss is
            formed with the step's weights.
        init: every ``lambda_i`` at the start (``sigmoid``: 0 is the weight 1/2).

    Logs ``train/sa_max_weight`` and ``train/sa_mean_weight`` (of ``m(lambda)``).
    """

    name = "self_adaptive"

    def __init__(self, mask: str = "sigmoid", lr: float = 0.1, init: float = 0.0) -> None:
        if mask not in SA_MASKS:
            raise ValueError(
                f"SelfAdaptiveWeighting: mask must be one of {sorted(SA_MASKS)}, got {mask!r}."
            )
        super().__init__(_number(init, "init", "SelfAdaptiveWeighting"))
        self.mask = mask
        self.lr = _positive(lr, "lr", "SelfAdaptiveWeighting")

    def forward(self, residual, interior, boundary_loss, boundary_weight, context):
        index = self._index(residual, context)
        mask, slope = SA_MASKS[self.mask]
        current = self.weights[index]
        squares = residual.reshape(-1).square()
        loss = (mask(current).to(squares) * squares).mean() + boundary_weight * boundary_loss
        if context.update:
            detached = squares.detach().to(current)
            count = detached.new_tensor(detached.numel())
            total = context.sum(torch.stack([detached.sum(), count]))
            scale = total[0] / total[1]
            if scale > 0:
                self._store(index, current + self.lr * slope(current) * detached / scale, context)
        masked = mask(self.weights)
        logs = {
            "train/sa_max_weight": masked.max(),
            "train/sa_mean_weight": masked.mean(),
            "train/boundary_weight": torch.tensor(float(boundary_weight)),
        }
        return loss, logs


class ResidualAttention(PointwiseWeighting):
    """RBA: ``lambda_i <- gamma lambda_i + eta |r_i| / max_j |r_j|``, then
    ``mean_i((lambda_i r_i)^2)``.

    Args:
        gamma: the memory (decay) of the weights, in ``[0, 1]``.
        eta: the step; the weights stay below ``max(init, eta / (1 - gamma))``.
        init: every ``lambda_i`` at the start.

    Logs ``train/rba_max_weight`` and ``train/rba_mean_weight``.
    """

    name = "rba"

    def __init__(self, gamma: float = 0.999, eta: float = 0.01, init: float = 1.0) -> None:
        super().__init__(_number(init, "init", "ResidualAttention", 0.0))
        self.gamma = _number(gamma, "gamma", "ResidualAttention", 0.0, 1.0)
        self.eta = _positive(eta, "eta", "ResidualAttention")

    def forward(self, residual, interior, boundary_loss, boundary_weight, context):
        index = self._index(residual, context)
        size = residual.detach().reshape(-1).abs().to(self.weights)
        if context.update:
            largest = context.max(size.max())
            scaled = size / largest if largest > 0 else torch.zeros_like(size)
            self._store(index, self.gamma * self.weights[index] + self.eta * scaled, context)
        weighted = self.weights[index].to(residual) * residual.reshape(-1)
        loss = weighted.square().mean() + boundary_weight * boundary_loss
        logs = {
            "train/rba_max_weight": self.weights.max(),
            "train/rba_mean_weight": self.weights.mean(),
            "train/boundary_weight": torch.tensor(float(boundary_weight)),
        }
        return loss, logs


#: name -> strategy class
LOSS_WEIGHTINGS: dict[str, type[LossWeighting]] = {
    cls.name: cls
    for cls in (
        FixedWeighting,
        GradientAnnealing,
        CausalWeighting,
        SelfAdaptiveWeighting,
        ResidualAttention,
    )
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
        pointwise = sorted(
            k for k, v in LOSS_WEIGHTINGS.items() if issubclass(v, PointwiseWeighting)
        )
        whole = sorted(set(LOSS_WEIGHTINGS) - set(pointwise))
        raise ValueError(
            f"loss_weighting must be one of {whole} (weights of whole loss terms), "
            f"{pointwise} (one weight per collocation point) or a LossWeighting "
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
