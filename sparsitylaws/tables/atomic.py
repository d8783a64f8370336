"""Atomic file writes: a file is either its old self or completely new, never half written.

Every output of this package (tables, law sets, reports, figures, measurement sidecars)
goes through :func:`atomic_path`: write to a temporary file in the same directory, fsync,
then ``os.replace`` onto the target (atomic on POSIX and Windows within one filesystem).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparsitylaws.errors import SparsityLawsError


def _shared_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    parent = path.parent
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    if not parent.is_dir():
        raise SparsityLawsError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise SparsityLawsError(f"{path}: directory {parent} is not writable")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _shared_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
