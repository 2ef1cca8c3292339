"""LoTRA's one rank resolver: a rank specification -> per-mode ranks for each tensor.

A specification (:data:`RankSpec`) is an int (one rank for the out, in and basis modes;
a convolution's kernel mode stays full), one rank per mode, or a dict from module-name
regexes to either (first match wins, through :func:`~lightning_kan.lotra.targets.matches`,
the selector every LoTRA option uses). A rank larger than its mode is an error naming
the mode (``clip=False``, the default), or is clipped to the mode's size with one warning
per call that lists every clipped mode (``clip=True``).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from lightning_kan.lotra.targets import compile_pattern, matches

__all__ = [
    "COMPONENTS",
    "RankSpec",
    "check_ranks",
    "is_int",
    "ranks_for_module",
    "resolve_module_ranks",
    "resolve_ranks",
]

#: adapter components, in the order their parameter groups are built; the modes are
#: ``COMPONENTS[1:]`` (out, in, basis, and a convolution's kernel taps)
COMPONENTS = ("core", "out", "in", "basis", "kernel")

RankSpec = int | Sequence[int] | Mapping[str, int | Sequence[int]]

_RANKS_FORMS = (
    "an int (one rank for the out, in and basis modes), a list with one int per mode such "
    "as [4, 2, 4] (3 modes, or 4 for a convolution's kernel mode), or a dict from module-name "
    'regexes to either, e.g. {"net\\.layers\\.0": [4, 2, 4], ".*": 4}'
)


def is_int(value: Any) -> bool:
    """An integral number that is not a bool (``int(2.5)`` would silently give 2)."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _rank_entry(entry: Any, argument: str) -> int | tuple[int, ...]:
    """``entry`` as an int or a tuple of ints; ``ValueError`` naming ``argument`` if neither."""
    if is_int(entry):
        return operator.index(entry)
    if isinstance(entry, Sequence) and not isinstance(entry, str | bytes) and entry:
        bad = [r for r in entry if not is_int(r)]
        if not bad:
            return tuple(operator.index(r) for r in entry)
        detail = f"its entry {bad[0]!r} ({type(bad[0]).__name__}) is not an int"
    else:
        detail = f"got a {type(entry).__name__}"
    raise ValueError(
        f"LoTRA {argument}={entry!r} is not a valid rank specification ({detail}): expected "
        f"{_RANKS_FORMS}. Pass whole numbers, e.g. {argument}=4 or {argument}=[4, 2, 4]"
    )


def check_ranks(ranks: RankSpec) -> None:
    """Check the form of ``ranks`` (no model needed): ``ValueError`` naming the bad part.

    Every rank must be a positive int; dict keys must be valid regexes. Whether a rank
    fits its mode is checked per tensor by :func:`resolve_ranks`.
    """
    if not isinstance(ranks, Mapping):
        entries = {"ranks": _rank_entry(ranks, "ranks")}
    elif not ranks:
        raise ValueError(
            f"LoTRA ranks={{}} is an empty dict: expected {_RANKS_FORMS}. Add a pattern, e.g. "
            '{".*": 4} for every module'
        )
    else:
        entries = {}
        for pattern, entry in ranks.items():
            compile_pattern(pattern, "ranks key")
            entries[f"ranks[{pattern!r}]"] = _rank_entry(entry, f"ranks[{pattern!r}]")
    for argument, entry in entries.items():
        values = (entry,) if isinstance(entry, int) else entry
        if any(r < 1 for r in values):
            raise ValueError(
                f"LoTRA {argument}={entry!r} holds a rank below 1: every rank must be a "
                "positive int (rank 1 is the smallest update). Raise it to 1 or more, or "
                "exclude the module with exclude_modules"
            )


