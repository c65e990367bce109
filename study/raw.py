"""The participant hot path's database access: raw DBAPI connections running Core statements.

Answers, trial pages and images run on :func:`raw_transaction`: SQLAlchemy Core statements
compiled once per dialect (the statement cache, keyed by statement object), executed on the
pooled DBAPI connection without SQLAlchemy's per-call overhead (the answer path's statements
run ~10x faster than through ``Connection.execute``). On PostgreSQL (psycopg2) they run as
server-side prepared statements (the ``%(name)s`` SQL rewritten to ``PREPARE ... AS`` with
``$n`` parameters), with BEGIN and COMMIT sent along with the statements and the deferred writes
sent with the COMMIT (an answer is two round trips), and no ping at checkout: a dead connection
(server restart) is replaced on the first round trip instead. SQLite writers hold the writer
lock of :mod:`study.writer_lock` and run ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import re

from sqlalchemy.engine import Engine

from .db import checkout_raw
from .writer_lock import writer_lock

__all__ = ["RawConnection", "raw_transaction"]

log = logging.getLogger(__name__)


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
        self._pooled = checkout_raw(engine)
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
                self._pooled = checkout_raw(self.engine)
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


def _rollback_quietly(raw: RawConnection) -> None:
    try:
        raw.rollback()
    except Exception as exc:  # noqa: BLE001 - the original error matters more (and is raised)
        log.warning("rollback failed (%s: %s)", type(exc).__name__, exc)


@contextlib.contextmanager
def raw_transaction(engine: Engine, write: bool = False):
    """Like ``db.transaction``, on a raw pooled DBAPI connection (see :class:`RawConnection`).

    Committed (with the deferred writes) on success, rolled back on any error; the connection
    goes back to the pool either way. SQLite writers hold the process/file writer lock."""
    with writer_lock(engine, write):
        raw = _raw_connection_class(engine)(engine, write)
        try:
            raw.begin()
            try:
                yield raw
            except BaseException:
                _rollback_quietly(raw)
                raise
            try:
                raw.commit()
            except BaseException:
                _rollback_quietly(raw)
                raise
        finally:
            raw.close()
