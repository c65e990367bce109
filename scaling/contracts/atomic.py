"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every file the project writes for another package or for a person (CSVs, figures, manifests,
images, checkpoints, MDF weights) goes through :func:`atomic_open`:

1. a temporary file with a unique name (``tempfile.mkstemp``) in the target's folder, so two
   concurrent writers of the same path never share a temp file and the final rename stays on one
   file system;
2. the data is flushed and ``fsync``-ed (``fsync=False`` skips it for scratch files);
3. ``os.replace`` moves it over the target (atomic on POSIX and Windows), then the folder is
   fsynced so the rename itself survives a power cut (POSIX);
4. on any error (including ``KeyboardInterrupt``) the temp file is removed and the target is left
   as it was.

The target gets the permissions a plain ``open`` would give it (``0o666`` minus the umask), or
``mode`` when given (e.g. ``0o600`` for secrets); ``mkstemp``'s private ``0o600`` is not kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "save_figure", "write_bytes", "write_csv", "write_json", "write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, binary: bool = True, *, fsync: bool = True, mode: int | None = None,
    encoding: str = "utf-8", newline: str | None = None,
) -> Iterator[IO[Any]]:  # fmt: skip
    """Open a temporary file for writing that replaces ``path`` when the block ends without error.

    Args:
        path: the target; its folder is created if missing.
        binary: ``True`` yields a binary file, ``False`` a text file (``encoding``, ``newline``).
        fsync: flush the file and its folder to disk before and after the rename.
        mode: permission bits of the new file (default: ``0o666 & ~umask``, as ``open`` does).
    Yields: the open temporary file. Raises whatever the block raises, after removing it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
        f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes, **kw) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open` for ``fsync``, ``mode``)."""
    with atomic_open(path, **kw) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, **kw) -> Path:
    """Write ``text`` (UTF-8 unless ``encoding``) to ``path`` atomically."""
    with atomic_open(path, binary=False, **kw) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, **kw) -> Path:
    """Write ``obj`` as JSON (plus a final newline) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n", **kw)


def write_csv(df, path: str | os.PathLike, **kw) -> Path:
    """Write a pandas DataFrame as CSV (no index, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_open(path, binary=False, newline="", **kw) as f:
        df.to_csv(f, index=False, lineterminator="\n")
    return Path(path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 130, **kw) -> Path:
    """Save a matplotlib Figure to ``path`` atomically; the format comes from the suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_open(path, **kw) as f:
        fig.savefig(f, dpi=dpi, format=fmt)
    return path
