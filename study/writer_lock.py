"""The SQLite writer lock: one writer at a time per database file, across threads and processes.

SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps in growing
steps (up to 100 ms) and so adds long tail latency under load. A process-wide
``threading.Lock`` plus an ``fcntl.flock`` on ``<database>.lock`` hands the write lock over as
soon as it is released instead. Every write transaction of the app (``db.transaction`` and
``raw.raw_transaction`` with ``write=True``) takes it first. (No-op where fcntl is unavailable;
PostgreSQL engines have no writer lock: row locks do that job there.) A lock file this process
may only read is opened read-only (``flock`` needs no write access); one it cannot open at all
raises :class:`LockFileError`, which names the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

from sqlalchemy.engine import Engine

__all__ = ["LockFileError", "WriterLock", "register", "writer_lock"]


class LockFileError(OSError):
    """The writer lock file cannot be opened (``path``; the OS error is the cause)."""

    def __init__(self, path: str, exc: OSError):
        folder = os.path.dirname(path) or "."
        super().__init__(
            exc.errno,
            f"cannot open the SQLite writer lock file {path} ({exc.strerror}): give this "
            f"server's user write access to {folder}, or remove a {os.path.basename(path)} "
            "left there by another user",
        )
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def _open_lock_file(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError as exc:
        try:  # an existing lock file we may only read: flock works on a read-only descriptor
            return os.open(path, os.O_RDONLY)
        except OSError:
            raise LockFileError(path, exc) from exc
    except OSError as exc:
        raise LockFileError(path, exc) from exc


class WriterLock:
    """Serialises the writers of all threads and processes on the SQLite file ``db_path``."""

    def __init__(self, db_path: str):
        self.path = db_path + ".lock"
        self.thread_lock = threading.Lock()
        self.fd = None
        self.pid = None

    def __enter__(self):
        self.thread_lock.acquire()
        try:
            import fcntl

            if self.fd is None or self.pid != os.getpid():  # reopen after fork
                self.fd = _open_lock_file(self.path)
                self.pid = os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except BaseException:
            self.thread_lock.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        finally:
            self.thread_lock.release()


_LOCKS: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()


def register(engine: Engine, db_path: str) -> None:
    """Give ``engine`` (a SQLite engine on the file ``db_path``) its writer lock."""
    _LOCKS[engine] = WriterLock(os.path.abspath(db_path))


def writer_lock(engine: Engine, write: bool = True):
    """The context manager a transaction on ``engine`` enters first: the writer lock of its
    database for a write (``write=True``) on a SQLite file, else a no-op."""
    lock = _LOCKS.get(engine) if write else None
    return lock if lock is not None else contextlib.nullcontext()
