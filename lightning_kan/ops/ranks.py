"""The one Tucker rank resolver: a rank option -> one rank per mode of a tensor.

Slim KAN (:class:`~lightning_kan.layers.slim.Tucker`), LoTRA's adapters and
:func:`~lightning_kan.ops.tucker.hosvd` all resolve ranks here, so the forms, the
range rule and the error texts are the same everywhere. The modes of a coefficient
tensor are ordered (out, in, basis, *kernel) (:data:`MODES`).

- An int ``r`` is one rank for the out, in and basis modes; kernel modes stay full.
- A sequence gives one rank per mode; 3 ranks for a tensor with kernel modes keep
  those full.
- A rank above its mode's size is an error naming the mode (``clip=False``), or is
  clipped to the size (``clip=True``) with ONE ``UserWarning`` per call listing every
  clipped mode (pass ``clipped=[]`` to collect the notes and warn once for many tensors,
  :func:`warn_clipped`). A rank below 1 is always an error.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["MODES", "is_int", "mode_names", "rank_entry", "resolve_ranks", "warn_clipped"]

#: names of a coefficient tensor's modes, in order (a convolution's kernel is folded into
#: one ``"kernel"`` mode by LoTRA; Slim keeps the kernel modes whole)
MODES = ("out", "in", "basis", "kernel")

_FORMS = "an int (one rank for the out, in and basis modes) or a list with one int per mode"


def is_int(value: Any) -> bool:
    """An integral number that is not a bool (``int(2.5)`` would silently give 2)."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def mode_names(num_modes: int) -> tuple[str, ...]:
    """``("out", "in", "basis")`` then ``"kernel"`` (one kernel mode) or ``"kernel 0"``, ..."""
    if num_modes <= len(MODES):
        return MODES[:num_modes]
    return (*MODES[:3], *(f"kernel {j}" for j in range(num_modes - 3)))


def rank_entry(entry: Any, argument: str = "ranks", forms: str = _FORMS) -> int | tuple[int, ...]:
    """``entry`` as an int or a tuple of ints; ``ValueError`` naming ``argument`` if neither.

    ``forms`` describes the accepted forms in the message (LoTRA adds its dict form).
    """
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
        f"{argument}={entry!r} is not a valid rank specification ({detail}): expected "
        f"{forms}. Pass whole numbers, e.g. {argument}=4 or {argument}=[4, 2, 4]"
    )


def _per_mode(entry: int | tuple[int, ...], sizes: tuple[int, ...]) -> tuple[int, ...]:
    """An int for the first three modes, and 3 ranks, extended by the full kernel modes."""
    if isinstance(entry, int):
        return (*(entry,) * min(3, len(sizes)), *sizes[3:])
    if len(entry) == 3 and len(sizes) > 3:
        return (*entry, *sizes[3:])
    return entry


def resolve_ranks(
    ranks: int | Sequence[int],
    mode_sizes: Sequence[int],
    where: str,
    clip: bool = False,
    *,
    fix: str = "",
    clip_option: str = "clip=True",
    clipped: list[str] | None = None,
) -> tuple[int, ...]:
    """One rank per mode of a tensor whose modes have ``mode_sizes`` (see the module doc).

    Args:
        ranks: an int or one rank per mode.
        mode_sizes: the sizes ``(n_0, ..., n_{d-1})``.
        where: the tensor, for messages (e.g. ``"layers.0.weight"``).
        clip: clip ranks above their mode's size (with a warning) instead of raising.
        fix: the caller's way out, appended to a range error (e.g. LoTRA's
            ``"pass clip_ranks=True"``).
        clip_option: what enabled clipping, at the start of the warning.
        clipped: if given, the clip notes are appended here and no warning is issued
            (the caller warns once for many tensors with :func:`warn_clipped`).

    Returns ``(r_0, ..., r_{d-1})`` with ``1 <= r_m <= n_m``.
    """
    sizes = tuple(int(n) for n in mode_sizes)
    resolved = _per_mode(rank_entry(ranks), sizes)
    names = mode_names(len(sizes))
    if len(resolved) != len(sizes):
        three = " (or 3, keeping the kernel modes full)" if len(sizes) > 3 else ""
        raise ValueError(
            f"ranks={ranks!r} for {where}: expected an int or {len(sizes)} ranks{three}, one "
            f"rank per mode for its modes {names} of sizes {sizes}, but got {len(resolved)}. Give "
            f"{len(sizes)} ranks, e.g. {[min(4, n) for n in sizes]}, or an int"
        )
    notes = []
    for mode, (name, rank, size) in enumerate(zip(names, resolved, sizes, strict=True)):
        if rank < 1 or (rank > size and not clip):
            way_out = "Raise it to 1 or more" if rank < 1 else "Lower it"
            raise ValueError(
                f"ranks={ranks!r}: rank {rank} for the {name!r} mode of {where} is out of "
                f"range (ranks[{mode}]={rank} for mode {mode} of size {size}); each rank must "
                f"be in 1..{size}. {way_out}{', ' + fix if fix else ''}"
            )
        if rank > size:
            notes.append(f"{where} {name!r} {rank} -> {size}")
    if clipped is None:
        warn_clipped(notes, clip_option)
    else:
        clipped += notes
    return tuple(min(r, n) for r, n in zip(resolved, sizes, strict=True))


def warn_clipped(notes: Sequence[str], clip_option: str) -> None:
    """One ``UserWarning`` listing every clipped rank (nothing when ``notes`` is empty)."""
    if notes:
        warnings.warn(
            f"{clip_option} clipped {len(notes)} rank(s) to their mode's size: {'; '.join(notes)}",
            UserWarning,
            stacklevel=3,
        )
