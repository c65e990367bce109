"""The audit log of admin actions: logins (and failed ones), logouts, data exports, purges.

One row per action in ``audit_log`` (the study database, so every server writes to one log):
when, who (``admin session <first 8 hex digits of its id>``, ``bearer token`` or ``cli``), from
which address (admin requests; the admin's own address, not a participant's), the action and
a detail (e.g. ``passed only, 120 rows``). Participant ids never go into it: a purge records
only how much it deleted. Shown on the admin dashboard and as ``/admin/audit.json``.
"""

from __future__ import annotations

import time

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from . import models as m
from .db import transaction

__all__ = ["ACTIONS", "recent", "record", "record_in"]

#: the actions that are logged
ACTIONS = ("login", "login_failed", "logout", "export", "purge")


def record_in(
    conn: Connection, actor: str, action: str, detail: str = "", address: str | None = None
) -> None:
    """Add one entry inside the caller's write transaction ``conn``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (one of {ACTIONS})")
    conn.execute(
        insert(m.audit_log),
        {"at": time.time(), "actor": actor[:64], "address": address and address[:64],
         "action": action, "detail": detail},
    )  # fmt: skip


def record(
    engine: Engine, actor: str, action: str, detail: str = "", address: str | None = None
) -> None:
    """Add one entry in its own write transaction."""
    with transaction(engine, write=True) as conn:
        record_in(conn, actor, action, detail, address)


def recent(engine: Engine, limit: int = 200) -> list[dict]:
    """The last ``limit`` entries, newest first (keys at, actor, address, action, detail)."""
    a = m.audit_log.c
    q = select(a.at, a.actor, a.address, a.action, a.detail).order_by(a.id.desc()).limit(limit)
    with transaction(engine) as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
