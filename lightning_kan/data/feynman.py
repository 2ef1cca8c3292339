"""Feynman equations used as KAN / MetaKAN function-fitting benchmarks (AI Feynman set),
plus the KAN paper's toy function ``kan-toy``.

Each entry: the variables with their sampling ranges (AI Feynman's) and the formula.
:data:`KAN_PAPER_RANGES` holds the ranges of the KAN paper (Liu et al. 2024, Table 2),
which the MetaKAN paper's function-fitting code also samples: mostly ``[-1, 1]``, e.g.
I.9.18's masses on ``[-1, 1]`` and its coordinates on ``[-1, -0.5]`` / ``[0.5, 1]``
where AI Feynman has ``[1, 2]`` / ``[3, 4]``. :func:`with_ranges` picks a set by name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "EQUATIONS",
    "FEYNMAN_EQUATIONS",
    "KAN_PAPER_RANGES",
    "RANGES",
    "Equation",
    "with_ranges",
]

Tensor = torch.Tensor


@dataclass(frozen=True)
class Equation:
    """A formula ``f(*variables)`` and the range ``(low, high)`` each variable is drawn from."""

    name: str
    variables: tuple[tuple[str, float, float], ...]
    formula: Callable[..., Tensor]
    text: str

    @property
    def num_variables(self) -> int:
        return len(self.variables)


def _eq(
    name: str, text: str, variables: str, ranges: list[tuple[float, float]], formula
) -> Equation:
    names = variables.split()
    return Equation(
        name, tuple((n, lo, hi) for n, (lo, hi) in zip(names, ranges, strict=True)), formula, text
    )


_R15 = (1.0, 5.0)
FEYNMAN_EQUATIONS: dict[str, Equation] = {
    equation.name: equation
    for equation in [
        _eq(
            "I.6.20a",
            "exp(-theta^2/2)/sqrt(2 pi)",
            "theta",
            [(1.0, 3.0)],
            lambda t: torch.exp(-(t**2) / 2) / math.sqrt(2 * math.pi),
        ),
        _eq(
            "I.6.20",
            "exp(-(theta/sigma)^2/2)/(sqrt(2 pi) sigma)",
            "sigma theta",
            [(1.0, 3.0)] * 2,
            lambda s, t: torch.exp(-((t / s) ** 2) / 2) / (math.sqrt(2 * math.pi) * s),
        ),
        _eq(
            "I.6.20b",
            "exp(-((theta-theta1)/sigma)^2/2)/(sqrt(2 pi) sigma)",
            "sigma theta theta1",
            [(1.0, 3.0)] * 3,
            lambda s, t, t1: torch.exp(-(((t - t1) / s) ** 2) / 2) / (math.sqrt(2 * math.pi) * s),
        ),
        _eq(
            "I.8.4",
            "sqrt((x2-x1)^2+(y2-y1)^2)",
            "x1 x2 y1 y2",
            [_R15] * 4,
            lambda x1, x2, y1, y2: torch.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2),
        ),
        _eq(
            "I.9.18",
            "G m1 m2/((x2-x1)^2+(y2-y1)^2+(z2-z1)^2)",
            "m1 m2 G x1 x2 y1 y2 z1 z2",
            [(1.0, 2.0)] * 3 + [(3.0, 4.0), (1.0, 2.0)] * 3,
            lambda m1, m2, g, x1, x2, y1, y2, z1, z2: (
                g * m1 * m2 / ((x2 - x1) ** 2 + (y2 - y1) ** 2 + (z2 - z1) ** 2)
            ),
        ),
        _eq("I.12.1", "mu Nn", "mu Nn", [_R15] * 2, lambda mu, n: mu * n),
        _eq(
            "I.12.2",
            "q1 q2/(4 pi epsilon r^2)",
            "q1 q2 epsilon r",
            [_R15] * 4,
            lambda q1, q2, eps, r: q1 * q2 / (4 * math.pi * eps * r**2),
        ),
        _eq("I.12.5", "q2 Ef", "q2 Ef", [_R15] * 2, lambda q, e: q * e),
        _eq("I.14.3", "m g z", "m g z", [_R15] * 3, lambda m, g, z: m * g * z),
        _eq(
            "I.15.3x",
            "(x-u t)/sqrt(1-u^2/c^2)",
            "x u c t",
            [(5.0, 10.0), (1.0, 2.0), (3.0, 20.0), (1.0, 2.0)],
            lambda x, u, c, t: (x - u * t) / torch.sqrt(1 - u**2 / c**2),
        ),
        _eq(
            "I.18.4",
            "(m1 r1+m2 r2)/(m1+m2)",
            "m1 m2 r1 r2",
            [_R15] * 4,
            lambda m1, m2, r1, r2: (m1 * r1 + m2 * r2) / (m1 + m2),
        ),
        _eq("I.25.13", "q/C", "q C", [_R15] * 2, lambda q, c: q / c),
        _eq("I.29.4", "omega/c", "omega c", [(1.0, 10.0)] * 2, lambda w, c: w / c),
        _eq(
            "I.37.4",
            "I1+I2+2 sqrt(I1 I2) cos(delta)",
            "I1 I2 delta",
            [_R15] * 3,
            lambda i1, i2, d: i1 + i2 + 2 * torch.sqrt(i1 * i2) * torch.cos(d),
        ),
        _eq("I.39.1", "3/2 pF V", "pF V", [_R15] * 2, lambda p, v: 1.5 * p * v),
        _eq(
            "II.3.24", "Pwr/(4 pi r^2)", "Pwr r", [_R15] * 2, lambda p, r: p / (4 * math.pi * r**2)
        ),
    ]
}


#: Every named equation: the Feynman set plus the KAN paper's toy function.
EQUATIONS: dict[str, Equation] = {
    "kan-toy": _eq(
        "kan-toy",
        "exp(sin(pi x) + y^2)",
        "x y",
        [(-1.0, 1.0)] * 2,
        lambda x, y: torch.exp(torch.sin(math.pi * x) + y**2),
    ),
    **FEYNMAN_EQUATIONS,
}


_PM1 = (-1.0, 1.0)
_NEAR, _FAR = (-1.0, -0.5), (0.5, 1.0)
#: The KAN paper's variable ranges, in each equation's variable order above (the MetaKAN
#: code's ``data/feynman.py`` lists the same boxes, some in another variable order).
KAN_PAPER_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "kan-toy": (_PM1, _PM1),
    "I.6.20a": ((-3.0, 3.0),),
    "I.6.20": ((0.5, 2.0), _PM1),  # sigma, theta
    "I.6.20b": ((0.5, 2.0), (-1.5, 1.5), (-1.5, 1.5)),  # sigma, theta, theta1
    "I.8.4": (_PM1,) * 4,
    "I.9.18": (_PM1,) * 3 + (_NEAR, _FAR) * 3,  # m1 m2 G, then (x1, x2), (y1, y2), (z1, z2)
    "I.12.1": (_PM1,) * 2,
    "I.12.2": (_PM1, _PM1, (0.5, 2.0), (0.5, 2.0)),
    "I.12.5": (_PM1,) * 2,
    "I.14.3": ((0.0, 1.0), (0.0, 1.0), _PM1),
    "I.15.3x": (_PM1, _PM1, (1.0, 2.0), _PM1),  # x, u, c, t
    "I.18.4": ((0.5, 1.0), (0.5, 1.0), _PM1, _PM1),  # m1, m2, r1, r2
    "I.25.13": (_PM1, (0.5, 2.0)),
    "I.29.4": ((0.0, 1.0), (0.5, 2.0)),
    "I.37.4": ((0.1, 1.0), (0.1, 1.0), (0.0, 2 * math.pi)),
    "I.39.1": ((0.0, 1.0), (0.0, 1.0)),  # the KAN paper's I.39.10
    "II.3.24": ((0.0, 1.0), (0.5, 2.0)),
}

#: Names of the range sets :func:`with_ranges` accepts.
RANGES = ("ai_feynman", "kan_paper")


def with_ranges(equation: Equation, ranges: str) -> Equation:
    """``equation`` sampled from the named range set: ``"ai_feynman"`` (as defined above,
    unchanged) or ``"kan_paper"`` (:data:`KAN_PAPER_RANGES`; named equations only)."""
    if ranges not in RANGES:
        raise ValueError(
            f"ranges={ranges!r} is not a known set of variable ranges; use 'ai_feynman' (the "
            "AI Feynman ranges, the default) or 'kan_paper' (the KAN and MetaKAN papers' "
            "ranges, mostly [-1, 1])"
        )
    if ranges == "ai_feynman":
        return equation
    if equation.name not in KAN_PAPER_RANGES:
        raise ValueError(
            f"ranges='kan_paper' has no ranges for equation {equation.name!r}; it covers "
            f"{', '.join(KAN_PAPER_RANGES)}. For your own function give variable_range and "
            "ranges='ai_feynman' (the default)"
        )
    boxes = KAN_PAPER_RANGES[equation.name]
    variables = tuple(
        (name, lo, hi) for (name, _, _), (lo, hi) in zip(equation.variables, boxes, strict=True)
    )
    return dataclasses.replace(equation, variables=variables)
