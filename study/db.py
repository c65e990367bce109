"""The database engine and short transactions (SQLite WAL or PostgreSQL).

SQLite (default: ``instance/study.sqlite3``) runs in WAL mode with ``busy_timeout`` and takes
its write lock at the start of every write transaction (``BEGIN IMMEDIATE``, after the
cross-process writer lock of :mod:`study.writer_lock`), so concurrent gunicorn workers
serialise cleanly instead of failing on lock upgrades. PostgreSQL (a ``postgresql://`` URL)
uses READ COMMITTED with row locks (``SELECT ... FOR UPDATE``).

Two ways in: :func:`transaction` (SQLAlchemy connections; allocation, admin, export, the HIT
pool), pinged at checkout on PostgreSQL, and the participant hot path's raw DBAPI connections
(:mod:`study.raw`), which check out through :func:`checkout_raw` without the ping. The tables
and the HIT pool are created by :mod:`study.hit_pool`.

A new SQLite file is created readable by its owner only (0600; SQLite gives its -wal and -shm
files the database file's mode), and an existing one open to the group or others is reported
in the log.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import stat
import weakref

from flask import current_app
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from . import writer_lock

__all__ = ["checkout_raw", "display_url", "get_engine", "make_engine", "transaction"]

log = logging.getLogger(__name__)

#: every engine made here; a forked child (gunicorn --preload, multiprocessing) drops the
#: pooled connections it inherited instead of sharing their sockets with its parent
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def make_engine(url: str, sqlite_synchronous: str = "FULL") -> Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql://...``).

    SQLite gets WAL journaling, a 30 s busy timeout, foreign keys, ``synchronous`` as given
    (FULL: every commit is fsynced), explicit BEGIN/BEGIN IMMEDIATE transactions and a writer
    lock. A process forked after the engine was used starts with an empty pool (the parent's
    connections are left to the parent).
    """
    engine = _make_engine(url, sqlite_synchronous)
    _ENGINES.add(engine)
    _GIVEN_URLS[engine] = url
    return engine


#: the URL each engine was made from, as given (before ``_pg_driver`` named a driver)
_GIVEN_URLS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def display_url(engine: Engine) -> str:
    """The database URL of ``engine`` as it was given, password hidden (for messages)."""
    from sqlalchemy.engine import make_url

    given = _GIVEN_URLS.get(engine)
    url = make_url(given) if given else engine.url
    return url.render_as_string(hide_password=True)


def _make_engine(url: str, sqlite_synchronous: str) -> Engine:
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"database URL must look like sqlite:///file or postgresql://..., got {url!r}"
        )
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_synchronous)
    if url.startswith("postgresql"):
        return _postgres_engine(url)
    raise ValueError(f"unsupported database URL scheme in {url!r} (sqlite or postgresql)")


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"sqlite_synchronous must be OFF/NORMAL/FULL/EXTRA, got {synchronous!r}")
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    db_path = engine.url.database
    if db_path and db_path != ":memory:" and not db_path.startswith("file:"):
        _private_file(db_path)
        writer_lock.register(engine, db_path)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("study_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")

    return engine


def _private_file(path: str) -> None:
    """Create the SQLite file ``path`` empty with mode 0600 if it is missing (SQLite would
    create it 0644), so that the answers and SQLite's -wal/-shm files are the owner's only;
    log a warning for an existing file that the group or others may read. Problems opening it
    (no folder, no write access) are left to the start-up check (``study.faults``)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return
    mode = os.stat(path).st_mode
    if stat.S_IMODE(mode) & 0o077:
        log.warning(
            "the study database %s is readable by others (mode %o): chmod 600 it and its "
            "-wal/-shm files",
            path,
            stat.S_IMODE(mode),
        )


def _postgres_engine(url: str) -> Engine:
    engine = create_engine(_pg_driver(url), pool_size=5, max_overflow=10)

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, _record, _proxy):
        # Pessimistic disconnect handling for the SQLAlchemy path (allocation, admin, export):
        # a connection that fails a ping at checkout is replaced by the pool
        # (DisconnectionError). The raw answer path skips the ping (checkout_raw); it recovers
        # from a dead connection on its first round trip instead (study.raw).
        if _RAW_CHECKOUT.get():
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")

    return engine


def _pg_driver(url: str) -> str:
    """Use psycopg2 for a bare ``postgresql://`` URL when psycopg 3 (SQLAlchemy 2.1's default)
    is not installed; ``psycopg2-binary`` is the project's declared PostgreSQL extra."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


#: set while the raw path checks a connection out: it skips the pool's ping
_RAW_CHECKOUT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "study_raw_checkout", default=False
)


def checkout_raw(engine: Engine):
    """A pooled DBAPI connection of ``engine`` (``engine.raw_connection()``) checked out
    without the PostgreSQL ping: the raw path finds a dead connection on its first round trip."""
    token = _RAW_CHECKOUT.set(True)
    try:
        return engine.raw_connection()
    finally:
        _RAW_CHECKOUT.reset(token)


@contextlib.contextmanager
def transaction(engine: Engine, write: bool = False):
    """Yield a connection inside one transaction (committed on success, rolled back on error).

    ``write=True`` takes the write lock up front (SQLite: the writer lock, then BEGIN IMMEDIATE).
    """
    with writer_lock.writer_lock(engine, write), engine.connect() as conn:
        if write:
            conn.execution_options(study_write=True)
        with conn.begin():
            yield conn


def get_engine() -> Engine:
    """The engine of the current Flask app."""
    return current_app.extensions["study_engine"]
