"""Tables added to the study database after its first release, and older databases.

A database made before the display-fidelity release lacks ``image_serves``, ``answer_views``
and ``hit_views`` (:mod:`study.models`). Its answers stay readable: :mod:`study.export` reads
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

__all__ = ["ADDED_TABLES", "add_missing_tables", "missing_tables", "require_tables"]

log = logging.getLogger(__name__)

#: tables an older study database may lack, in creation order
ADDED_TABLES = (m.image_serves, m.answer_views, m.hit_views)


def missing_tables(conn: Connection) -> list[str]:
    """Names of :data:`ADDED_TABLES` the database of ``conn`` lacks."""
    have = inspect(conn)
    return [t.name for t in ADDED_TABLES if not have.has_table(t.name)]


def add_missing_tables(conn: Connection) -> list[str]:
    """Create the :data:`ADDED_TABLES` that are missing (empty); return their names."""
    missing = missing_tables(conn)
    if missing:
        m.metadata.create_all(conn, tables=[t for t in ADDED_TABLES if t.name in missing])
        log.warning(
            "the study database predates viewing conditions: added the empty table(s) %s "
            "(every answer is kept; earlier answers have no viewing conditions)",
            ", ".join(missing),
        )
    return missing


def require_tables(conn: Connection) -> None:
    """Raise ``ValueError`` naming the missing tables when the database is an older one."""
    missing = missing_tables(conn)
    if missing:
        raise ValueError(
            "the study database was made by an older version of the study app and lacks the "
            f"table(s) {', '.join(missing)} (viewing conditions and server timing); start the "
            "app once with CREATE_DB=true to add them (every answer is kept)"
        )
