"""Inverse problems: PDE parameters learned, with the solution, from observations of it.

``PINNTask(unknowns={"nu": 0.01})`` makes the problem's ``nu`` a trainable scalar that
starts at ``0.01``: the residual reads it (:meth:`Unknowns.problem`), while the problem's
data (exact solution, source, boundary values) keep the true parameters, so the fit is
the inverse problem a user poses, not one rigged by a moving source. The observations are
the data module's (``PDEDataModule(observations=N, noise=...)``, seeded samples of the
exact solution) and enter the loss as ``data_weight * mean((u(x_k) - u_k)^2)``.

Positivity: a problem declares each parameter's lower bound in ``lower_bounds`` (Burgers'
``nu > 0``, Elliptic's ``p > -1``); a bounded unknown is ``lower + softplus(raw)`` (raw
unconstrained, started at ``softplus^-1(init - lower)``), an unbounded one is ``raw``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kan.pde.problems import PDEProblem

__all__ = ["DATA_METHODS", "Unknowns", "data_misfit"]

#: methods of a problem that give data: an unknown never enters them
DATA_METHODS = ("exact", "source", "boundary_values")


def _inverse_softplus(value: float) -> float:
    """``softplus^-1(value)`` for ``value > 0``, stable for large and small values."""
    return value + math.log(-math.expm1(-value))


class Unknowns(nn.Module):
    """Named trainable parameters of a :class:`PDEProblem`.

    Args:
        initial: parameter name -> initial guess (``None`` or ``{}``: a forward problem,
            no parameters and no state-dict entries, so older checkpoints load).

    ``raw.<name>`` (a scalar parameter) and ``<name>_lower`` (its bound, NaN until
    :meth:`bind`; ``-inf``: unbounded) are in the task's checkpoint, so a resumed fit
    continues from the learned values.
    """

    def __init__(self, initial: Mapping[str, float] | None = None) -> None:
        super().__init__()
        initial = dict(initial or {})
        for name, value in initial.items():
            bad = isinstance(value, bool) or not isinstance(value, int | float)
            if not isinstance(name, str) or not name.isidentifier() or bad:
                raise ValueError(
                    f"unknowns must map PDE parameter names to initial guesses (numbers), "
                    f"got {name!r}: {value!r}; e.g. unknowns={{'nu': 0.05}} (in a config: "
                    "unknowns: {nu: 0.05})."
                )
            if not math.isfinite(value):
                raise ValueError(
                    f"unknowns: the initial guess of {name!r} must be finite, got {value!r}."
                )
        self.initial = {name: float(value) for name, value in initial.items()}
        self.raw = nn.ParameterDict({name: nn.Parameter(torch.tensor(0.0)) for name in initial})
        for name in initial:
            self.register_buffer(f"{name}_lower", torch.tensor(math.nan))
        #: the true values (the bound problem's), for ``val/<name>_error``
        self.truth: dict[str, float] = {}

    @property
    def names(self) -> list[str]:
        return list(self.initial)

    def bind(self, problem: PDEProblem, datamodule: object = None) -> None:
        """Check the names against ``problem`` (and that ``datamodule`` observes the
        solution), take the bounds and start the raw values (not when a checkpoint
        already set them), record the true values."""
        if not self.initial:
            return
        for name in self.names:
            value = getattr(problem, name, None)
            if isinstance(value, bool) or not isinstance(value, int | float):
                numeric = sorted(
                    k for k, v in vars(problem).items() if isinstance(v, float) and k[0] != "_"
                )
                raise ValueError(
                    f"unknowns names {name!r}, which is not a numeric parameter of "
                    f"{problem!r}; its parameters are {numeric}. Name one of them."
                )
        if datamodule is not None and not getattr(datamodule, "observations", 0):
            raise ValueError(
                f"unknowns={self.initial} are learned from observations of the solution, and "
                f"the data module ({type(datamodule).__name__}) provides none; use "
                "PDEDataModule(problem, ..., observations=N, noise=...) (in a config: "
                "data.init_args.observations: 200)."
            )
        bounds = getattr(problem, "lower_bounds", {})
        for name in self.names:
            lower = float(bounds.get(name, -math.inf))
            buffer = getattr(self, f"{name}_lower")
            if not torch.isnan(buffer):  # a checkpoint's state
                if float(buffer) != lower:
                    raise ValueError(
                        f"unknowns: {name!r} was saved with the lower bound {float(buffer)}, "
                        f"and {problem!r} bounds it by {lower}; load the checkpoint with the "
                        "problem it was trained on."
                    )
                continue
            start = self.initial[name]
            if not start > lower:
                raise ValueError(
                    f"unknowns: the initial guess {name}={start} must be > {lower}, the bound "
                    f"that {type(problem).__name__} declares for {name!r} (lower_bounds); "
                    "start inside the admissible range."
                )
            raw = start if math.isinf(lower) else _inverse_softplus(start - lower)
            with torch.no_grad():
                buffer.fill_(lower)
                self.raw[name].fill_(raw)
        self.truth = {name: float(getattr(problem, name)) for name in self.names}

    def values(self) -> dict[str, torch.Tensor]:
        """name -> the current value (a differentiable scalar)."""
        out = {}
        for name in self.names:
            lower = getattr(self, f"{name}_lower")
            if torch.isnan(lower):
                raise ValueError(
                    f"unknowns: {name!r} has no bound yet; bind(problem) first (PINNTask "
                    "does it at setup)."
                )
            raw = self.raw[name]
            out[name] = raw if torch.isinf(lower) else lower + F.softplus(raw)
        return out

    def problem(self, problem: PDEProblem) -> PDEProblem:
        """``problem`` itself without unknowns; else a shallow copy whose parameters are
        the current values and whose :data:`DATA_METHODS` are ``problem``'s (true
        parameters): the operator sees the unknowns, the data does not."""
        if not self.initial:
            return problem
        view = copy.copy(problem)
        for method in DATA_METHODS:
            if hasattr(problem, method):
                setattr(view, method, getattr(problem, method))
        for name, value in self.values().items():
            setattr(view, name, value)
        return view

    def logs(self, prefix: str) -> dict[str, torch.Tensor]:
        """``{prefix + name: value}``, detached."""
        return {prefix + name: value.detach() for name, value in self.values().items()}

    def errors(self, prefix: str) -> dict[str, torch.Tensor]:
        """``{prefix + name: value, prefix + name + "_error": |value - true value|}``."""
        out = {}
        for name, value in self.values().items():
            out[prefix + name] = value.detach()
            if name in self.truth:
                out[f"{prefix}{name}_error"] = (value.detach() - self.truth[name]).abs()
        return out


def data_misfit(net: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """``mean((net(x_k) - u_k)^2)`` over the batch's observations (``"observed" (K, d)``,
    ``"observed_values" (K, 1)``); ``None`` when the batch has none."""
    if "observed" not in batch:
        return None
    return F.mse_loss(net(batch["observed"]), batch["observed_values"])
