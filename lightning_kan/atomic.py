"""Atomic file writes: a file the library writes is either the old one or the whole new one.

Every write goes to a temporary file *in the destination's directory* (so the final
``os.replace`` is a rename on one filesystem, never a copy that a kill can truncate),
is flushed and fsynced, then replaces the destination. A write interrupted by an
exception removes its temporary file; one killed outright (SIGKILL, power loss) can
leave a temporary named ``.<name>.<random>.partial`` behind, which
:func:`remove_stale_partials` deletes the next time the directory is written to.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "PARTIAL_SUFFIX",
    "atomic_link",
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_partials",
]

#: suffix of the temporary files this module writes
PARTIAL_SUFFIX = ".partial"


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (the directory entry); a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot sync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def _destination_mode(path: Path) -> int:
    """The existing file's permissions, else ``0o666`` less the umask (as ``open`` does)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it atomically becomes ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (text; ``kwargs`` go to ``open``, e.g.
    ``encoding``). Parent directories are created. On an exception inside the block
    the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX
    )
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would have
        os.chmod(temporary, _destination_mode(path))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)``, atomically (serialised in memory, then written once)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def atomic_link(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Make ``path`` a hard link to the (complete, synced) file ``source``, atomically:
    ``path`` is its old file or ``source``'s, never a half-written one. Where hard links
    are not supported (another filesystem, FAT, ...) the bytes are copied atomically.
    Writes here replace files (a new inode), so the two names never change each other."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.{os.urandom(4).hex()}{PARTIAL_SUFFIX}"
    try:
        os.link(source, temporary)
    except OSError:
        with open(source, "rb") as handle, atomic_open(path, "wb") as copy:
            shutil.copyfileobj(handle, copy)
        return
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(path.parent)


def remove_stale_partials(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries that a killed write left in ``directory``; return them.

    Only files named like this module's temporaries (``.<name>.<random>.partial``)
    are touched. Call it when a run starts writing to a directory again, before any
    write of this process is in flight there.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in directory.glob(f".*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed
