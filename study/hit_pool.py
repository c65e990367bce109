"""Creating the study's tables and HIT pool, and checking a database against the experiment.

A study database holds the facts it was built from (``study_meta``: the manifest's fingerprint,
its conditions and images, and the pool settings :data:`POOL_SETTINGS`); an app started on a
database built for another experiment or other pool settings is refused, so answers of two
designs never mix. Creation runs in one write transaction (on PostgreSQL under an advisory
lock), so several workers starting at once create the pool once. :func:`init_db` refuses to
touch existing tables unless ``force`` is given (the Flask tutorial's ``init-db`` silently
drops everything).
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import func, insert, inspect, select
from sqlalchemy.engine import Connection, Engine

from . import models as m
from . import schema
from .db import transaction
from .design import build_full_pool

__all__ = [
    "POOL_SETTINGS",
    "check_db",
    "ensure_db",
    "init_db",
    "insert_hits",
    "pool_facts",
    "upgrade",
]

log = logging.getLogger(__name__)

#: Settings that define the HIT pool; a database built with other values is refused.
POOL_SETTINGS = ("design", "per_pair", "trials_per_hit", "checks_per_hit", "practice", "seed")
_ADVISORY_LOCK = 7270031  # PostgreSQL: one pool creation at a time


def pool_facts(settings) -> dict:
    """The :data:`POOL_SETTINGS` of ``settings`` as stored in the database (``per_pair`` is 0
    for the asap design, whose HITs are made on demand)."""
    facts = {k: getattr(settings, k) for k in POOL_SETTINGS}
    facts["per_pair"] = settings.per_pair_target
    return facts


def insert_hits(conn: Connection, pool, first_id: int = 1) -> None:
    """Insert the HITs ``pool`` (``design.HitSpec``) with their trials, ids from ``first_id``."""
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
        trial_rows.extend(
            {"hit_id": hid, "position": pos, "kind": t.kind, "image_id": t.image_id,
             "left": t.left, "right": t.right}
            for pos, t in enumerate(spec.trials)
        )  # fmt: skip
    if hit_rows:
        conn.execute(insert(m.hits), hit_rows)
        conn.execute(insert(m.trials), trial_rows)


def _lock_pool(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")


def _is_empty(conn: Connection) -> bool:
    """No study tables, or tables without facts (nothing was ever stored)."""
    if not inspect(conn).has_table("study_meta"):
        return True
    return not conn.execute(select(func.count()).select_from(m.meta)).scalar()


def _create(conn: Connection, exp, settings) -> int:
    m.metadata.create_all(conn)
    facts = {
        "fingerprint": exp.fingerprint,
        "conditions": list(exp.conditions),
        "images": [e.id for e in exp.images],
        "created_at": time.time(),
        **pool_facts(settings),
    }
    conn.execute(insert(m.meta), [{"key": k, "value": json.dumps(v)} for k, v in facts.items()])
    if settings.design == "full":
        pool = build_full_pool(
            exp,
            settings.per_pair,
            settings.trials_per_hit,
            settings.checks_per_hit,
            settings.seed,
            settings.practice,
        )
    else:
        pool = []  # active sampling creates HITs on demand
    insert_hits(conn, pool)
    log.info("created study database: %d HITs (%s design)", len(pool), settings.design)
    return len(pool)


def _verify(conn: Connection, exp, settings) -> dict:
    facts = {k: json.loads(v) for k, v in conn.execute(select(m.meta.c.key, m.meta.c.value))}
    if facts.get("fingerprint") != exp.fingerprint:
        raise ValueError(
            "the database was created for another experiment (fingerprint "
            f"{facts.get('fingerprint')} != {exp.fingerprint}); use another --db, or recreate "
            "it with `mdf study init-db --force` (this deletes its answers)"
        )
    asked = pool_facts(settings)
    diff = {k: (facts.get(k), v) for k, v in asked.items() if facts.get(k) != v}
    if diff:
        raise ValueError(
            f"the database was created with other design settings (stored, asked): {diff}"
        )
    return facts


def init_db(engine: Engine, exp, settings, force: bool = False) -> int:
    """Create the tables and the HIT pool for experiment ``exp``; return the number of HITs.

    ``settings``: the app's :class:`~study.settings.Settings` (its :data:`POOL_SETTINGS`).
    Raises ``ValueError`` if the study tables already exist and ``force`` is false (collected
    answers are never dropped silently); ``force`` drops them and creates them anew.
    """
    with transaction(engine, write=True) as conn:
        _lock_pool(conn)
        if inspect(conn).has_table("study_meta"):
            if not force:
                raise ValueError(
                    "the study tables already exist; use --force to drop them "
                    "(this deletes every collected answer)"
                )
            m.metadata.drop_all(conn)
        return _create(conn, exp, settings)


def ensure_db(engine: Engine, exp, settings) -> int | None:
    """Create the tables and pool if the database is empty, else check it was built for this
    experiment; return the number of HITs created now, or None when it existed.

    Raises ``ValueError`` if the database belongs to another manifest or was built with other
    pool settings; adds the tables an older database lacks (:mod:`study.schema`). Safe when
    several workers start at once.
    """
    with transaction(engine, write=True) as conn:
        _lock_pool(conn)
        created = _create(conn, exp, settings) if _is_empty(conn) else None
        _verify(conn, exp, settings)
        schema.add_missing_tables(conn)  # a database made by an earlier version
    return created


def upgrade(engine: Engine) -> None:
    """Add the operations tables (:data:`study.schema.OPERATIONS_TABLES`) that an initialised
    database made by an earlier version lacks (one write transaction, only when one is missing)."""
    with transaction(engine) as conn:
        missing = schema.missing_tables(conn, schema.OPERATIONS_TABLES)
    if missing:
        with transaction(engine, write=True) as conn:
            _lock_pool(conn)
            schema.add_missing_tables(conn, schema.OPERATIONS_TABLES)


def check_db(engine: Engine, exp, settings) -> dict | None:
    """The stored facts of a database built for this experiment, or None if it is empty
    (nothing created); ``ValueError`` as :func:`ensure_db` for another experiment or design,
    and for an older database that lacks the viewing-condition tables (:mod:`study.schema`)."""
    with transaction(engine) as conn:
        if _is_empty(conn):
            return None
        facts = _verify(conn, exp, settings)
        schema.require_tables(conn)
        return facts
