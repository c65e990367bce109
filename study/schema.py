"""Tables added to the study database after its first release, and older databases.

Two groups of tables came later. The operations tables (:data:`OPERATIONS_TABLES`: lease
clients, admin sessions, login throttling, audit log) hold the server's own state, not study
data: they are created whenever they are missing. A database made before the display-fidelity
release also lacks ``image_serves``, ``answer_views`` and ``hit_views`` (:data:`ADDED_TABLES`). Its answers stay readable: :mod:`study.export` reads
them as answers without viewing conditions (``native`` unknown). An app started on it with
``CREATE_DB`` true adds the missing (empty) tables in the same transaction that checks the
database, so new answers get their viewing conditions; with ``CREATE_DB`` false it is refused
with a message saying so (nothing is changed behind the operator's back).
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from . import models as m

__all__ = [
    "ADDED_TABLES", "OPERATIONS_TABLES", "add_missing_tables", "missing_tables", "require_tables",
]

log = logging.getLogger(__name__)

#: viewing-condition tables an older study database may lack, in creation order
ADDED_TABLES = (m.image_serves, m.answer_views, m.hit_views)
#: the server's own state (leases' clients, admin sessions, login throttle, audit log)
OPERATIONS_TABLES = (m.lease_clients, m.admin_sessions, m.login_throttle, m.audit_log)


def missing_tables(conn: Connection, tables=ADDED_TABLES) -> list[str]:
    """Names of ``tables`` (default :data:`ADDED_TABLES`) the database of ``conn`` lacks."""
    have = inspect(conn)
    return [t.name for t in tables if not have.has_table(t.name)]


def add_missing_tables(conn: Connection, tables=None) -> list[str]:
    """Create the missing ``tables`` (default: both groups), empty; return their names."""
    tables = (*OPERATIONS_TABLES, *ADDED_TABLES) if tables is None else tuple(tables)
    names = {t.name for t in tables}
    ops = missing_tables(conn, [t for t in OPERATIONS_TABLES if t.name in names])
    if ops:
        m.metadata.create_all(conn, tables=[t for t in OPERATIONS_TABLES if t.name in ops])
        log.info("added the operations table(s) %s to the study database", ", ".join(ops))
    missing = missing_tables(conn, [t for t in ADDED_TABLES if t.name in names])
    if missing:
        m.metadata.create_all(conn, tables=[t for t in ADDED_TABLES if t.name in missing])
        log.warning(
            "the study database predates viewing conditions: added the empty table(s) %s "
            "(every answer is kept; earlier answers have no viewing conditions)",
            ", ".join(missing),
        )
    return ops + missing


def require_tables(conn: Connection) -> None:
    """Raise ``ValueError`` naming the missing tables when the database is an older one."""
    missing = missing_tables(conn)
    if missing:
        raise ValueError(
            "the study database was made by an older version of the study app and lacks the "
            f"table(s) {', '.join(missing)} (viewing conditions and server timing); start the "
            "app once with CREATE_DB=true to add them (every answer is kept)"
        )
