"""Database lifecycle: the engine, short transactions, and creating the study's HIT pool.

SQLite (default: ``instance/study.sqlite3``) runs in WAL mode with ``busy_timeout`` and takes
its write lock at the start of every write transaction (``BEGIN IMMEDIATE``), so concurrent
gunicorn workers serialise cleanly instead of failing on lock upgrades. PostgreSQL (a
``postgresql://`` URL) uses READ COMMITTED with row locks (``SELECT ... FOR UPDATE``) and an
advisory lock while the pool is created. ``init-db`` refuses to touch existing tables unless
``--force`` is given (the Flask tutorial's ``init-db`` silently drops everything).

The participant hot path (answers, trial pages, images) runs on ``raw_transaction``: Core
statements compiled once, executed on the pooled DBAPI connection; on PostgreSQL (psycopg2)
as server-side prepared statements, with BEGIN and COMMIT sent along with the statements (an
answer is two round trips) and no ping at checkout (a dead connection is replaced on the first
round trip instead). The rest (allocation, admin, export) uses SQLAlchemy connections, pinged
at checkout on PostgreSQL.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import json
import logging
import os
import re
import time
import weakref

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from . import models as m
from .design import build_full_pool

__all__ = [
    "RawConnection",
    "ensure_db",
    "get_engine",
    "init_app",
    "init_db",
    "make_engine",
    "raw_transaction",
    "transaction",
]

log = logging.getLogger(__name__)

#: Settings that define the HIT pool; a database built with other values is refused.
POOL_SETTINGS = ("design", "per_pair", "trials_per_hit", "checks_per_hit", "practice", "seed")


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
    (FULL: every commit is fsynced) and explicit BEGIN/BEGIN IMMEDIATE transactions. A process
    forked after the engine was used starts with an empty pool (the parent's connections are
    left to the parent).
    """
    engine = _make_engine(url, sqlite_synchronous)
    _ENGINES.add(engine)
    return engine


def _make_engine(url: str, sqlite_synchronous: str) -> Engine:
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"database URL must look like sqlite:///file or postgresql://..., got {url!r}"
        )
    if url.startswith("sqlite"):
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                f"sqlite_synchronous must be OFF/NORMAL/FULL/EXTRA, got {sqlite_synchronous!r}"
            )
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        db_path = engine.url.database
        if db_path and db_path != ":memory:":
            _WRITER_LOCKS[engine] = _WriterLock(os.path.abspath(db_path))

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            mode = conn.get_execution_options().get("study_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")

        return engine
    if url.startswith("postgresql"):
        engine = create_engine(_pg_driver(url), pool_size=5, max_overflow=10)

        @event.listens_for(engine, "checkout")
        def _ping(dbapi_conn, _record, _proxy):
            # Pessimistic disconnect handling for the SQLAlchemy path (allocation, admin,
            # export): a connection that fails a ping at checkout is replaced by the pool
            # (DisconnectionError). The raw answer path skips the ping; it recovers from a
            # dead connection on its first round trip instead (_PsycopgRawConnection).
            if _RAW_CHECKOUT.get():
                return
            try:
                alive = engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError(str(exc)) from exc
            if not alive:
                raise DisconnectionError("ping failed")

        return engine
    raise ValueError(f"unsupported database URL scheme in {url!r} (sqlite or postgresql)")


def _pg_driver(url: str) -> str:
    """Use psycopg2 for a bare ``postgresql://`` URL when psycopg 3 (SQLAlchemy 2.1's default)
    is not installed; ``psycopg2-binary`` is the project's declared PostgreSQL extra."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


class _WriterLock:
    """Serialises SQLite writers of all threads and processes on one database file.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps in
    growing steps (up to 100 ms) and so adds long tail latency under load. A process-wide
    ``threading.Lock`` plus an ``fcntl.flock`` on ``<database>.lock`` hands the write lock over
    as soon as it is released instead. (No-op where fcntl is unavailable.)
    """

    def __init__(self, db_path: str):
        import threading

        self.path = db_path + ".lock"
        self.thread_lock = threading.Lock()
        self.fd = None
        self.pid = None

    def __enter__(self):
        self.thread_lock.acquire()
        try:
            import fcntl

            if self.fd is None or self.pid != os.getpid():  # reopen after fork
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def transaction(engine: Engine, write: bool = False):
    """Yield a connection inside one transaction (committed on success, rolled back on error).

    ``write=True`` takes the write lock up front (SQLite: the writer lock, then BEGIN IMMEDIATE).
    """
    lock = _WRITER_LOCKS.get(engine) if write else None
    with lock if lock is not None else contextlib.nullcontext(), engine.connect() as conn:
        if write:
            conn.execution_options(study_write=True)
        with conn.begin():
            yield conn


class _Rows:
    """The rows of one raw query: ``all()``, ``first()``, ``one()``, ``scalar_one()`` and
    ``rowcount``, rows being named tuples (``row.id``; ``row._asdict()``)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, cursor):
        self.rowcount = cursor.rowcount
        if cursor.description is None:
            self._rows = []
            return
        cls = _row_class(tuple(d[0] for d in cursor.description))
        self._rows = [cls._make(r) for r in cursor.fetchall()]

    def all(self) -> list:
        return self._rows

    def first(self):
        return self._rows[0] if self._rows else None

    def one(self):
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar_one(self):
        return self.one()[0]


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]):
    return collections.namedtuple("Row", names, rename=True)


class _Compiled:
    """One Core statement compiled for one dialect: the driver's SQL, its parameter names in
    order, and (PostgreSQL) a server-side prepared form: ``PREPARE <name> AS <sql with $n>``."""

    __slots__ = ("compiled", "names", "prep_name", "prep_sql", "sql", "stmt")

    _PYFORMAT = re.compile(r"%\((\w+)\)s|%%")

    def __init__(self, stmt, dialect, column_keys, number: int):
        self.stmt = stmt  # kept alive: the cache is keyed by id(stmt)
        self.compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = str(self.compiled)
        self.names = list(self.compiled.positiontup or ())
        self.prep_name = self.prep_sql = None
        if dialect.driver == "psycopg2":  # pyformat: %(name)s, literal % doubled
            order: list[str] = []

            def number_param(match):
                if match.group(1) is None:
                    return "%"
                if match.group(1) not in order:
                    order.append(match.group(1))
                return f"${order.index(match.group(1)) + 1}"

            self.prep_sql = self._PYFORMAT.sub(number_param, self.sql)
            self.names = order
            self.prep_name = f"mdf_study_{number}"

    def args(self, params: dict, positional: bool):
        values = self.compiled.construct_params(params)
        if positional:
            return [values[name] for name in self.names]
        return values


_COMPILED: dict[tuple, _Compiled] = {}


def _compiled(stmt, dialect, params: dict) -> _Compiled:
    key = (id(stmt), dialect.name, dialect.driver, tuple(params) if stmt.is_insert else ())
    entry = _COMPILED.get(key)
    if entry is None:
        keys = list(params) if stmt.is_insert else None
        entry = _COMPILED[key] = _Compiled(stmt, dialect, keys, len(_COMPILED))
    return entry


#: set while the raw path checks a connection out: it skips the pool's ping (see make_engine)
_RAW_CHECKOUT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "study_raw_checkout", default=False
)


def _checkout(engine: Engine):
    token = _RAW_CHECKOUT.set(True)
    try:
        return engine.raw_connection()
    finally:
        _RAW_CHECKOUT.reset(token)


class RawConnection:
    """A pooled DBAPI connection inside one transaction, executing SQLAlchemy Core statements
    compiled once per dialect (the answer path's statements run ~10x faster than through
    ``Connection.execute``; no type processing, so only plain int/float/str/None values).

    ``execute(stmt, params)`` runs a statement now and returns its rows; ``defer(stmt,
    params)`` queues a write that runs at commit, in order (on PostgreSQL in the same round
    trip as the COMMIT; errors such as a unique-constraint violation then surface when the
    ``raw_transaction`` block ends). The compiled forms are cached per statement object for
    the life of the process, so pass statements built once (module constants), not new ones
    per call. This base class serves SQLite and any other driver (plain DBAPI calls)."""

    def __init__(self, engine: Engine, write: bool):
        self.engine = engine
        self.dialect = engine.dialect
        self.write = write
        #: the driver's IntegrityError (a unique or foreign-key constraint refused a write)
        self.integrity_error = self.dialect.loaded_dbapi.IntegrityError
        self._pooled = _checkout(engine)
        self._deferred: list[tuple[_Compiled, dict]] = []
        self._positional = self.dialect.positional
        self._open()

    def _open(self) -> None:
        """Set up the checked-out connection (here: a cursor)."""
        self._cursor = self._pooled.driver_connection.cursor()

    def execute(self, stmt, params: dict | None = None) -> _Rows:
        params = params or {}
        entry = _compiled(stmt, self.dialect, params)
        self._cursor.execute(entry.sql, entry.args(params, self._positional))
        return _Rows(self._cursor)

    def defer(self, stmt, params: dict | None = None) -> None:
        if not self.write:
            raise RuntimeError("defer() needs a write transaction: raw_transaction(write=True)")
        params = params or {}
        self._deferred.append((_compiled(stmt, self.dialect, params), params))

    def begin(self) -> None:
        pass  # DBAPI: the driver opens a transaction before the first statement

    def _run_deferred(self) -> None:
        for entry, params in self._deferred:
            self._cursor.execute(entry.sql, entry.args(params, self._positional))

    def commit(self) -> None:
        self._run_deferred()
        self._pooled.driver_connection.commit()

    def rollback(self) -> None:
        self._pooled.driver_connection.rollback()

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._pooled.close()


class _SQLiteRawConnection(RawConnection):
    """SQLite (pysqlite with ``isolation_level=None``): explicit ``BEGIN IMMEDIATE`` for writers
    (after the process/file writer lock), ``BEGIN`` for readers (one snapshot for all reads)."""

    def begin(self) -> None:
        self._cursor.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")

    def commit(self) -> None:
        self._run_deferred()
        self._cursor.execute("COMMIT")

    def rollback(self) -> None:
        self._cursor.execute("ROLLBACK")


