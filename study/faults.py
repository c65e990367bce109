"""Storage faults: a clear refusal at start, an honest 503 during a study.

A database that cannot be written (read-only file or folder, a full disk, a PostgreSQL that
is down or restarting, a writer lock file the server may not open) is classified by
:func:`classify` and described by :func:`describe`, which names the database (the SQLite path,
or the URL with its password hidden) and the fix.

- At start, ``create_app`` refuses such a database with :class:`StorageError` (a
  ``RuntimeError``: ``mdf study serve`` prints it and exits) instead of serving ``/start`` with
  500s: :func:`check_disk` (the folder of a SQLite file exists and has MIN_FREE_DISK_MB free),
  the creation or check of the tables inside :func:`at_start`, then :func:`probe_write`, a
  real committed write (``study_meta``'s ``last_start``).
- During a study, a storage error of any request is answered by :func:`init_app`'s handler
  with 503 and ``Retry-After``: the participant is told that the server has a problem (not
  their connection), that their answers so far are saved and to come back in a few minutes; the
  JSON API says the same with ``"server_fault": true`` (the trial page keeps the answer and
  sends it again with the same ``answer_id``, so it is stored once). The log gets one line per
  kind of fault and minute (description included); ``/healthz`` answers 503 with the
  description for a minute after a fault.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import time

import sqlalchemy.exc as sa_exc
from flask import current_app, jsonify, make_response, render_template, request
from sqlalchemy import delete, insert, inspect
from sqlalchemy.engine import Engine

from . import models as m
from .db import display_url, transaction
from .writer_lock import LockFileError

__all__ = [
    "RETRY_AFTER",
    "StorageError",
    "at_start",
    "check_disk",
    "classify",
    "describe",
    "fault_types",
    "init_app",
    "probe_write",
    "where",
]

log = logging.getLogger(__name__)

#: seconds a participant is asked to wait after a storage fault (``Retry-After``)
RETRY_AFTER = 60
#: app.extensions key: (time, description) of the last storage fault of this process
LAST_FAULT = "study_last_fault"

PAGE_TITLE = "The study's server has a problem"
PAGE_TEXT = (
    "The server cannot save answers at the moment. This is a problem on our side, not with "
    "your connection or your computer. Your answers so far are saved. Please try again in a "
    "few minutes: open the study link again (or reload this page) and you will continue where "
    "you left off."
)
API_TEXT = (
    "The study's server cannot save answers at the moment (a problem on our side, not with "
    "your connection). Your answers so far are saved; this one is sent again automatically."
)


class StorageError(RuntimeError):
    """The study's database cannot be used; the message names it and the fix."""


def where(engine: Engine) -> str:
    """The database of ``engine`` for a message: the SQLite path, or the URL (no password)."""
    if engine.dialect.name == "sqlite":
        return engine.url.database or ":memory:"
    return display_url(engine)


_NEEDLES = (
    ("lockfile", ()),
    ("readonly", ("readonly", "read-only", "read only")),
    ("full", ("database or disk is full", "no space left", "disk full", "could not extend")),
    ("auth", ("password authentication failed", "no password supplied", 'role "')),
    ("nodb", ('database "',)),
    ("schema", ("no such table",)),
    ("missing", ("unable to open database",)),
    ("io", ("disk i/o error", "input/output error")),
    ("busy", ("database is locked", "queuepool limit", "timed out", "timeout expired")),
    (
        "unreachable",
        (
            "connection refused",
            "could not connect",
            "server closed the connection",
            "terminating connection",
            "the database system is",
            "connection already closed",
            "no route to host",
            "could not translate host",
            "connection to server",
        ),
    ),
)


