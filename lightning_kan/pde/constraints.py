"""Hard Dirichlet constraints: ``u = g(x) + d(x) * N(x)`` holds the boundary data exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_kan.pde.problems import PDEProblem

__all__ = ["HardDirichlet"]

Field = Callable[[torch.Tensor], torch.Tensor]


class HardDirichlet(nn.Module):
    """Wraps a network so that its output equals the problem's Dirichlet data on the
    boundary, whatever the weights: ``u(x) = lift(x) + distance(x) * net(x)``.

    ``lift`` (default ``problem.boundary_lift``: on a box the transfinite interpolation
    of the face data) equals the data on the boundary; ``distance`` (default
    ``problem.boundary_distance``, the domain's signed distance) vanishes there and is
    positive inside. Both are ``(N, d) -> (N, 1)`` and twice differentiable inside, so
    the residual's autograd derivatives pass through. Use it as ``PINNTask``'s ``net``:
    the boundary loss is then zero up to round-off. ``net`` stays reachable as ``.net``
    (its state dict keys gain ``net.``).

    Args:
        net: the network ``N``, ``(N, d) -> (N, 1)``.
        problem: gives the default ``lift`` and ``distance``; ``None`` until
            :meth:`bind_problem` (so a config names the problem once, in the data).
        lift, distance: functions replacing the problem's.
    """

    def __init__(
        self,
        net: nn.Module,
        problem: PDEProblem | None = None,
        lift: Field | None = None,
        distance: Field | None = None,
    ) -> None:
        super().__init__()
        self.net, self.problem = net, None
        self._lift, self._distance = lift, distance
        if problem is not None:
            self.bind_problem(problem)

    def bind_problem(self, problem: PDEProblem) -> None:
        """Take the lift and distance not given from ``problem`` (checked now: a domain
        without a default lift is an error here, not in training)."""
        if not isinstance(problem, PDEProblem):
            raise ValueError(
                f"HardDirichlet: problem must be a lightning_kan.pde PDEProblem (it gives "
                f"the boundary lift and distance), got {problem!r}"
            )
        self.problem = problem
        corner = torch.tensor([[lo for lo, _ in problem.domain.bounds]], dtype=torch.float64)
        self.lift(corner)

    @property
    def lift(self) -> Field:
        return self._field(self._lift, "boundary_lift")

    @property
    def distance(self) -> Field:
        return self._field(self._distance, "boundary_distance")

    def _field(self, given: Field | None, name: str) -> Field:
        if given is not None:
            return given
        if self.problem is None:
            raise ValueError(
                f"HardDirichlet has no problem to take its {name} from: pass "
                "HardDirichlet(net, problem) or call bind_problem(problem) before use."
            )
        return getattr(self.problem, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lift(x) + self.distance(x) * self.net(x)

    def forward_jet(self, jet: Any, propagate: Callable[[Any, Any], Any]) -> Any:
        """The forward on a jet (``lightning_kan.layers.jet``): ``g + d * N`` by the product
        rule, the lift and distance differentiated by autograd (functions of ``x`` only)."""
        lift, distance = propagate(self.lift, jet), propagate(self.distance, jet)
        return lift + distance * propagate(self.net, jet)