class _PsycopgRawConnection(RawConnection):
    """PostgreSQL through psycopg2, in as few round trips as the work allows.

    - Statements are prepared on the server once per connection (``PREPARE``; the set of
      prepared names lives in the pool's record of the connection) and run by ``EXECUTE``, so
      PostgreSQL parses and plans the answer path's join once, not per answer.
    - The connection runs in autocommit mode and the transaction is explicit: ``BEGIN`` goes
      with the first statement and the deferred writes go with ``COMMIT``, so an answer costs
      two round trips (``BEGIN; SELECT ... FOR UPDATE`` and ``INSERT; UPDATE; COMMIT``)
      instead of six. Readers (``write=False``) run each statement on its own: under READ
      COMMITTED a transaction block gives several reads no common snapshot anyway.
    - No ping at checkout: when the first round trip finds the connection dead (the server
      restarted), the pool is replaced and the round trip is sent again on a fresh connection
      (nothing of the transaction had reached the server). A later failure is raised.
    """

    def __init__(self, engine: Engine, write: bool):
        super().__init__(engine, write)
        self._in_tx = False  # BEGIN was sent
        self._sent = False  # a round trip of this transaction reached the server

    def _open(self) -> None:
        conn = self._pooled.driver_connection
        conn.autocommit = True  # client side only: psycopg2 stops sending its own BEGIN
        self._cursor = conn.cursor()
        self._prepared = self._pooled.info.setdefault("study_prepared", set())

    def _round_trip(self, calls: list, begin: bool = False, commit: bool = False) -> None:
        for attempt in range(3):
            try:
                for entry, _ in calls:
                    if entry.prep_name not in self._prepared:
                        self._cursor.execute(f"PREPARE {entry.prep_name} AS {entry.prep_sql}")
                        self._prepared.add(entry.prep_name)
                parts, args = ["BEGIN"] if begin else [], []
                for entry, params in calls:
                    values = entry.args(params, True)
                    marks = ", ".join(["%s"] * len(values))
                    parts.append(
                        f"EXECUTE {entry.prep_name}({marks})"
                        if values
                        else f"EXECUTE {entry.prep_name}"
                    )
                    args.extend(values)
                if commit:
                    parts.append("COMMIT")
                self._cursor.execute(";".join(parts), args)
                self._sent = True
                return
            except self.dialect.loaded_dbapi.Error as exc:
                if (
                    self._sent
                    or attempt == 2
                    or not self.dialect.is_disconnect(
                        exc, self._pooled.driver_connection, self._cursor
                    )
                ):
                    raise
                log.warning("database connection lost (%s); reconnecting", exc)
                self._pooled.invalidate(exc)
                self.engine.dispose()  # the others in the pool are as dead as this one
                self._pooled = _checkout(self.engine)
                self._open()

    def execute(self, stmt, params: dict | None = None) -> _Rows:
        params = params or {}
        begin = self.write and not self._in_tx
        self._in_tx = self._in_tx or begin  # (also when it fails: then ROLLBACK ends it)
        self._round_trip([(_compiled(stmt, self.dialect, params), params)], begin=begin)
        return _Rows(self._cursor)

    def begin(self) -> None:
        pass  # BEGIN is sent with the first statement

    def commit(self) -> None:
        if self._deferred:
            begin, self._in_tx = not self._in_tx, True
            self._round_trip(self._deferred, begin=begin, commit=True)
        elif self._in_tx:
            self._cursor.execute("COMMIT")
        self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self._in_tx = False
            self._cursor.execute("ROLLBACK")

    def close(self) -> None:
        conn = self._pooled.driver_connection
        if conn is None:  # invalidated
            return
        if conn.closed or conn.info.transaction_status != 0:  # not idle: never pool it again
            self._pooled.invalidate()
            return
        conn.autocommit = False  # as the SQLAlchemy path expects it
        self._pooled.close()


def _raw_connection_class(engine: Engine) -> type[RawConnection]:
    if engine.dialect.name == "sqlite":
        return _SQLiteRawConnection
    if engine.dialect.driver == "psycopg2":
        return _PsycopgRawConnection
    return RawConnection


@contextlib.contextmanager
def raw_transaction(engine: Engine, write: bool = False):
    """Like :func:`transaction`, on a raw pooled DBAPI connection (see :class:`RawConnection`).

    Committed (with the deferred writes) on success, rolled back on any error; the connection
    goes back to the pool either way. SQLite writers hold the process/file writer lock."""
    lock = _WRITER_LOCKS.get(engine) if write else None
    with lock if lock is not None else contextlib.nullcontext():
        raw = _raw_connection_class(engine)(engine, write)
        try:
            raw.begin()
            try:
                yield raw
            except BaseException:
                try:
                    raw.rollback()
                except Exception:  # the original error matters more
                    log.exception("rollback failed")
                raise
            try:
                raw.commit()
            except BaseException:
                try:
                    raw.rollback()
                except Exception:
                    log.exception("rollback failed")
                raise
        finally:
            raw.close()


def get_engine() -> Engine:
    """The engine of the current Flask app."""
    return current_app.extensions["study_engine"]


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _read_meta(conn: Connection) -> dict:
    return {k: json.loads(v) for k, v in conn.execute(select(m.meta.c.key, m.meta.c.value))}


