"""Symbolic edges: the function library and the module that puts ``c * f(a * x + b) + d``
on chosen edges of a ``KANLinear``.

**Library.** Every entry (:class:`SymbolicFunction`) has a torch function, a sympy
builder (a string such as ``"sin(x)"`` or a callable; sympy itself is only imported by
:mod:`lightning_kan.interpret.symbolic`), a complexity (pykan's values), its domain (the
fit only keeps ``(a, b)`` for which ``a * x + b`` stays inside it on the whole sample
range, so a fitted edge is real and finite), the symmetries that make ``(a, b, c, d)``
unique (:data:`canonical`), and aliases (``asin`` = ``arcsin``, ``x2`` = ``x**2`` =
``x^2``). :func:`register_symbolic` adds your own; :func:`get_symbolic` looks a name up
(with a did-you-mean error).

**Module.** :class:`SymbolicEdges` holds, for a layer ``I -> O``, the bool buffer
``active (O, I)``, the trainable ``affine (O, I, 4)`` = ``[a, b, c, d]`` and the function of
each edge (an int buffer ``codes`` into the name list ``functions``, which travels as the
module's extra state, so a state dict round-trips). Inactive edges contribute exactly 0
(their function is never evaluated, so no NaN can leak in through a gradient).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "AnyOf",
    "Interval",
    "Periodic",
    "SymbolicEdges",
    "SymbolicFunction",
    "available_symbolic",
    "get_symbolic",
    "register_symbolic",
    "symbolic_edges",
]

Affine = tuple[float, float, float, float]


# --------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Interval:
    """The interval ``low .. high`` (each end open or closed). Called with the ends
    ``lo, hi`` (tensors) of argument ranges, it says which ranges lie inside it."""

    low: float = -math.inf
    high: float = math.inf
    closed_low: bool = True
    closed_high: bool = True

    def __call__(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        above = lo >= self.low if self.closed_low else lo > self.low
        below = hi <= self.high if self.closed_high else hi < self.high
        return above & below

    def __str__(self) -> str:
        opening = "[" if self.closed_low and math.isfinite(self.low) else "("
        closing = "]" if self.closed_high and math.isfinite(self.high) else ")"
        return f"{opening}{self.low:g}, {self.high:g}{closing}"


@dataclass(frozen=True)
class AnyOf:
    """A union of domains: a range is inside if it lies inside one of them."""

    parts: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...]

    def __call__(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        inside = self.parts[0](lo, hi)
        for part in self.parts[1:]:
            inside = inside | part(lo, hi)
        return inside

    def __str__(self) -> str:
        return " U ".join(map(str, self.parts))


@dataclass(frozen=True)
class Periodic:
    """``base + k * period`` for any integer ``k`` (one branch: a range must not cross
    from one copy to the next), e.g. ``tan``'s ``(-pi/2, pi/2) + k*pi``."""

    base: Interval
    period: float

    def __call__(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        shift = torch.floor((lo - self.base.low) / self.period) * self.period
        return self.base(lo - shift, hi - shift)

    def __str__(self) -> str:
        return f"{self.base} + k*{self.period:g}"


REAL = Interval()
NONNEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, closed_low=False)
NONZERO = AnyOf((Interval(high=0.0, closed_high=False), POSITIVE))


# ------------------------------------------------------------- canonical (a, b, c, d)
# Each transform rewrites c * f(a x + b) + d into an equal expression; applied in order
# they pick one representative of the function's symmetries (documented per entry).
# ``restrict`` narrows the fit's (a, b) search grid to that representative's range.
Axes = tuple[torch.Tensor, torch.Tensor]


def _fine(span: float, size: int) -> torch.Tensor:
    """The 1-D search axis of a parameter that is alone on its grid (10x finer)."""
    return torch.linspace(-2 * span, 2 * span, 10 * size + 1, dtype=torch.float64)