def ranks_for_module(ranks: RankSpec, module_name: str) -> int | Sequence[int]:
    """The rank entry for one module: ``ranks`` itself, or the first matching dict entry.

    A dict maps regexes (full match on the qualified module name) to ranks, e.g.
    ``{"net.layers.0": [4, 2, 4], ".*": 4}``; the first match wins.
    """
    if not isinstance(ranks, Mapping):
        return ranks
    for pattern, entry in ranks.items():
        compile_pattern(pattern, "ranks key")
        if matches(module_name, None, pattern):
            return entry
    raise ValueError(
        f"LoTRA ranks={dict(ranks)!r} has no entry for module {module_name!r}; add a pattern "
        'that matches it (".*" matches every module) or exclude it'
    )


def _resolve(
    ranks: RankSpec, sizes: tuple[int, ...], where: str, clip: bool
) -> tuple[tuple[int, ...], list[str]]:
    """Per-mode ranks and, with ``clip``, a note per clipped mode (see :func:`resolve_ranks`)."""
    entry = _rank_entry(ranks, "ranks")
    if isinstance(entry, int):
        resolved = (entry, entry, entry, *sizes[3:])
    else:
        resolved = entry
        if len(resolved) == 3 and len(sizes) == 4:
            resolved = (*resolved, sizes[3])
    if len(resolved) != len(sizes):
        modes = COMPONENTS[1 : 1 + len(sizes)]
        raise ValueError(
            f"LoTRA ranks={ranks!r} for {where}: expected an int or {len(sizes)} ranks, one "
            f"for each of its modes {modes} of sizes {sizes}, but got {len(resolved)}. Give "
            f"{len(sizes)} ranks, e.g. {list(min(4, n) for n in sizes)}, or an int"
        )
    notes = []
    for component, rank, size in zip(COMPONENTS[1:], resolved, sizes, strict=False):
        if rank < 1 or (rank > size and not clip):
            fix = "Raise it to 1 or more" if rank < 1 else "Lower the rank, pass clip_ranks=True"
            raise ValueError(
                f"LoTRA rank {rank} for the {component!r} mode of {where} is out of range: "
                f"that mode has size {size}, so the rank must be in 1..{size}. {fix}, give "
                "ranks per module ({pattern: ranks}), or exclude the module"
            )
        if rank > size:
            notes.append(f"{where} {component!r} {rank} -> {size}")
    return tuple(min(r, n) for r, n in zip(resolved, sizes, strict=True)), notes


def _warn_clipped(notes: list[str]) -> None:
    if notes:
        warnings.warn(
            f"LoTRA clip_ranks=True clipped {len(notes)} rank(s) to their mode's size: "
            f"{'; '.join(notes)}",
            UserWarning,
            stacklevel=3,
        )


def resolve_ranks(
    ranks: RankSpec, mode_sizes: Sequence[int], where: str, clip: bool = False
) -> tuple[int, ...]:
    """Per-mode ranks for a tensor whose (folded) modes have ``mode_sizes``.

    ``ranks`` is an int (same rank for out, in and basis; a kernel mode stays full) or one
    rank per mode (3, or 4 for convolutions). A rank larger than its mode raises a
    ``ValueError`` naming the mode and ``where`` (``clip=False``), or is clipped to the
    mode's size with one ``UserWarning`` (``clip=True``). Ranks below 1 always raise.
    """
    resolved, notes = _resolve(ranks, tuple(int(n) for n in mode_sizes), where, clip)
    _warn_clipped(notes)
    return resolved


def resolve_module_ranks(
    ranks: RankSpec, mode_sizes: Mapping[str, Sequence[int]], where: Mapping[str, str], clip: bool
) -> dict[str, tuple[int, ...]]:
    """:func:`resolve_ranks` for many modules at once, ``{module name: mode sizes}``: each
    module's entry of ``ranks`` (:func:`ranks_for_module`), one warning for all clips."""
    resolved, notes = {}, []
    for module_name, sizes in mode_sizes.items():
        entry = ranks_for_module(ranks, module_name)
        resolved[module_name], clipped = _resolve(entry, tuple(sizes), where[module_name], clip)
        notes += clipped
    _warn_clipped(notes)
    return resolved
