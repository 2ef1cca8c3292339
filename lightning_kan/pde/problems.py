"""PDE problems with exact (manufactured where needed) solutions, for physics-informed KANs.

A problem knows its domain (its box ``bounds``, or any
:class:`~lightning_kan.pde.geometry.Geometry` given as ``domain``), its residual
operator (written with autograd, so a network's second derivatives flow through KAN
layers), its boundary / initial data and its exact solution, so errors are measured,
not guessed. Each has one parameter that defines a family of related problems (LoTRA
fine-tunes across it).

Points are ``x (N, d)``; time-dependent problems use the last column as ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from lightning_kan.pde.geometry import Box, Geometry
from lightning_kan.pde.sampling import Sampler

__all__ = ["Burgers", "Elliptic", "Helmholtz", "PDEProblem", "SteadyAllenCahn", "TimeAllenCahn"]

Field = Callable[[torch.Tensor], torch.Tensor]
PI = math.pi
#: the 2-D Laplacian as one jet entry: the sum of ``u_xx`` and ``u_yy``
LAPLACIAN_2D = ((0, 0), (1, 1))


def gradient(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``du/dx (N, d)`` of ``u (N, 1)``, differentiable again (``create_graph``)."""
    (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return grad


def second_derivative(grad: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``d^2 u / dx_dim^2 (N, 1)`` from the first derivatives ``grad (N, d)``."""
    return gradient(grad[:, dim : dim + 1], x)[:, dim : dim + 1]


class PDEProblem:
    """Base class: ``residual(u_fn, x)``, ``exact(x)``, boundary sampling, a test grid.

    ``domain`` is where the PDE is posed: by default the box ``bounds`` (with
    ``time_dims``), sampled as before geometries existed; any
    :class:`~lightning_kan.pde.geometry.Geometry` of the same dimension can replace it
    (the constructors' ``domain=`` argument), and the Dirichlet data is then the exact
    solution on that domain's boundary.
    """

    #: (low, high) per coordinate
    bounds: tuple[tuple[float, float], ...]
    #: coordinates that are time (their lower face is an initial condition, upper is free)
    time_dims: tuple[int, ...] = ()
    #: parameter name -> the bound it must stay above (an inverse problem's unknowns too)
    lower_bounds: ClassVar[dict[str, float]] = {}
    _domain: Geometry | None = None

    @property
    def dim(self) -> int:
        return len(self.bounds)

    @property
    def domain(self) -> Geometry:
        """The geometry: the one given, else ``Box(bounds, time_dims)`` (one face per
        random boundary point uniformly, so default runs draw the points they always did)."""
        if self._domain is None:
            return Box(self.bounds, self.time_dims, face_choice="uniform")
        return self._domain

    @domain.setter
    def domain(self, domain: Geometry | None) -> None:
        if domain is not None and (not isinstance(domain, Geometry) or domain.dim != self.dim):
            raise ValueError(
                f"{type(self).__name__}: domain must be a lightning_kan.pde.geometry "
                f"Geometry of dimension {self.dim} (the coordinates its residual reads), "
                f"got {domain!r}; None keeps the box {self.bounds}."
            )
        self._domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        """PDE residual ``(N, 1)`` of the field ``u_fn`` at interior points ``x``."""
        raise NotImplementedError

    #: the second derivatives of ``u`` that :meth:`residual_from_jet` reads, as
    #: ``jet_forward(..., second=...)`` takes them: pairs ``(a, b)`` or lists of pairs to
    #: sum (:data:`LAPLACIAN_2D`); ``None``: no jet residual, the problem uses autograd
    second_derivatives: ClassVar[tuple[tuple[int, int], ...] | None] = None

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        """The residual ``(N, 1)`` from a forward-mode jet of ``u`` at ``x``
        (``lightning_kan.layers.jet.Jet``: ``jet.value (N, 1)``, ``jet.d(a)`` and
        ``jet.d2(...)`` for :attr:`second_derivatives`); equal to
        :meth:`residual` (its test reference), without nested autograd."""
        raise NotImplementedError

    @property
    def has_jet_residual(self) -> bool:
        """Whether :meth:`residual_from_jet` computes this problem's :meth:`residual`: it
        is defined, and not inherited from above the class that defines ``residual``."""
        cls = type(self)
        jet_owner = next(k for k in cls.__mro__ if "residual_from_jet" in vars(k))
        owner = next(k for k in cls.__mro__ if "residual" in vars(k))
        return (
            self.second_derivatives is not None
            and jet_owner is not PDEProblem
            and issubclass(jet_owner, owner)
        )

    def boundary_values(self, x: torch.Tensor) -> torch.Tensor:
        """Dirichlet / initial data on the boundary: the exact solution there."""
        return self.exact(x)

    def sample_interior(
        self, count: int, generator: torch.Generator, sampler: str | Sampler = "random"
    ) -> torch.Tensor:
        """``(count, d)`` points of the domain (:meth:`Geometry.sample_interior`)."""
        return self.domain.sample_interior(count, sampler, generator)

    def sample_boundary(
        self, count: int, generator: torch.Generator, sampler: str | Sampler = "random"
    ) -> torch.Tensor:
        """Points on the part of the boundary that carries data (for a box: all faces
        but the final time)."""
        return self.domain.sample_boundary(count, sampler, generator)

    def test_grid(self, points_per_dim: int = 101) -> torch.Tensor:
        """A uniform tensor grid over the domain's bounding box, ``(points_per_dim ** d,
        d)`` for a box; for other domains only its points inside the domain."""
        domain = self.domain
        axes = [
            torch.linspace(lo, hi, points_per_dim, dtype=torch.float64) for lo, hi in domain.bounds
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, self.dim)
        return grid if isinstance(domain, Box) else grid[domain.contains(grid)]

    def boundary_lift(self, x: torch.Tensor) -> torch.Tensor:
        """``g (N, 1)``: equal to :meth:`boundary_values` on the data boundary, built from
        boundary values only (hard constraints add ``distance * network`` to it).

        On a box: the transfinite (Coons) interpolation of the data faces
        (:meth:`Box.transfinite`). Other domains have no such default: give
        ``HardDirichlet`` a ``lift`` (e.g. ``problem.boundary_values`` or zero).
        """
        domain = self.domain
        if not isinstance(domain, Box):
            raise ValueError(
                f"{self!r} has no default boundary lift on {domain!r} (only boxes have "
                "one: the transfinite interpolation of the face data); pass "
                "HardDirichlet(..., lift=...), e.g. lift=problem.boundary_values (the "
                "exact solution extended inside) or a function that is 0 everywhere."
            )
        return domain.transfinite(self.boundary_values, x)

    def boundary_distance(self, x: torch.Tensor) -> torch.Tensor:
        """``d (N, 1)``: 0 on the data boundary, > 0 inside (the domain's
        :meth:`~lightning_kan.pde.geometry.Geometry.boundary_factor`)."""
        return self.domain.boundary_factor(x)[:, None]

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if self._domain is not None:
            extra = ", ".join(filter(None, [extra, f"domain={self._domain!r}"]))
        return f"{type(self).__name__}({extra})"

    def extra_repr(self) -> str:
        return ""


class Elliptic(PDEProblem):
    """``-div(a grad u) = f`` on ``[0, 1]^2``, ``a = 1 + p x y``, ``u = sin(pi x) sin(pi y) / a``.

    With ``g = sin(pi x) sin(pi y)`` and ``grad a = p (y, x)`` (so ``lap a = 0``):
    ``f = 2 pi^2 g + p pi (y cos(pi x) sin(pi y) + x sin(pi x) cos(pi y)) / a
    - p^2 (x^2 + y^2) g / a^2``; zero Dirichlet data. Family parameter: ``p > -1`` (the
    coefficient's variation); the solution changes with it, so models transfer between
    members (LoTRA's elliptic experiment).
    """

    bounds = ((0.0, 1.0), (0.0, 1.0))
    lower_bounds: ClassVar[dict[str, float]] = {"p": -1.0}

    def __init__(self, p: float = 1.0, domain: Geometry | None = None) -> None:
        if not p > -1:
            raise ValueError(f"p must be > -1 so that a = 1 + p x y stays positive, got {p!r}")
        self.p = float(p)
        self.domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        a = 1 + self.p * x[:, :1] * x[:, 1:2]
        return torch.sin(PI * x[:, :1]) * torch.sin(PI * x[:, 1:2]) / a

    def source(self, x: torch.Tensor) -> torch.Tensor:
        X, Y = x[:, :1], x[:, 1:2]
        a = 1 + self.p * X * Y
        g = torch.sin(PI * X) * torch.sin(PI * Y)
        cross = Y * torch.cos(PI * X) * torch.sin(PI * Y) + X * torch.sin(PI * X) * torch.cos(
            PI * Y
        )
        return 2 * PI**2 * g + self.p * PI * cross / a - self.p**2 * (X**2 + Y**2) * g / a**2

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        u = u_fn(x)
        grad = gradient(u, x)
        a = 1 + self.p * x[:, :1] * x[:, 1:2]
        flux = a * grad  # a grad u
        divergence = sum(gradient(flux[:, d : d + 1], x)[:, d : d + 1] for d in range(2))
        return -divergence - self.source(x)

    second_derivatives = (LAPLACIAN_2D,)

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        """``-(a lap u + a_x u_x + a_y u_y) - f`` with ``grad a = p (y, x)``."""
        X, Y = x[:, :1], x[:, 1:2]
        a = 1 + self.p * X * Y
        laplacian = jet.d2(*LAPLACIAN_2D)
        transport = self.p * (Y * jet.d(0) + X * jet.d(1))
        return -(a * laplacian + transport) - self.source(x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Helmholtz(PDEProblem):
    """``lap u + k^2 u = f`` on ``[-1, 1]^2`` with ``u = sin(a1 pi x) sin(a2 pi y)``.

    ``f = (k^2 - (a1^2 + a2^2) pi^2) u``; Dirichlet data from ``u``. Family: the
    frequencies ``(a1, a2)``.
    """

    bounds = ((-1.0, 1.0), (-1.0, 1.0))

    def __init__(
        self, a1: float = 1.0, a2: float = 4.0, k: float = 1.0, domain: Geometry | None = None
    ) -> None:
        self.a1, self.a2, self.k = float(a1), float(a2), float(k)
        self.domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.a1 * PI * x[:, :1]) * torch.sin(self.a2 * PI * x[:, 1:2])

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        u = u_fn(x)
        grad = gradient(u, x)
        laplacian = second_derivative(grad, x, 0) + second_derivative(grad, x, 1)
        source = (self.k**2 - (self.a1**2 + self.a2**2) * PI**2) * self.exact(x)
        return laplacian + self.k**2 * u - source

    second_derivatives = (LAPLACIAN_2D,)

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        source = (self.k**2 - (self.a1**2 + self.a2**2) * PI**2) * self.exact(x)
        return jet.d2(*LAPLACIAN_2D) + self.k**2 * jet.value - source

    def extra_repr(self) -> str:
        return f"a1={self.a1}, a2={self.a2}, k={self.k}"


class SteadyAllenCahn(PDEProblem):
    """``eps^2 lap u + u - u^3 = 0`` on ``[-1, 1]^2``, exact ``u = tanh((x + y) / (2 eps))``.

    A planar front of width ~``eps`` across the diagonal solves the equation exactly (the
    1-D profile ``tanh(s / (sqrt(2) eps))`` along ``s = (x + y) / sqrt(2)``); Dirichlet data
    from ``u``. Family: the interface width ``eps``.
    """

    bounds = ((-1.0, 1.0), (-1.0, 1.0))
    lower_bounds: ClassVar[dict[str, float]] = {"eps": 0.0}

    def __init__(self, eps: float = 0.1, domain: Geometry | None = None) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)
        self.domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh((x[:, :1] + x[:, 1:2]) / (2 * self.eps))

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        u = u_fn(x)
        grad = gradient(u, x)
        laplacian = second_derivative(grad, x, 0) + second_derivative(grad, x, 1)
        return self.eps**2 * laplacian + u - u**3

    second_derivatives = (LAPLACIAN_2D,)

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        u = jet.value
        return self.eps**2 * jet.d2(*LAPLACIAN_2D) + u - u**3

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class TimeAllenCahn(PDEProblem):
    """``u_t = eps^2 u_xx + u - u^3 + f`` on ``x in [-1, 1], t in [0, 1]``.

    Manufactured ``u = exp(-t) sin(pi x)``: ``f = (eps^2 pi^2 - 2) u + u^3``. Initial and
    boundary data from ``u``. Family: ``eps``. Columns: ``(x, t)``.
    """

    bounds = ((-1.0, 1.0), (0.0, 1.0))
    time_dims = (1,)
    lower_bounds: ClassVar[dict[str, float]] = {"eps": 0.0}

    def __init__(self, eps: float = 0.1, domain: Geometry | None = None) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)
        self.domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x[:, 1:2]) * torch.sin(PI * x[:, :1])

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        u = u_fn(x)
        grad = gradient(u, x)
        u_xx = second_derivative(grad, x, 0)
        exact = self.exact(x)
        source = (self.eps**2 * PI**2 - 2) * exact + exact**3
        return grad[:, 1:2] - self.eps**2 * u_xx - u + u**3 - source

    second_derivatives = ((0, 0),)

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        u, exact = jet.value, self.exact(x)
        source = (self.eps**2 * PI**2 - 2) * exact + exact**3
        return jet.d(1) - self.eps**2 * jet.d2(0, 0) - u + u**3 - source

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class Burgers(PDEProblem):
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` on ``x in [-1, 1], t in [0, 1]``.

    Exact travelling wave ``u = 1/2 - 1/2 tanh((x - t/2) / (4 nu))`` (the viscous shock
    between states 1 and 0, speed 1/2). Initial and boundary data from it. Family: ``nu``.
    """

    bounds = ((-1.0, 1.0), (0.0, 1.0))
    time_dims = (1,)
    lower_bounds: ClassVar[dict[str, float]] = {"nu": 0.0}

    def __init__(self, nu: float = 0.05, domain: Geometry | None = None) -> None:
        if not nu > 0:
            raise ValueError(f"nu must be positive, got {nu!r}")
        self.nu = float(nu)
        self.domain = domain

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 - 0.5 * torch.tanh((x[:, :1] - 0.5 * x[:, 1:2]) / (4 * self.nu))

    def residual(self, u_fn: Field, x: torch.Tensor) -> torch.Tensor:
        u = u_fn(x)
        grad = gradient(u, x)
        return grad[:, 1:2] + u * grad[:, :1] - self.nu * second_derivative(grad, x, 0)

    second_derivatives = ((0, 0),)

    def residual_from_jet(self, x: torch.Tensor, jet: Any) -> torch.Tensor:
        return jet.d(1) + jet.value * jet.d(0) - self.nu * jet.d2(0, 0)

    def extra_repr(self) -> str:
        return f"nu={self.nu}"