@dataclass(frozen=True)
class Reflect:
    """``f(-u) = offset + sign * f(u)``: makes ``a >= 0`` (odd: ``(0, -1)``, even:
    ``(0, 1)``, arccos: ``(pi, -1)``). The domain must be symmetric."""

    offset: float
    sign: float

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        return (-a, -b, self.sign * c, d + c * self.offset) if a < 0 else (a, b, c, d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return a[a >= 0], b


@dataclass(frozen=True)
class Scale:
    """``f(s u) = s**power f(u)`` for ``s > 0``: makes ``|a| = 1``."""

    power: float

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        s = abs(a)
        return (a, b, c, d) if s == 0 else (a / s, b / s, c * s**self.power, d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return torch.tensor([-1.0, 1.0], dtype=a.dtype), _fine(span, size)


@dataclass(frozen=True)
class LogScale:
    """``f(s u) = log(s) + f(u)`` for ``s > 0``: makes ``|a| = 1`` (log)."""

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        s = abs(a)
        return (a, b, c, d) if s == 0 else (a / s, b / s, c, d + c * math.log(s))

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return torch.tensor([-1.0, 1.0], dtype=a.dtype), _fine(span, size)


@dataclass(frozen=True)
class ExpShift:
    """``f(u + b) = exp(b) f(u)``: makes ``b = 0`` (exp)."""

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        scaled = c * math.exp(b) if b < 700 else math.inf
        return (a, 0.0, scaled, d) if math.isfinite(scaled) else (a, b, c, d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return _fine(span / 2, size), torch.zeros(1, dtype=b.dtype)


@dataclass(frozen=True)
class Shift:
    """``f(u + period) = sign * f(u)``: makes ``-period/2 <= b <= period/2`` (sin, cos
    with ``(pi, -1)``, tan with ``(pi, 1)``)."""

    period: float
    sign: float

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        k = round(b / self.period)
        return (a, b - k * self.period, c * self.sign ** (k % 2), d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        half = self.period / 2
        return a, torch.linspace(-half, half, size, dtype=b.dtype)


@dataclass(frozen=True)
class Linear:
    """``f(u) = u``: ``c (a x + b) + d = (c a) x + (c b + d)``, so ``a = 1, b = 0``."""

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        return (1.0, 0.0, c * a, c * b + d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return torch.ones(1, dtype=a.dtype), torch.zeros(1, dtype=b.dtype)


@dataclass(frozen=True)
class Constant:
    """``f = 0``: only ``d`` matters; ``a = 1, b = 0, c = 0``."""

    def __call__(self, a: float, b: float, c: float, d: float) -> Affine:
        return (1.0, 0.0, 0.0, d)

    def restrict(self, a: torch.Tensor, b: torch.Tensor, span: float, size: int) -> Axes:
        return torch.ones(1, dtype=a.dtype), torch.zeros(1, dtype=b.dtype)


ODD, EVEN = Reflect(0.0, -1.0), Reflect(0.0, 1.0)


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class SymbolicFunction:
    """One library entry; the edge is ``c * fn(a * x + b) + d``.

    ``sympy_fn`` is a sympy string in ``x`` (``"asin(x)"``) or a callable from a sympy
    expression (the argument) to a sympy expression. ``label`` is the plain-text
    template (``"sin({})"``, ``"{}^2"``) used by :meth:`SymbolicEdges.edge_label`.
    ``canonical`` lists the transforms (:class:`Reflect`, :class:`Scale`, ...) that
    choose one of the equal ``(a, b, c, d)``.
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    sympy_fn: str | Callable[[Any], Any]
    complexity: float
    domain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = REAL
    canonical: tuple[Callable[[float, float, float, float], Affine], ...] = ()
    label: str = ""
    aliases: tuple[str, ...] = ()

    def canonicalize(self, a: float, b: float, c: float, d: float) -> Affine:
        """``(a, b, c, d)`` in this function's canonical form (same edge values)."""
        for transform in self.canonical:
            a, b, c, d = transform(a, b, c, d)
        return a, b, c, d

    def grid_axes(self, span: float, size: int) -> Axes:
        """The ``a`` and ``b`` axes of the fit's search grid (``size`` points on
        ``[-span, span]`` each), narrowed by the canonical transforms' ``restrict``."""
        a = b = torch.linspace(-span, span, size, dtype=torch.float64)
        for transform in self.canonical:
            restrict = getattr(transform, "restrict", None)
            if restrict is not None:
                a, b = restrict(a, b, span, size)
        return a, b

    def text(self, argument: str) -> str:
        """Plain text of ``fn(argument)``."""
        template = self.label or f"{self.name}({{}})"
        if "({})" not in template and argument != "x":
            argument = f"({argument})"
        return template.format(argument)


_LIBRARY: dict[str, SymbolicFunction] = {}
_NAMES: dict[str, str] = {}  # normalised name or alias -> library name


def _normalise(name: str) -> str:
    return "".join(name.split()).lower().replace("**", "^")


def register_symbolic(
    name: str,
    fn: Callable[[torch.Tensor], torch.Tensor],
    sympy_fn: str | Callable[[Any], Any],
    complexity: float,
    domain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = REAL,
    canonical: Sequence[Callable[[float, float, float, float], Affine]] = (),
    label: str = "",
    aliases: Sequence[str] = (),
    overwrite: bool = False,
) -> SymbolicFunction:
    """Add ``name`` to the library (see :class:`SymbolicFunction` for the fields).

    ``domain`` is called with the ends ``(lo, hi)`` of argument ranges (tensors) and
    returns which lie inside the function's domain (:class:`Interval`, :class:`AnyOf`,
    :class:`Periodic`, or your own callable). A name or alias already taken raises
    unless ``overwrite``. Register before loading a state dict that uses the name.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_symbolic: name must be a non-empty string, got {name!r}")
    if not callable(fn) or not (isinstance(sympy_fn, str) or callable(sympy_fn)):
        raise TypeError(
            f"register_symbolic({name!r}): fn must be a torch function and sympy_fn a sympy "
            f"string in x (e.g. 'sin(x)') or a callable, got {type(fn).__name__} and "
            f"{type(sympy_fn).__name__}"
        )
    if isinstance(complexity, bool) or not isinstance(complexity, int | float) or complexity < 0:
        raise ValueError(
            f"register_symbolic({name!r}): complexity must be a number >= 0 (pykan uses 1 for "
            f"x up to 5 for 1/x^5), got {complexity!r}"
        )
    keys = [_normalise(key) for key in (name, *aliases)]
    taken = [key for key in keys if _NAMES.get(key, name) != name]
    if taken and not overwrite:
        raise ValueError(
            f"register_symbolic({name!r}): {taken} already name "
            f"{sorted({_NAMES[key] for key in taken})}; choose other names or pass "
            "overwrite=True"
        )
    entry = SymbolicFunction(
        name, fn, sympy_fn, float(complexity), domain, tuple(canonical), label, tuple(aliases)
    )
    _LIBRARY[name] = entry
    _NAMES.update(dict.fromkeys(keys, name))
    return entry


def available_symbolic() -> list[str]:
    """The library's names, in registration order (the default candidate list)."""
    return list(_LIBRARY)


def get_symbolic(name: object, caller: str = "symbolic") -> SymbolicFunction:
    """The library entry for ``name`` or one of its aliases, or a did-you-mean error."""
    key = _normalise(name) if isinstance(name, str) else None
    if key in _NAMES:
        return _LIBRARY[_NAMES[key]]
    close = difflib.get_close_matches(key or "", list(_NAMES), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(_NAMES[c]) for c in close)}? " if close else ""
    raise ValueError(
        f"{caller}: unknown symbolic function {name!r}; {hint}the library has "
        f"{', '.join(_LIBRARY)} (aliases such as 'asin', 'x2', 'x**2' work too), and "
        "lightning_kan.layers.symbolic.register_symbolic adds your own"
    )


def _power(n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda u: u.pow(n)


def _register_defaults() -> None:
    pi = math.pi
    register_symbolic("x", lambda u: u, "x", 1, canonical=(Linear(),), label="{}")
    for n, complexity in ((2, 2), (3, 3), (4, 3), (5, 3)):
        register_symbolic(
            f"x^{n}",
            _power(n),
            f"x**{n}",
            complexity,
            canonical=(Scale(n), EVEN if n % 2 == 0 else ODD),
            label=f"{{}}^{n}",
            aliases=(f"x{n}",),
        )
    for n, complexity in ((1, 2), (2, 2), (3, 3), (4, 4), (5, 5)):
        register_symbolic(
            "1/x" if n == 1 else f"1/x^{n}",
            _power(-n),
            f"x**(-{n})",
            complexity,
            NONZERO,
            (Scale(-n), EVEN if n % 2 == 0 else ODD),
            "1/{}" if n == 1 else f"1/{{}}^{n}",
            (f"x^-{n}", f"1/x{n}"),
        )
    register_symbolic(
        "sqrt", torch.sqrt, "sqrt(x)", 2, NONNEGATIVE, (Scale(0.5),), "sqrt({})",
        ("x^0.5", "x0.5", "x^(1/2)", "sqrt(x)"),
    )  # fmt: skip
    register_symbolic(
        "x^1.5", lambda u: u * u.sqrt(), "x**(3/2)", 4, NONNEGATIVE, (Scale(1.5),), "{}^1.5",
        ("x1.5", "x^(3/2)"),
    )  # fmt: skip
    register_symbolic(
        "1/sqrt(x)", torch.rsqrt, "1/sqrt(x)", 2, POSITIVE, (Scale(-0.5),), "1/sqrt({})",
        ("1/x^0.5", "x^-0.5", "rsqrt", "1/sqrt"),
    )  # fmt: skip
    register_symbolic("exp", torch.exp, "exp(x)", 2, canonical=(ExpShift(),))
    register_symbolic("log", torch.log, "log(x)", 2, POSITIVE, (LogScale(),), aliases=("ln",))
    register_symbolic("abs", torch.abs, "Abs(x)", 3, canonical=(Scale(1), EVEN), label="|{}|")
    register_symbolic("sin", torch.sin, "sin(x)", 2, canonical=(ODD, Shift(pi, -1.0)))
    register_symbolic("cos", torch.cos, "cos(x)", 2, canonical=(EVEN, Shift(pi, -1.0)))
    tan_domain = Periodic(Interval(-pi / 2, pi / 2, False, False), pi)
    register_symbolic("tan", torch.tan, "tan(x)", 3, tan_domain, (ODD, Shift(pi, 1.0)))
    register_symbolic("tanh", torch.tanh, "tanh(x)", 3, canonical=(ODD,))
    register_symbolic("sgn", torch.sign, "sign(x)", 3, canonical=(Scale(0), ODD), aliases=("sign",))
    unit = Interval(-1.0, 1.0)
    register_symbolic("arcsin", torch.asin, "asin(x)", 4, unit, (ODD,), aliases=("asin",))
    register_symbolic(
        "arccos", torch.acos, "acos(x)", 4, unit, (Reflect(pi, -1.0),), aliases=("acos",)
    )
    register_symbolic("arctan", torch.atan, "atan(x)", 4, canonical=(ODD,), aliases=("atan",))
    register_symbolic(
        "arctanh", torch.atanh, "atanh(x)", 4, Interval(-1.0, 1.0, False, False), (ODD,),
        aliases=("atanh",),
    )  # fmt: skip
    register_symbolic(
        "0", torch.zeros_like, "0", 0, canonical=(Constant(),), label="0", aliases=("zero",)
    )
    register_symbolic(
        "gaussian", lambda u: torch.exp(-u * u), "exp(-x**2)", 3, canonical=(EVEN,),
        label="exp(-{}^2)", aliases=("gauss", "exp(-x^2)"),
    )  # fmt: skip


_register_defaults()


# ------------------------------------------------------------------------------ module
class SymbolicEdges(nn.Module):
    """Symbolic functions on the edges of a layer ``I -> O``: ``(..., I) -> (..., O)``.

    Edge ``(o, i)`` is active when ``active[o, i]``; it then computes
    ``c * f(a * x_i + b) + d`` with ``affine[o, i] = [a, b, c, d]`` (trainable) and ``f``
    the library function ``functions[codes[o, i]]``. Every inactive edge is exactly 0.
    The layer adds this module's output to its numeric edges (cut by an ``EdgeMask``
    where an edge is symbolic).
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = int(out_features), int(in_features)
        shape = (self.out_features, self.in_features)
        self.register_buffer("active", torch.zeros(shape, dtype=torch.bool, device=device))
        self.register_buffer("codes", torch.full(shape, -1, dtype=torch.long, device=device))
        identity = torch.tensor([1.0, 0.0, 1.0, 0.0], device=device, dtype=dtype)
        self.affine = nn.Parameter(identity.expand(*shape, 4).clone())
        #: library names the ``codes`` refer to
        self.functions: list[str] = []

    # -------------------------------------------------------------------- editing
    def _check_edge(self, o: object, i: object) -> tuple[int, int]:
        for name, value, size in (("o", o, self.out_features), ("i", i, self.in_features)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
                raise ValueError(
                    f"SymbolicEdges: edge index {name}={value!r} is out of range; this layer "
                    f"has {self.out_features} outputs (o) and {self.in_features} inputs (i), "
                    f"so pass an int from 0 to {size - 1}"
                )
        return int(o), int(i)  # type: ignore[arg-type]

    @torch.no_grad()
    def set_edge(self, o: int, i: int, name: str, affine: Sequence[float] = (1, 0, 1, 0)) -> None:
        """Make edge ``(o, i)`` the function ``name`` (an alias is fine) with ``[a, b, c, d]``."""
        o, i = self._check_edge(o, i)
        entry = get_symbolic(name, "SymbolicEdges.set_edge")
        values = [float(v) for v in affine]
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"SymbolicEdges.set_edge: affine must be 4 finite numbers [a, b, c, d] (edge = "
                f"c * f(a * x + b) + d), got {list(affine)!r}"
            )
        if entry.name not in self.functions:
            self.functions.append(entry.name)
        self.codes[o, i] = self.functions.index(entry.name)
        self.affine[o, i] = torch.tensor(values, dtype=self.affine.dtype, device=self.affine.device)
        self.active[o, i] = True

    @torch.no_grad()
    def clear_edge(self, o: int, i: int) -> None:
        """Make edge ``(o, i)`` inactive (exactly 0)."""
        o, i = self._check_edge(o, i)
        self.active[o, i] = False
        self.codes[o, i] = -1

    def name(self, o: int, i: int) -> str | None:
        """The library name of edge ``(o, i)``, or ``None`` when it is inactive."""
        o, i = self._check_edge(o, i)
        return self.functions[int(self.codes[o, i])] if bool(self.active[o, i]) else None

    def select(self, rows: torch.Tensor, cols: torch.Tensor) -> SymbolicEdges:
        """A new module with the edges ``rows x cols`` (index tensors), e.g. for pruning."""
        out = SymbolicEdges(len(rows), len(cols), self.affine.device, self.affine.dtype)
        out.functions = list(self.functions)
        with torch.no_grad():
            out.active.copy_(self.active[rows][:, cols])
            out.codes.copy_(self.codes[rows][:, cols])
            out.affine.copy_(self.affine[rows][:, cols])
        out.affine.requires_grad_(self.affine.requires_grad)
        return out

    # ----------------------------------------------------------------- evaluation
    def _groups(self):
        """``(function, o_index, i_index)`` for each function that has active edges."""
        for code in torch.unique(self.codes[self.active]).tolist():
            o_index, i_index = torch.nonzero(self.active & (self.codes == code), as_tuple=True)
            yield get_symbolic(self.functions[code]), o_index, i_index

    def _values(self, x: torch.Tensor):
        """Yield ``(o_index, i_index, values (N, E))`` per function; ``x (N, I)``."""
        dtype = torch.promote_types(x.dtype, self.affine.dtype)
        x = x.to(dtype)
        for entry, o_index, i_index in self._groups():
            a, b, c, d = self.affine[o_index, i_index].to(dtype).unbind(-1)  # (E,) each
            yield o_index, i_index, c * entry.fn(a * x[:, i_index] + b) + d

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """Every edge's output ``(N, O, I)`` for ``x (N, I)`` (0 on inactive edges)."""
        dtype = torch.promote_types(x.dtype, self.affine.dtype)
        out = x.new_zeros(x.shape[0], self.out_features * self.in_features, dtype=dtype)
        for o_index, i_index, values in self._values(x):
            out = out.index_add(1, o_index * self.in_features + i_index, values)
        return out.unflatten(1, (self.out_features, self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_i`` of the active edges: ``(..., I) -> (..., O)``."""
        flat = x.reshape(-1, self.in_features)
        dtype = torch.promote_types(x.dtype, self.affine.dtype)
        out = flat.new_zeros(flat.shape[0], self.out_features, dtype=dtype)
        for o_index, _, values in self._values(flat):
            out = out.index_add(1, o_index, values)
        return out.reshape(*x.shape[:-1], self.out_features)

    def edge_label(self, o: int, i: int, digits: int = 3) -> str:
        """Plain text of edge ``(o, i)`` in ``x`` with ``digits`` significant digits, e.g.
        ``2*sin(3*x+1)-0.5``; ``""`` for an inactive edge (used by plots)."""
        name = self.name(o, i)
        if name is None:
            return ""
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
            raise ValueError(f"edge_label: digits must be an int >= 1, got {digits!r}")
        a, b, c, d = self.affine.detach()[o, i].tolist()

        def number(value: float) -> str:
            return f"{value:.{digits}g}"

        def term(scale: float, text: str) -> str:  # scale * text, with 1 and -1 left out
            written = number(scale)
            return (
                text if written == "1" else f"-{text}" if written == "-1" else f"{written}*{text}"
            )

        def plus(text: str, value: float) -> str:
            written = number(value)
            if written in ("0", "-0"):
                return text
            return f"{text}{written}" if written.startswith("-") else f"{text}+{written}"

        if name == "0":
            return number(d)
        argument = plus(term(a, "x"), b)
        return plus(term(c, get_symbolic(name).text(argument)), d)

    # ---------------------------------------------------------------- state dict
    def get_extra_state(self) -> dict[str, list[str]]:
        return {"functions": list(self.functions)}

    def set_extra_state(self, state: dict[str, list[str]]) -> None:
        names = list(state["functions"])
        for name in names:
            get_symbolic(name, "SymbolicEdges (loading a state dict)")
        self.functions = names

    def extra_repr(self) -> str:
        return (
            f"out_features={self.out_features}, in_features={self.in_features}, "
            f"active={int(self.active.sum())}"
        )


def symbolic_edges(layer: nn.Module) -> SymbolicEdges:
    """``layer.symbolic``, created (no active edge, on the layer's device and dtype) if the
    layer has none yet. Build the optimizer afterwards: ``affine`` is a new parameter."""
    if getattr(layer, "symbolic", None) is None:
        reference = layer.weight  # (parametrised) coefficients: the layer's device and dtype
        layer.symbolic = SymbolicEdges(
            layer.out_features, layer.in_features, reference.device, reference.dtype
        )
    return layer.symbolic