def _insert_pool(conn: Connection, pool, first_id: int = 1) -> None:
    now = time.time()
    hit_rows, trial_rows = [], []
    for k, spec in enumerate(pool):
        hid = first_id + k
        hit_rows.append(
            {
                "id": hid,
                "seed": spec.seed,
                "status": "open",
                "assigned_to": None,
                "lease_expires": None,
                "version": 0,
                "created_at": now,
            }
        )
        for pos, t in enumerate(spec.trials):
            trial_rows.append(
                {
                    "hit_id": hid,
                    "position": pos,
                    "kind": t.kind,
                    "image_id": t.image_id,
                    "left": t.left,
                    "right": t.right,
                }
            )
    if hit_rows:
        conn.execute(insert(m.hits), hit_rows)
        conn.execute(insert(m.trials), trial_rows)


def _has_tables(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table("study_meta")


def init_db(engine: Engine, exp, settings: dict, force: bool = False) -> int:
    """Create the tables and the HIT pool for experiment ``exp``; return the number of HITs.

    ``settings`` holds ``POOL_SETTINGS``. Raises ``ValueError`` if the tables already exist and
    ``force`` is false (collected answers are never dropped silently).
    """
    with transaction(engine, write=True) as conn:
        if _is_pg(conn):
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270031)")
        if _has_tables(conn):
            if not force:
                raise ValueError(
                    "the study tables already exist; use --force to drop them "
                    "(this deletes every collected answer)"
                )
            m.metadata.drop_all(conn)
        return _create(conn, exp, settings)


def _create(conn: Connection, exp, settings: dict) -> int:
    m.metadata.create_all(conn)
    facts = {
        "fingerprint": exp.fingerprint,
        "conditions": list(exp.conditions),
        "images": [e.id for e in exp.images],
        "created_at": time.time(),
    }
    facts.update({k: settings[k] for k in POOL_SETTINGS})
    conn.execute(insert(m.meta), [{"key": k, "value": json.dumps(v)} for k, v in facts.items()])
    if settings["design"] == "full":
        pool = build_full_pool(
            exp,
            settings["per_pair"],
            settings["trials_per_hit"],
            settings["checks_per_hit"],
            settings["seed"],
            settings["practice"],
        )
    else:
        pool = []  # active sampling creates HITs on demand
    _insert_pool(conn, pool)
    log.info("created study database: %d HITs (%s design)", len(pool), settings["design"])
    return len(pool)


def ensure_db(engine: Engine, exp, settings: dict) -> dict:
    """Create the database if it is empty, else check it was built for this experiment.

    Returns the stored meta facts. Raises ``ValueError`` if the database belongs to another
    manifest or was built with other pool settings. Safe when several workers start at once.
    """
    with transaction(engine, write=True) as conn:
        if _is_pg(conn):
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270031)")
        if (
            not _has_tables(conn)
            or not conn.execute(select(func.count()).select_from(m.meta)).scalar()
        ):
            _create(conn, exp, settings)
        facts = _read_meta(conn)
    if facts.get("fingerprint") != exp.fingerprint:
        raise ValueError(
            "the database was created for another experiment (fingerprint "
            f"{facts.get('fingerprint')} != {exp.fingerprint}); use another --db"
        )
    diff = {k: (facts.get(k), settings[k]) for k in POOL_SETTINGS if facts.get(k) != settings[k]}
    if diff:
        raise ValueError(
            f"the database was created with other design settings (stored, asked): {diff}"
        )
    return facts


def init_app(app) -> None:
    """Register the ``init-db`` command on ``app`` (the engine is created by ``create_app``)."""
    app.cli.add_command(init_db_command)


@click.command("init-db")
@click.option("--force", is_flag=True, help="Drop existing study tables (deletes all answers).")
@with_appcontext
def init_db_command(force: bool) -> None:
    """Create the study tables and HIT pool (refuses existing tables without --force)."""
    app = current_app
    try:
        n = init_db(
            get_engine(),
            app.extensions["study_experiment"],
            app.extensions["study_settings"],
            force,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"initialised the study database with {n} HITs")