def classify(exc: BaseException) -> str:
    """The kind of a storage error: lockfile, readonly, full, auth, nodb, schema, missing, io,
    busy, unreachable, or other."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, LockFileError) or isinstance(exc, LockFileError):
        return "lockfile"
    text = str(orig).lower()
    for kind, needles in _NEEDLES:
        if any(n in text for n in needles):
            return kind
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "unreachable"
    return "other"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # pragma: no cover - a uid without a name
        return str(os.geteuid())


def describe(exc: BaseException, engine: Engine) -> str:
    """One paragraph for the operator: what failed, on which database, and the fix."""
    kind, db, user = classify(exc), where(engine), _user()
    orig = getattr(exc, "orig", None) or exc
    sqlite = engine.dialect.name == "sqlite"
    if kind == "lockfile":
        return f"storage problem: {orig}"
    fixes = {
        "readonly": (
            f"the database {db} is read-only for this server (user {user}): give that user "
            f"write access to the file and its folder (SQLite also writes {db}-wal, {db}-shm "
            f"and {db}.lock beside it), or use another --db"
            if sqlite
            else f"PostgreSQL at {db} accepts no writes (a read-only standby or "
            "default_transaction_read_only): point --db / MDF_STUDY_DATABASE at the primary"
        ),
        "full": (
            f"the disk holding {db} is full: free space there or move the database to a "
            "larger disk (--db)"
            if sqlite
            else f"the disk of the PostgreSQL server at {db} is full: free space on it"
        ),
        "auth": f"PostgreSQL at {db} refused the login: check the user and password of the URL",
        "nodb": f"PostgreSQL at {db} has no such database: create it (createdb) or fix the URL",
        "schema": f"{db} lacks the study's tables: run `mdf study init-db` (or set CREATE_DB)",
        "missing": (
            f"cannot open the database {db}: check that its folder exists and that this "
            f"server's user ({user}) may write there, or give another --db"
        ),
        "io": f"disk I/O error on {db}: check the disk (dmesg) and the file",
        "busy": (
            f"{db} stayed busy (a lock or connection wait ran out): another process may hold "
            "a long transaction; if it persists, restart the study server"
        ),
        "unreachable": (
            f"cannot reach PostgreSQL at {db}: is it running, and do the host, port, user and "
            "database of the URL match? Start it, or correct --db / MDF_STUDY_DATABASE"
        ),
        "other": f"the database {db} failed",
    }
    return f"storage problem: {fixes[kind]} ({type(orig).__name__}: {str(orig).strip()})"


def fault_types(engine: Engine) -> tuple[type[BaseException], ...]:
    """The exception classes that mean "the storage failed" for ``engine``'s driver: its
    OperationalError and InterfaceError (PostgreSQL: also InternalError, which a read-only
    server raises), SQLAlchemy's wrappers of them and its pool timeout, and the writer lock's
    :class:`~study.writer_lock.LockFileError`."""
    dbapi = engine.dialect.loaded_dbapi
    types = [sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, LockFileError]
    names = ("OperationalError", "InterfaceError")
    if engine.dialect.name == "postgresql":  # e.g. a read-only transaction on a standby
        types.append(sa_exc.InternalError)
        names += ("InternalError",)
    types += [getattr(dbapi, n) for n in names if hasattr(dbapi, n)]
    return tuple(dict.fromkeys(types))


@contextlib.contextmanager
def at_start(engine: Engine):
    """Turn a storage error raised inside the block into :class:`StorageError` with
    :func:`describe`'s message (start-up: the server then refuses to start)."""
    try:
        yield
    except fault_types(engine) as exc:
        raise StorageError(describe(exc, engine)) from exc


def check_disk(engine: Engine, settings) -> None:
    """SQLite: refuse a database whose folder is missing or whose disk has less than
    MIN_FREE_DISK_MB free (:class:`StorageError`). PostgreSQL: nothing to check here."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return
    path = os.path.abspath(engine.url.database)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise StorageError(
            f"storage problem: the folder {folder} of the database {path} does not exist: "
            "create it, or give another --db"
        )
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < settings.min_free_disk_mb:
        raise StorageError(
            f"storage problem: only {free_mb:.0f} MB free on the disk holding {path} "
            f"(MIN_FREE_DISK_MB={settings.min_free_disk_mb}): free space there, or move the "
            "database to a larger disk (--db)"
        )


def probe_write(engine: Engine) -> None:
    """Commit one real write (``study_meta.last_start``) to show the database takes writes;
    :class:`StorageError` naming the database and the fix when it does not. (Skipped while
    the database has no study tables: ``init-db`` writes it first.)"""
    with at_start(engine):
        with transaction(engine) as conn:
            if not inspect(conn).has_table(m.meta.name):
                return
        with transaction(engine, write=True) as conn:
            conn.execute(delete(m.meta).where(m.meta.c.key == "last_start"))
            conn.execute(insert(m.meta), {"key": "last_start", "value": json.dumps(time.time())})


_LOGGED: dict[str, float] = {}


def _log_fault(kind: str, text: str, exc: BaseException) -> None:
    now = time.monotonic()
    if now - _LOGGED.get(kind, -1e9) >= 60:
        _LOGGED[kind] = now
        log.error("%s (answered 503; logged once a minute)", text, exc_info=kind == "other")


def _answer_fault(exc: BaseException):
    engine = current_app.extensions["study_engine"]
    kind, text = classify(exc), describe(exc, engine)
    current_app.extensions[LAST_FAULT] = (time.time(), text)
    _log_fault(kind, text, exc)
    if request.path.startswith("/api/"):
        resp = jsonify(error=API_TEXT, server_fault=True, retry_after=RETRY_AFTER)
    else:
        resp = make_response(
            render_template("study/message.html", title=PAGE_TITLE, text=PAGE_TEXT)
        )
    resp.status_code = 503
    resp.headers["Retry-After"] = str(RETRY_AFTER)
    return resp


def health(app) -> tuple[dict, int]:
    """``/healthz``: 200 ``{"ok": true}``, or 503 with the description of a storage fault
    seen in the last minute, or of a failed read of the database now."""
    fault = app.extensions.get(LAST_FAULT)
    if fault is not None and time.time() - fault[0] < 60:
        return {"ok": False, "storage": fault[1]}, 503
    engine = app.extensions["study_engine"]
    try:
        with transaction(engine) as conn:
            conn.exec_driver_sql("SELECT 1").all()
    except fault_types(engine) as exc:
        return {"ok": False, "storage": describe(exc, engine)}, 503
    return {"ok": True}, 200


def init_app(app, engine: Engine) -> None:
    """Answer every storage error of ``app`` (``engine``'s driver) with the honest 503."""
    for cls in fault_types(engine):
        app.register_error_handler(cls, _answer_fault)
