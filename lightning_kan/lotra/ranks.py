"""LoTRA's rank specifications: which entry of a ``ranks`` option each module gets.

A specification (:data:`RankSpec`) is an int (one rank for the out, in and basis modes;
a convolution's kernel mode stays full), one rank per mode, or a dict from module-name
regexes to either (first match wins, through :func:`~lightning_kan.lotra.targets.matches`,
the selector every LoTRA option uses). Each module's entry is then resolved against its
tensor by the one rank resolver, :func:`lightning_kan.ops.resolve_ranks`: a rank larger
than its mode is an error naming the mode (``clip=False``, the default), or is clipped
to the mode's size with one warning per call that lists every clipped mode
(``clip=True``, LoTRA's ``clip_ranks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lightning_kan.lotra.targets import compile_pattern, matches
from lightning_kan.ops import MODES, is_int, rank_entry, warn_clipped
from lightning_kan.ops import resolve_ranks as resolve_mode_ranks

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
COMPONENTS = ("core", *MODES)

RankSpec = int | Sequence[int] | Mapping[str, int | Sequence[int]]

_RANKS_FORMS = (
    "for LoTRA an int (one rank for the out, in and basis modes), a list with one int per "
    "mode such as [4, 2, 4] (3 modes, or 4 for a convolution's kernel mode), or a dict "
    'from module-name regexes to either, e.g. {"net\\.layers\\.0": [4, 2, 4], ".*": 4}'
)
_CLIP = "LoTRA clip_ranks=True"
_FIX = "pass clip_ranks=True, give ranks per module ({pattern: ranks}), or exclude the module"


def check_ranks(ranks: RankSpec) -> None:
    """Check the form of ``ranks`` (no model needed): ``ValueError`` naming the bad part.

    Every rank must be a positive int; dict keys must be valid regexes. Whether a rank
    fits its mode is checked per tensor by :func:`resolve_ranks`.
    """
    if not isinstance(ranks, Mapping):
        entries = {"ranks": rank_entry(ranks, "ranks", _RANKS_FORMS)}
    elif not ranks:
        raise ValueError(
            f"LoTRA ranks={{}} is an empty dict: expected {_RANKS_FORMS}. Add a pattern, e.g. "
            '{".*": 4} for every module'
        )
    else:
        entries = {}
        for pattern, entry in ranks.items():
            compile_pattern(pattern, "ranks key")
            entries[f"ranks[{pattern!r}]"] = rank_entry(entry, f"ranks[{pattern!r}]", _RANKS_FORMS)
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


def resolve_ranks(
    ranks: int | Sequence[int], mode_sizes: Sequence[int], where: str, clip: bool = False
) -> tuple[int, ...]:
    """Per-mode ranks for a tensor whose (folded) modes have ``mode_sizes``: the one
    resolver (:func:`lightning_kan.ops.resolve_ranks`) with LoTRA's hint (``clip_ranks``).

    ``ranks`` is an int (same rank for out, in and basis; a kernel mode stays full) or one
    rank per mode (3, or 4 for convolutions). A rank larger than its mode raises a
    ``ValueError`` naming the mode and ``where`` (``clip=False``), or is clipped to the
    mode's size with one ``UserWarning`` (``clip=True``). Ranks below 1 always raise.
    """
    return resolve_mode_ranks(ranks, mode_sizes, where, clip, fix=_FIX, clip_option=_CLIP)


def resolve_module_ranks(
    ranks: RankSpec, mode_sizes: Mapping[str, Sequence[int]], where: Mapping[str, str], clip: bool
) -> dict[str, tuple[int, ...]]:
    """:func:`resolve_ranks` for many modules at once, ``{module name: mode sizes}``: each
    module's entry of ``ranks`` (:func:`ranks_for_module`), one warning for all clips."""
    resolved, notes = {}, []
    for module_name, sizes in mode_sizes.items():
        resolved[module_name] = resolve_mode_ranks(
            ranks_for_module(ranks, module_name),
            sizes,
            where[module_name],
            clip,
            fix=_FIX,
            clipped=notes,
        )
    warn_clipped(notes, _CLIP)
    return resolved
